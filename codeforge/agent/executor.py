"""The native backend's `RunExecutor`: from a run to a delivered change.

What `execute` does for a run a worker holds:

1. Look up its task, agent, project and model (the agent names a model registered in
   the run's tenant, or in the default tenant for models from the config file) and
   resolve the model's API key from the secret store.
2. Prepare its worktree and branch (`WorkspacePrepared`), or find it again when the
   run comes back after a restart.
3. Open the sandbox the run's `mode` names on that worktree.
4. Assemble the first prompt (`PromptAssembled`), or rebuild the conversation from
   the log when the run already has one, and run the agent loop.
5. Store the patch and deliver (`codeforge.agent.delivery`); give back every cost
   hold the run still has.

Problems that are not the agent's fault end the run with a reason a user can act on:
`invalid_run` (a missing task, agent or model, a missing API key), `workspace_error`,
`sandbox_unavailable`, `budget_exceeded` (an unpriced model on a budgeted run).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import msgspec
import structlog

from codeforge.agent.approvals import Approvals
from codeforge.agent.conversation import Conversation
from codeforge.agent.delivery import Delivery
from codeforge.agent.deltas import DeltaPublisher
from codeforge.agent.gates import GateRunner
from codeforge.agent.history import Past, load_past
from codeforge.agent.loop import AgentLoop, LoopSettings, RunScope
from codeforge.agent.models import endpoint_for, find_model
from codeforge.agent.prompt import assemble
from codeforge.agent.replay import divergences
from codeforge.agent.spending import Spending, budgets_for
from codeforge.agent.tools import CodeSearch, default_toolbox
from codeforge.agent.workspaces import RunWorkspaces
from codeforge.domain.agents import Agent
from codeforge.domain.errors import BudgetExceeded, DomainError, NotFound
from codeforge.domain.events import (
    CheckpointCreated,
    CheckpointRestored,
    ContextPackBuilt,
    Event,
    ModelResponded,
    PromptAssembled,
    RunRewound,
    StoredEvent,
    ToolCallCompleted,
    ToolCallRequested,
    WorkspacePrepared,
    WorkspaceRolledBack,
)
from codeforge.domain.model_configs import ModelConfig
from codeforge.domain.projects import Project
from codeforge.domain.runs import Run, SandboxMode
from codeforge.domain.tasks import Task
from codeforge.ports.checkpoints import CheckpointHook, RunWorkspace
from codeforge.ports.context import ContextProvider
from codeforge.ports.costs import Budgets, CostLedger
from codeforge.ports.errors import PortError
from codeforge.ports.events import EventStore, RunEventFeed
from codeforge.ports.executor import Journal, Outcome, RunControls
from codeforge.ports.llm import LanguageModel, ModelEndpoint
from codeforge.ports.notifier import ApprovalNotice, ApprovalNotifier
from codeforge.ports.policy import PolicyGate
from codeforge.ports.sandbox import (
    Sandbox,
    SandboxError,
    SandboxFactory,
    SandboxLimits,
    SandboxSpec,
)
from codeforge.ports.stores import (
    AgentStore,
    ModelConfigStore,
    ProjectStore,
    TaskStore,
    TenantStore,
)
from codeforge.services.secrets import Secrets
from codeforge.settings import AgentSettings, ApprovalSettings, LlmSettings

log = structlog.get_logger("codeforge.agent")

FAILED_ATTEMPT = "failed-attempt"
INTERRUPTED = (
    "interrupted: the worker running this call stopped before it finished (the run was "
    "resumed). Whatever the call did is in the workspace now; check before you retry it."
)

# What every command of a run sees besides the sandbox's base: no terminal games (pagers,
# colours) and no bytecode files left in the worktree for the patch to pick up.
COMMAND_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PAGER": "cat", "GIT_PAGER": "cat", "NO_COLOR": "1"}


@dataclass(frozen=True)
class Stores:
    tasks: TaskStore
    agents: AgentStore
    projects: ProjectStore
    tenants: TenantStore
    models: ModelConfigStore
    events: EventStore


@dataclass(frozen=True)
class Plan:
    task: Task
    agent: Agent
    project: Project
    model: ModelConfig
    endpoint: ModelEndpoint
    budgets: Budgets
    # Who answers: the model's endpoint, or a replay of a recorded run.
    llm: LanguageModel
    # For a replay: the recorded run's log.
    recorded: list[StoredEvent] | None = None


class _Ended(Exception):
    """The run cannot go on; carries the outcome."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.summary)
        self.outcome = outcome


