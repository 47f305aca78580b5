"""Starting runs, and reading them and their events.

Starting a run writes, in one transaction (the event log's `create_run`): the
run's projection row, `RunRequested` at seq 1 and an outbox message on
`runs.start`. A relay publishes the outbox to the queue, so a queue outage
delays runs but never strands them. Executing the run is the worker's job.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from codeforge.domain.commands import ControlRun
from codeforge.domain.errors import Conflict, NotFound, ValidationFailed
from codeforge.domain.events import RunCancelled, RunRequested, StoredEvent
from codeforge.domain.ids import new_id
from codeforge.domain.keys import Principal
from codeforge.domain.limits import Limits
from codeforge.domain.policy import build_run_override
from codeforge.domain.projects import Project, SourceKind
from codeforge.domain.runs import DeliverMode, Run, RunStatus, SandboxMode
from codeforge.ports.events import EventContext, EventStore
from codeforge.ports.stores import AgentStore, Page, ProjectStore, TaskStore, TenantStore
from codeforge.services.clock import Clock, utc_now
from codeforge.services.event_log import EventLog
from codeforge.services.git_work import GitRunner
from codeforge.services.run_control import RunControl
from codeforge.services.secrets import Secrets
from codeforge.services.subjects import start_job

# `Runs.list` shadows the builtin inside the class body.
Events = list[StoredEvent]


class Runs:
    def __init__(
        self,
        events: EventStore,
        log: EventLog,
        tasks: TaskStore,
        agents: AgentStore,
        projects: ProjectStore,
        tenants: TenantStore,
        *,
        default_mode: SandboxMode = SandboxMode.MOUNT,
        clock: Clock = utc_now,
        on_started: Callable[[], None] | None = None,
        control: RunControl | None = None,
        git: GitRunner | None = None,
        secrets: Secrets | None = None,
    ) -> None:
        self._events = events
        self._log = log
        self._tasks = tasks
        self._agents = agents
        self._projects = projects
        self._tenants = tenants
        self._default_mode = default_mode
        self._clock = clock
        # Told after each start, so the outbox relay publishes the job at once.
        self._on_started = on_started
        self._control = control
        # For the delivery checks: is a local source pushable, is the host token set.
        self._git = git
        self._secrets = secrets

    async def start(
        self,
        principal: Principal,
        *,
        task_id: uuid.UUID,
        agent_id: uuid.UUID,
        mode: SandboxMode | None = None,
        deliver: DeliverMode = DeliverMode.PATCH,
        limits: Limits | None = None,
        policy_overrides: dict[str, Any] | None = None,
        request_id: str | None = None,
        forked_from: uuid.UUID | None = None,
        fork_seq: int | None = None,
        replay_of: uuid.UUID | None = None,
    ) -> Run:
        principal.require_mutation()
        # A run may tighten its policy, never loosen it: refuse what the gate would refuse.
        build_run_override(policy_overrides or {})
        tenant = principal.tenant_id
        task = await self._find(self._tasks.get(tenant, task_id), "task_id", "task")
        agent = await self._find(self._agents.get(tenant, agent_id), "agent_id", "agent")
        project = await self._projects.get(tenant, task.project_id)
        # Refused before any money is spent: a run that could not deliver.
        await self._check_delivery(deliver, project)
        try:
            tenant_limits = (await self._tenants.get(tenant, tenant)).limits
        except NotFound:
            tenant_limits = Limits()
        requested = RunRequested(
            project_id=project.id,
            task_id=task.id,
            agent_id=agent.id,
            mode=(mode or self._default_mode).value,
            deliver=deliver.value,
            # A run may tighten the limits above it, never loosen them.
            limits=Limits.tightest(tenant_limits, project.limits, agent.limits, limits),
            policy_overrides=dict(policy_overrides or {}),
            requested_by=principal.key_id,
            forked_from=forked_from,
            fork_seq=fork_seq,
            replay_of=replay_of,
        )
        run_id = new_id()
        run = Run.requested(run_id, tenant, requested, self._clock())
        outbox = start_job(run_id, tenant, request_id)
        await self._log.create_run(
            run, requested, outbox, EventContext(tenant_id=tenant, request_id=request_id)
        )
        if self._on_started is not None:
            self._on_started()
        return run

    async def cancel(self, principal: Principal, run_id: uuid.UUID, reason: str = "") -> Run:
        """Cancel a run: at once if no worker holds it, else through its worker.

        A run waiting (requested, suspended) is cancelled here. A running one gets a
        cancel on its control subject; the worker holding the lease stops it and records
        `RunCancelled` within a second. The returned run is the state at the time of
        the call. An ended run is a Conflict.
        """
        principal.require_mutation()
        # Lone surrogates (valid as JSON escapes) cannot travel as UTF-8: replace them.
        why = reason.encode("utf-8", "replace").decode().strip() or "cancelled by user"
        for _ in range(3):
            run = await self._events.get_run(principal.tenant_id, run_id)
            if run.status.terminal:
                raise Conflict(f"the run already ended ({run.status.value})", field="status")
            if run.status in (RunStatus.RUNNING, RunStatus.AWAITING_APPROVAL):
                if self._control is None:
                    raise Conflict("no worker can be reached to cancel this run")
                await self._control.send(
                    ControlRun(run_id=run.id, tenant_id=run.tenant_id, action="cancel", reason=why)
                )
                return run
            try:
                await self._log.append(
                    run.id,
                    [RunCancelled(reason=why)],
                    expected_seq=run.last_seq,
                    context=EventContext(tenant_id=run.tenant_id),
                )
            except Conflict:
                continue  # a worker took it meanwhile: look again
            return await self._events.get_run(principal.tenant_id, run_id)
        raise Conflict("the run kept changing; try again")

    async def get(self, principal: Principal, run_id: uuid.UUID) -> Run:
        return await self._events.get_run(principal.tenant_id, run_id)

    async def list(
        self,
        principal: Principal,
        *,
        limit: int,
        after: uuid.UUID | None,
        filters: dict[str, str],
    ) -> Page[Run]:
        return await self._events.list_runs(
            principal.tenant_id, limit=limit, after=after, filters=filters
        )

    async def events(
        self, principal: Principal, run_id: uuid.UUID, *, after: int = 0, limit: int = 1000
    ) -> Events:
        return await self._events.load(principal.tenant_id, run_id, after=after, limit=limit)

    async def task_events(
        self, principal: Principal, task_id: uuid.UUID, *, after: int = 0, limit: int = 500
    ) -> Events:
        await self._tasks.get(principal.tenant_id, task_id)
        return await self._events.load_by_task(
            principal.tenant_id, task_id, after=after, limit=limit
        )

    async def agent_events(
        self, principal: Principal, agent_id: uuid.UUID, *, after: int = 0, limit: int = 500
    ) -> Events:
        await self._agents.get(principal.tenant_id, agent_id)
        return await self._events.load_by_agent(
            principal.tenant_id, agent_id, after=after, limit=limit
        )

    async def _check_delivery(self, deliver: DeliverMode, project: Project) -> None:
        """`branch` needs a remote to push to, `pr` also a git host and its token."""
        if deliver not in (DeliverMode.BRANCH, DeliverMode.PR):
            return
        mode = deliver.value
        if deliver is DeliverMode.PR and project.git_host is None:
            raise ValidationFailed(
                f"deliver 'pr' opens a pull request on the project's git host, and project "
                f"{project.name!r} has none: set it with PATCH /api/v1/projects/{project.id} "
                '{"version": ..., "git_host": {"kind": "github" | "gitlab" | "gitea", '
                '"repository": "owner/name", "token_secret": "SECRET_NAME"}} (see '
                "docs/delivery.md), or choose deliver 'branch', 'commit-local' or 'patch'",
                field="deliver",
            )
        if project.source_kind is SourceKind.PATH and self._git is not None:
            kind = await self._git.kind(project.source)
            if kind is None:
                raise ValidationFailed(
                    f"deliver {mode!r} pushes the run's branch to the project's remote, its "
                    f"source {project.source}, which is no longer a git repository on this "
                    "host; register the project again from its remote, or choose deliver "
                    "'commit-local' or 'patch'",
                    field="deliver",
                )
            if kind == "worktree":
                raise ValidationFailed(
                    f"deliver {mode!r} pushes the run's branch to the project's remote, but "
                    f"project {project.name!r} was registered from a local working "
                    f"repository ({project.source}), and CodeForge never pushes into "
                    "someone's working repository: register the project from its remote "
                    "(a clone URL or a bare repository), or choose deliver 'commit-local' "
                    "(codeforge run copies the branch in) or 'patch'",
                    field="deliver",
                )
        host = project.git_host
        secrets = self._secrets
        if host is not None and secrets is not None and secrets.get(host.token_secret) is None:
            raise ValidationFailed(
                f"deliver {mode!r} pushes with the project's git host token, and the secret "
                f"{host.token_secret} (its git_host.token_secret) is not set: set the "
                f"environment variable CODEFORGE_SECRET_{host.token_secret} or run "
                f"`codeforge secrets set {host.token_secret}` (a running service reads it "
                "on SIGHUP)",
                field="deliver",
            )

    @staticmethod
    async def _find(lookup: Any, field: str, what: str) -> Any:
        # A run naming a missing task is a bad request body (422), not a missing URL (404).
        try:
            return await lookup
        except NotFound:
            raise ValidationFailed(f"no {what} with this id", field=field) from None
