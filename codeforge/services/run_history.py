"""Going back and sideways in a run's history: pause, resume, rewind, fork, replay.

All of it starts from the log (ARCHITECTURE.md: "The run's state is a fold over its
events"):

- **pause** suspends a run (`RunSuspended`, not queued again); **resume** queues a
  suspended run for any worker (`RunResumeRequested` with its start job, one write).
- **rewind** takes a *suspended* run back to its event at `to_seq`: the conversation
  after it is dropped and its files go back to the checkpoint at or before it (the base
  commit when none). It is recorded (`RunRewound`) and queued; the worker that resumes
  the run applies it. A dry run answers what would change — which files would be
  written and which deleted — before anything is.
- **fork** starts a new run that continues another from its event at `at_seq` (any
  run, ended ones too): same task and agent, that run's conversation and files up to
  there.
- **replay** re-executes a run with the model responses recorded in it, in order; the
  new run reports every call whose result or policy decision came out differently
  (`ReplayDiverged`). It costs nothing: no model is called.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
from msgspec import Struct

from codeforge.domain.commands import ControlRun
from codeforge.domain.errors import Conflict, NotFound, ValidationFailed
from codeforge.domain.events import (
    CheckpointCreated,
    Event,
    PromptAssembled,
    RunRequested,
    RunResumeRequested,
    RunRewound,
    RunSuspended,
    WorkspacePrepared,
)
from codeforge.domain.keys import Principal
from codeforge.domain.limits import Limits
from codeforge.domain.runs import DeliverMode, Run, RunStatus, SandboxMode
from codeforge.ports.checkpoints import CheckpointStore
from codeforge.ports.events import EventContext, EventStore
from codeforge.services.event_log import EventLog
from codeforge.services.run_control import RunControl
from codeforge.services.runs import Runs
from codeforge.services.subjects import start_job

# write: the checkpoint's content; delete: the checkpoint has no such file; restore_base:
# back to the base commit's version (written, or removed if the base has no such file).
Action = Literal["write", "delete", "restore_base"]


class PathChange(Struct, frozen=True, kw_only=True):
    path: str
    action: Action


class RewindPlan(Struct, frozen=True, kw_only=True):
    run_id: uuid.UUID
    to_seq: int
    # The checkpoint the files go back to; None: the run's base commit.
    checkpoint_id: uuid.UUID | None
    changes: list[PathChange]
    applied: bool = False


class RunHistory:
    def __init__(
        self,
        runs: Runs,
        events: EventStore,
        log: EventLog,
        checkpoints: CheckpointStore,
        control: RunControl,
        base_has: Callable[[uuid.UUID, uuid.UUID, str, list[str]], Awaitable[set[str]]]
        | None = None,
    ) -> None:
        """`base_has(tenant, project, base_commit, paths)` says which paths the base commit
        has (from the project's clone on this host), so a plan can say "delete" rather than
        "restore_base"."""
        self._base_has = base_has
        self._runs = runs
        self._events = events
        self._log = log
        self._checkpoints = checkpoints
        self._control = control

    # -- pause and resume ------------------------------------------------------------------

    async def pause(self, principal: Principal, run_id: uuid.UUID, reason: str = "") -> Run:
        principal.require_mutation()
        run = await self._events.get_run(principal.tenant_id, run_id)
        why = f"paused by user{': ' + reason.strip() if reason.strip() else ''}"
        if run.status in (RunStatus.RUNNING, RunStatus.AWAITING_APPROVAL):
            await self._control.send(
                ControlRun(run_id=run.id, tenant_id=run.tenant_id, action="suspend", reason=why)
            )
            return run
        if run.status is not RunStatus.REQUESTED:
            raise Conflict(f"a {run.status.value} run cannot be paused", field="status")
        await self._append(run, RunSuspended(reason=why))
        return await self._events.get_run(principal.tenant_id, run_id)

    async def resume(self, principal: Principal, run_id: uuid.UUID) -> Run:
        principal.require_mutation()
        run = await self._suspended(principal, run_id, "resumed")
        await self._append(run, RunResumeRequested(requested_by=principal.key_id), queue=True)
        return await self._events.get_run(principal.tenant_id, run_id)

    # -- rewind ----------------------------------------------------------------------------

    async def rewind(
        self, principal: Principal, run_id: uuid.UUID, to_seq: int, *, dry_run: bool = False
    ) -> RewindPlan:
        principal.require_mutation()
        run = await self._suspended(principal, run_id, "rewound")
        events = await self._events.load(principal.tenant_id, run_id)
        first = events[0].event
        # A fork's past begins in its source's log: any of its own events is a place to go.
        forked = isinstance(first, RunRequested) and first.forked_from is not None
        prompt = next((e.seq for e in events if isinstance(e.event, PromptAssembled)), None)
        low = 1 if forked else prompt
        if low is None or not low <= to_seq < run.last_seq:
            raise ValidationFailed(
                f"to_seq must be between {low or 'the first prompt'} and {run.last_seq - 1}"
                " (the run's log)",
                field="to_seq",
            )
        made = [e.event for e in events if isinstance(e.event, CheckpointCreated)]
        target = next((c for c in reversed(made) if c.after_seq <= to_seq), None)
        latest = made[-1] if made else None
        target_id = target.checkpoint_id if target is not None else None
        changes = await self._changes(principal, latest, target)
        prepared = next((e.event for e in events if isinstance(e.event, WorkspacePrepared)), None)
        if prepared is not None and self._base_has is not None:
            unsure = [c.path for c in changes if c.action == "restore_base"]
            there = await self._base_has(
                run.tenant_id, run.project_id, prepared.base_commit, unsure
            )
            changes = [
                PathChange(path=c.path, action="write" if c.path in there else "delete")
                if c.action == "restore_base"
                else c
                for c in changes
            ]
        plan = RewindPlan(run_id=run.id, to_seq=to_seq, checkpoint_id=target_id, changes=changes)
        if dry_run:
            return plan
        await self._append(
            run,
            RunRewound(to_seq=to_seq, checkpoint_id=target_id, requested_by=principal.key_id),
            queue=True,
        )
        return msgspec.structs.replace(plan, applied=True)

    async def _changes(
        self,
        principal: Principal,
        latest: CheckpointCreated | None,
        target: CheckpointCreated | None,
    ) -> list[PathChange]:
        """What going from the latest checkpoint to the target one does to each path."""
        now = await self._files(principal, latest)
        then = await self._files(principal, target)
        changes = []
        for path in sorted(set(now) | set(then)):
            if now.get(path) == then.get(path):
                continue
            action: Action
            if path in then:
                action = "delete" if then[path][0] is None else "write"
            else:
                action = "restore_base"
            changes.append(PathChange(path=path, action=action))
        return changes

    async def _files(
        self, principal: Principal, made: CheckpointCreated | None
    ) -> dict[str, tuple[str | None, int]]:
        if made is None:
            return {}
        try:
            checkpoint = await self._checkpoints.get(principal.tenant_id, made.checkpoint_id)
        except NotFound:
            raise ValidationFailed(
                f"the checkpoint after seq {made.after_seq} was pruned (checkpoints.keep_per_run);"
                " rewind to a later event, or fork from the first one",
                field="to_seq",
            ) from None
        return {p: (e.sha256, e.mode) for p, e in checkpoint.files.items()}

    # -- fork and replay -------------------------------------------------------------------

    async def fork(
        self,
        principal: Principal,
        run_id: uuid.UUID,
        at_seq: int,
        *,
        mode: SandboxMode | None = None,
        deliver: DeliverMode | None = None,
        limits: Limits | None = None,
    ) -> Run:
        source = await self._events.get_run(principal.tenant_id, run_id)
        if not 1 <= at_seq <= source.last_seq:
            raise ValidationFailed(
                f"at_seq must be between 1 and {source.last_seq} (the run's log)", field="at_seq"
            )
        return await self._runs.start(
            principal,
            task_id=source.task_id,
            agent_id=source.agent_id,
            mode=mode or source.mode,
            deliver=deliver or source.deliver,
            limits=Limits.tightest(source.limits, limits),
            policy_overrides=source.policy_overrides,
            forked_from=source.id,
            fork_seq=at_seq,
        )

    async def replay(self, principal: Principal, run_id: uuid.UUID) -> Run:
        source = await self._events.get_run(principal.tenant_id, run_id)
        if source.status in (RunStatus.REQUESTED,):
            raise Conflict("the run has not started: there is nothing to replay", field="status")
        return await self._runs.start(
            principal,
            task_id=source.task_id,
            agent_id=source.agent_id,
            mode=source.mode,
            deliver=DeliverMode.PATCH,
            policy_overrides=source.policy_overrides,
            replay_of=source.id,
        )

    # -- shared ----------------------------------------------------------------------------

    async def _suspended(self, principal: Principal, run_id: uuid.UUID, verb: str) -> Run:
        run = await self._events.get_run(principal.tenant_id, run_id)
        if run.status is not RunStatus.SUSPENDED:
            raise Conflict(
                f"only a suspended run can be {verb}; this one is {run.status.value} "
                "(pause it first)",
                field="status",
            )
        return run

    async def _append(self, run: Run, event: Event, *, queue: bool = False) -> None:
        await self._log.append(
            run.id,
            [event],
            expected_seq=run.last_seq,
            context=EventContext(tenant_id=run.tenant_id),
            outbox=start_job(run.id, run.tenant_id) if queue else None,
        )