def _base_of(events: list[StoredEvent]) -> str | None:
    prepared = next((e.event for e in events if isinstance(e.event, WorkspacePrepared)), None)
    return prepared.base_commit if prepared is not None else None


def _failed(reason: str, summary: str) -> _Ended:
    return _Ended(Outcome(status="failed", reason=reason, summary=summary))


class AgentExecutor:
    def __init__(
        self,
        *,
        stores: Stores,
        secrets: Secrets,
        workspaces: RunWorkspaces,
        sandboxes: Mapping[SandboxMode, SandboxFactory],
        llm: LanguageModel,
        gate: PolicyGate,
        checkpoints: CheckpointHook,
        ledger: CostLedger,
        delivery: Delivery,
        context: ContextProvider,
        feed: RunEventFeed | None,
        agent_settings: AgentSettings,
        llm_settings: LlmSettings,
        approval_settings: ApprovalSettings,
        notifier: ApprovalNotifier,
        replay_model: Callable[[list[ModelResponded]], LanguageModel],
        public_url: str = "",
        code_search: Callable[[str], CodeSearch] | None = None,
    ) -> None:
        self._stores = stores
        self._secrets = secrets
        self._workspaces = workspaces
        self._sandboxes = sandboxes
        self._llm = llm
        self._gate = gate
        self._checkpoints = checkpoints
        self._ledger = ledger
        self._delivery = delivery
        self._context = context
        self._feed = feed
        self._settings = agent_settings
        self._llm_settings = llm_settings
        self._approval_settings = approval_settings
        self._notifier = notifier
        self._replay_model = replay_model
        self._public_url = public_url.rstrip("/")
        self._code_search = code_search
        self._toolbox = default_toolbox(code_intelligence=code_search is not None)

    async def execute(self, run: Run, cancel: RunControls, journal: Journal) -> Outcome:
        structlog.contextvars.bind_contextvars(run_id=str(run.id))
        try:
            past = await load_past(self._stores.events, run.tenant_id, run.id)
            history = past.events
            plan = await self._plan(run, past)
            workspace = await self._workspace(run, plan, history, journal)
            if past.pending_rewind is not None:
                await self._rewind(workspace, past.pending_rewind, journal)
            try:
                outcome = await self._work(run, plan, workspace, history, cancel, journal)
            finally:
                await self._ledger.release_run(run.tenant_id, run.id)
            if plan.recorded is not None:
                outcome = await self._compare(run, plan.recorded, outcome, journal)
            if (
                outcome.reason == "quality_gates_failed"
                and plan.project.gates.rollback_on_gate_fail
            ):
                await self._roll_back(run, workspace, journal)
            return await self._delivery.deliver(run, plan.task, workspace, outcome, journal)
        except _Ended as ended:
            log.info("run ended early", reason=ended.outcome.reason)
            return ended.outcome
        finally:
            structlog.contextvars.unbind_contextvars("run_id")

    # -- what the run needs -------------------------------------------------------------

    async def _plan(self, run: Run, past: Past) -> Plan:
        s = self._stores
        try:
            task = await s.tasks.get(run.tenant_id, run.task_id)
            agent = await s.agents.get(run.tenant_id, run.agent_id)
            project = await s.projects.get(run.tenant_id, run.project_id)
        except NotFound as e:
            raise _failed(
                "invalid_run", f"{e.message} (it was deleted after the run started)"
            ) from e
        try:
            model = await find_model(s.models, run.tenant_id, agent.model)
            endpoint = endpoint_for(model, self._secrets, self._llm_settings)
        except NotFound as e:
            raise _failed("invalid_run", e.message) from e
        except PortError as e:  # the model's API key is missing from the secret store
            raise _failed("invalid_run", str(e)) from e
        budgets = await budgets_for(run, project, s.tenants)
        if past.origin.replay_of is None:
            return Plan(task, agent, project, model, endpoint, budgets, llm=self._llm)
        recorded = await s.events.load(run.tenant_id, past.origin.replay_of)
        replies = [e.event for e in recorded if isinstance(e.event, ModelResponded)]
        # A replay calls no model, so it costs nothing and no budget binds it.
        free = msgspec.structs.replace(
            model, input_price_per_mtok=Decimal(0), output_price_per_mtok=Decimal(0)
        )
        return Plan(
            task,
            agent,
            project,
            free,
            endpoint,
            Budgets(),
            llm=self._replay_model(replies),
            recorded=recorded,
        )

    async def _workspace(
        self, run: Run, plan: Plan, history: list[StoredEvent], journal: Journal
    ) -> RunWorkspace:
        project = plan.project
        prepared = next(
            (e.event for e in reversed(history) if isinstance(e.event, WorkspacePrepared)), None
        )
        if prepared is not None:
            found = RunWorkspace(
                tenant_id=run.tenant_id,
                run_id=run.id,
                path=prepared.path,
                base_commit=prepared.base_commit,
                branch=prepared.branch,
            )
            if await self._workspaces.is_here(run, found):
                return found  # this worker's own worktree, as the run left it
            return await self._rebuild(run, project, found, history, journal)
        # A replay starts where the run it replays started.
        base = _base_of(plan.recorded) if plan.recorded is not None else None
        try:
            workspace = await self._workspaces.prepare(run, project, base=base)
        except (DomainError, PortError) as e:
            message = e.message if isinstance(e, DomainError) else str(e)
            raise _failed("workspace_error", f"cannot prepare the run's worktree: {message}") from e
        await journal.append(
            WorkspacePrepared(
                path=workspace.path, branch=workspace.branch, base_commit=workspace.base_commit
            )
        )
        return workspace

    async def _rewind(self, workspace: RunWorkspace, rewound: RunRewound, journal: Journal) -> None:
        """Put the worktree back as it was at the rewind's target (its checkpoint, or base)."""
        why = f"rewound to seq {rewound.to_seq}"
        if rewound.checkpoint_id is not None:
            paths = await self._checkpoints.restore(workspace, rewound.checkpoint_id)
            await journal.append(
                CheckpointRestored(checkpoint_id=rewound.checkpoint_id, paths=paths, reason=why)
            )
        else:
            paths = await self._checkpoints.reset(workspace)
            await journal.append(WorkspaceRolledBack(paths=paths, reason=why))
        log.info("run rewound", to_seq=rewound.to_seq, paths=len(paths))

    async def _compare(
        self, run: Run, recorded: list[StoredEvent], outcome: Outcome, journal: Journal
    ) -> Outcome:
        """A replay reports every call that came out differently from the recording."""
        replayed = await self._stores.events.load(run.tenant_id, run.id)
        found = divergences(recorded, replayed)
        if found:
            await journal.append(*found)
        source = recorded[0].run_id
        artifact = {**outcome.artifact, "replay_of": str(source), "diverged": len(found)}
        return msgspec.structs.replace(outcome, artifact=artifact)

    async def _rebuild(
        self,
        run: Run,
        project: Project,
        previous: RunWorkspace,
        history: list[StoredEvent],
        journal: Journal,
    ) -> RunWorkspace:
        """The worktree on this host from the base commit and the latest checkpoint."""
        try:
            workspace = await self._workspaces.recreate(run, project, previous)
        except (DomainError, PortError) as e:
            message = e.message if isinstance(e, DomainError) else str(e)
            raise _failed(
                "workspace_error", f"cannot rebuild the run's worktree here: {message}"
            ) from e
        await journal.append(
            WorkspacePrepared(
                path=workspace.path, branch=workspace.branch, base_commit=workspace.base_commit
            )
        )
        latest = next(
            (e.event for e in reversed(history) if isinstance(e.event, CheckpointCreated)), None
        )
        if latest is not None:
            paths = await self._checkpoints.restore(workspace, latest.checkpoint_id)
            await journal.append(
                CheckpointRestored(
                    checkpoint_id=latest.checkpoint_id,
                    paths=paths,
                    reason="the run resumed on another host",
                )
            )
        log.info("worktree rebuilt", checkpoint=str(latest.checkpoint_id) if latest else None)
        return workspace

    # -- the work -------------------------------------------------------------------------

    async def _work(
        self,
        run: Run,
        plan: Plan,
        workspace: RunWorkspace,
        history: list[StoredEvent],
        cancel: RunControls,
        journal: Journal,
    ) -> Outcome:
        factory = self._sandboxes.get(run.mode)
        if factory is None:
            raise _failed("sandbox_unavailable", f"no sandbox of kind {run.mode.value!r} here")
        s = self._settings
        spending = Spending(
            self._ledger,
            plan.model,
            tenant_id=run.tenant_id,
            project_id=run.project_id,
            run_id=run.id,
            budgets=plan.budgets,
            allow_unpriced=self._llm_settings.allow_unpriced_models
            or run.policy_overrides.get("allow_unpriced_model") is True,
            max_output_tokens=s.max_output_tokens,
        )
        try:
            spending.check_model()
        except BudgetExceeded as e:
            raise _failed("budget_exceeded", e.message) from e
        spec = SandboxSpec(
            workspace=workspace.path,
            limits=SandboxLimits(timeout=s.bash_timeout, output_bytes=4 * s.tool_output_chars),
            env=dict(COMMAND_ENV),
        )
        try:
            sandbox = await factory.open(spec)
        except SandboxError as e:
            raise _failed("sandbox_unavailable", e.message) from e
        async with sandbox:
            conversation, steps = await self._conversation(
                plan, workspace, sandbox, history, journal
            )
            loop = AgentLoop(
                plan.llm,
                self._toolbox,
                self._gate,
                self._checkpoints,
                spending,
                DeltaPublisher(self._feed, run.tenant_id, run.id),
                LoopSettings(
                    max_steps=run.limits.max_steps or s.default_max_steps,
                    wall_seconds=float(run.limits.max_wall_seconds or s.default_wall_seconds),
                    context_window=plan.model.context_window,
                    compact_at=s.compact_at,
                    # A project may switch stall detection off (a long, quiet build).
                    stall_window=s.stall_window if plan.project.gates.stall_detection else 10**9,
                    output_chars=s.tool_output_chars,
                    bash_timeout=s.bash_timeout,
                    bash_max_timeout=s.bash_max_timeout,
                ),
                approvals=self._approvals_for(run, sandbox, cancel, journal),
                gates=GateRunner(
                    plan.project.gates,
                    plan.project.quality_gates,
                    lambda: self._delivery.changed_lines(workspace),
                    output_chars=s.tool_output_chars,
                ),
            )
            scope = RunScope(
                run_id=run.id,
                tenant_id=run.tenant_id,
                project_id=run.project_id,
                workspace=workspace,
                sandbox=sandbox,
                journal=journal,
                endpoint=plan.endpoint,
                model_name=plan.model.name,
                code=self._code_search(workspace.path) if self._code_search else None,
            )
            log.info("agent loop starting", steps_done=steps, sandbox=sandbox.kind)
            return await loop.run(scope, conversation, cancel, steps_done=steps)

    async def _settle_interrupted(
        self, events: list[Event], workspace: RunWorkspace, journal: Journal
    ) -> list[Event]:
        """Calls that were requested but never completed (the worker stopped mid-call) are
        reported to the model as interrupted — not silently run again — and whatever they
        did to the workspace is checkpointed."""
        completed = {e.call_id for e in events if isinstance(e, ToolCallCompleted)}
        pending = [
            e for e in events if isinstance(e, ToolCallRequested) and e.call_id not in completed
        ]
        if not pending:
            return []
        added: list[Event] = [
            ToolCallCompleted(
                call_id=call.call_id,
                tool=call.tool,
                ok=False,
                output=INTERRUPTED,
            )
            for call in pending
        ]
        stored = await journal.append(*added)
        made = await self._checkpoints.checkpoint(workspace, stored[-1].seq, None)
        if made is not None:
            checkpoint = CheckpointCreated(
                checkpoint_id=made.id,
                after_seq=stored[-1].seq,
                changed=list(made.changed),
                files=len(made.files),
                bytes=made.total_bytes,
            )
            await journal.append(checkpoint)
            added.append(checkpoint)
        log.info("interrupted calls reported", calls=[c.call_id for c in pending])
        return added

    async def _roll_back(self, run: Run, workspace: RunWorkspace, journal: Journal) -> None:
        """Keep the failed attempt as an artifact, then give the worktree its base back
        (no state of this run passed its gates: a passing one would have ended it)."""
        kept = await self._delivery.store_patch(run, workspace, journal, name=FAILED_ATTEMPT)
        paths = await self._checkpoints.reset(workspace)
        await journal.append(
            WorkspaceRolledBack(
                paths=paths,
                kept_as=FAILED_ATTEMPT if kept else "",
                reason="the quality gates failed on every attempt",
            )
        )

    def _approvals_for(
        self, run: Run, sandbox: Sandbox, controls: RunControls, journal: Journal
    ) -> Approvals:
        a = self._approval_settings
        answers = f"{self._public_url}/api/v1/runs/{run.id}/approvals" if self._public_url else ""
        return Approvals(
            journal,
            controls,
            headless=a.headless or run.policy_overrides.get("headless") is True,
            timeout=a.timeout_seconds,
            sandbox=sandbox.capabilities,
            notifier=self._notifier,
            notice_base=ApprovalNotice(
                tenant_id=run.tenant_id,
                run_id=run.id,
                approval_id="",
                tool="",
                answer_url=answers,
            ),
        )

    async def _conversation(
        self,
        plan: Plan,
        workspace: RunWorkspace,
        sandbox: Sandbox,
        history: list[StoredEvent],
        journal: Journal,
    ) -> tuple[Conversation, int]:
        """The conversation so far (rebuilt from the log), or the first prompt, stored."""
        events = [e.event for e in history]
        if any(isinstance(e, PromptAssembled) for e in events):
            events += await self._settle_interrupted(events, workspace, journal)
            steps = sum(1 for e in events if isinstance(e, ModelResponded))
            return Conversation.from_events(events), steps
        if plan.recorded is not None:
            prompt_event = next(
                (e.event for e in plan.recorded if isinstance(e.event, PromptAssembled)), None
            )
            if prompt_event is None:
                raise _failed("invalid_run", "the run to replay never assembled its prompt")
            await journal.append(prompt_event)
            return Conversation(prompt_event.system, prompt_event.user), 0
        query = f"{plan.task.title}\n{plan.task.prompt}\n" + "\n".join(
            plan.task.acceptance_criteria
        )
        context = await self._context.build(
            workspace.path, query, token_budget=self._settings.context_tokens
        )
        await journal.append(
            ContextPackBuilt(
                provider=context.provider,
                query=query[:2000],
                token_budget=self._settings.context_tokens,
                tokens=context.token_count,
                items=[msgspec.to_builtins(i) for i in context.items[:200]],
                notices=context.notices,
            )
        )
        prompt = await assemble(task=plan.task, agent=plan.agent, sandbox=sandbox, context=context)
        await journal.append(
            PromptAssembled(
                model=plan.model.name,
                system=prompt.system,
                user=prompt.user,
                tools=self._toolbox.names,
                sources=prompt.sources,
                context_tokens=context.token_count,
            )
        )
        return Conversation(prompt.system, prompt.user), 0
