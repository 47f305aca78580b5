"""The native agent loop: ask the model, run the tools it calls, until it finishes.

One step is one model call and the tool calls it makes:

1. Keep the conversation inside the context window (compacting old tool output,
   recorded as `ContextCompacted`).
2. Reserve the call's cost against the budgets; call the model, streaming its tokens
   live; settle the real cost. The reply, every tool call it makes and the policy
   gate's decision on each are stored in ONE append (`ModelResponded`,
   `ToolCallRequested`, `PolicyDecided`), before any tool runs — so a crash never
   leaves a tool that ran without a request on record.
3. Run each allowed call in the sandbox, streaming command output live; store
   `ToolCallCompleted`; after a write, edit or command that changed files, store the
   checkpoint the hook made (`CheckpointCreated`).
4. Judge progress (stall detection) and go on.

The loop ends when the model calls `finish` (succeeded), or with a failure reason:
`max_steps`, `wall_time`, `budget_exceeded`, `stalled`, `model_error`,
`context_too_long` — or `cancelled` when the run's cancel signal is set, which
interrupts a model call or a command at once (the sandbox kills the command's
process group).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import structlog
from msgspec import Struct

from codeforge.agent import gates
from codeforge.agent.approvals import Approvals, Ask
from codeforge.agent.conversation import Conversation, calls_as_dicts, estimate_tokens
from codeforge.agent.deltas import DeltaPublisher
from codeforge.agent.gates import GateRunner
from codeforge.agent.spending import Spending
from codeforge.agent.stall import NUDGE, StallDetector, StepRecord
from codeforge.agent.tools import CodeSearch, Toolbox, ToolContext, ToolResult
from codeforge.agent.tools.base import Tool
from codeforge.domain.errors import BudgetExceeded
from codeforge.domain.events import (
    AgentNudged,
    CheckpointCreated,
    ContextCompacted,
    Event,
    ModelResponded,
    PolicyDecided,
    QualityGatesChecked,
    ToolCallCompleted,
    ToolCallRequested,
)
from codeforge.ports.checkpoints import CheckpointHook, RunWorkspace
from codeforge.ports.executor import CancelSignal, Journal, Outcome
from codeforge.ports.llm import (
    ChatDelta,
    ChatRequest,
    ChatResponse,
    LanguageModel,
    LlmContextTooLong,
    LlmError,
    LlmScriptExhausted,
    ModelEndpoint,
    ToolCall,
)
from codeforge.ports.policy import Decision, PolicyDecision, PolicyGate, ToolRequest
from codeforge.ports.sandbox import LayeredSandbox, MergeConflict, Sandbox, StreamName

log = structlog.get_logger("codeforge.agent")

T = TypeVar("T")

NO_TOOL_CALL = (
    "Your last reply called no tool. Continue the task with the tools; when it is done "
    "and checked, call finish with a summary."
)


class LoopSettings(Struct, frozen=True, kw_only=True):
    max_steps: int
    wall_seconds: float
    context_window: int
    # Compact when the conversation passes this share of the context window.
    compact_at: float = 0.8
    stall_window: int = 5
    output_chars: int = 30_000
    bash_timeout: float = 120.0
    bash_max_timeout: float = 600.0


@dataclass(frozen=True)
class RunScope:
    """What one run's loop acts on."""

    run_id: uuid.UUID
    tenant_id: uuid.UUID
    project_id: uuid.UUID
    workspace: RunWorkspace
    sandbox: Sandbox
    journal: Journal
    endpoint: ModelEndpoint
    model_name: str
    code: CodeSearch | None = None


class _Cancelled(Exception):
    pass


class _Planned(Struct, frozen=True, kw_only=True):
    """A tool call as requested, with what the gate decided."""

    call: ToolCall
    tool: Tool[Any] | None
    arguments: dict[str, Any] | None
    problem: str = ""
    decision: PolicyDecision | None = None


class AgentLoop:
    def __init__(
        self,
        llm: LanguageModel,
        tools: Toolbox,
        gate: PolicyGate,
        checkpoints: CheckpointHook,
        spending: Spending,
        deltas: DeltaPublisher,
        settings: LoopSettings,
        approvals: Approvals | None = None,
        gates: GateRunner | None = None,
    ) -> None:
        self._approvals = approvals
        self._gates = gates if gates is not None and gates.active else None
        self._gate_attempts = 0
        self._wall: asyncio.Timeout | None = None
        self._llm = llm
        self._tools = tools
        self._gate = gate
        self._checkpoints = checkpoints
        self._spending = spending
        self._deltas = deltas
        self._settings = settings
        self._last_context_tokens = 0

    async def run(
        self,
        scope: RunScope,
        conversation: Conversation,
        cancel: CancelSignal,
        *,
        steps_done: int = 0,
    ) -> Outcome:
        s = self._settings
        stall = StallDetector(s.stall_window)
        step = steps_done
        deadline = asyncio.get_running_loop().time() + s.wall_seconds
        try:
            async with asyncio.timeout_at(deadline) as wall:
                self._wall = wall
                while True:
                    if cancel.is_set():
                        return Outcome(status="cancelled")
                    if step >= s.max_steps:
                        return Outcome(
                            status="failed",
                            reason="max_steps",
                            summary=f"stopped after {s.max_steps} steps without finishing",
                        )
                    step += 1
                    await self._compact(scope, conversation)
                    planned = await self._race(self._ask(scope, conversation, step), cancel)
                    record, ended = await self._act(scope, conversation, planned, cancel)
                    if ended is not None:
                        return ended
                    if not planned:
                        await self._nudge(scope, conversation, "no_tool_call", NO_TOOL_CALL)
                    verdict = stall.observe(record)
                    if verdict == "nudge":
                        await self._nudge(scope, conversation, "stalled", NUDGE)
                    elif verdict == "stalled":
                        return Outcome(
                            status="failed",
                            reason="stalled",
                            summary=f"no progress in {2 * s.stall_window} steps, after a "
                            "corrective message",
                        )
        except TimeoutError:
            if not wall.expired():
                raise
            return Outcome(
                status="failed",
                reason="wall_time",
                summary=f"stopped after {s.wall_seconds:g} s of wall time without finishing",
            )
        except _Cancelled:
            return Outcome(status="cancelled")
        except BudgetExceeded as e:
            return Outcome(status="failed", reason="budget_exceeded", summary=e.message)
        except MergeConflict as e:
            return Outcome(status="failed", reason="merge_conflict", summary=e.message)
        except LlmScriptExhausted as e:
            return Outcome(status="failed", reason="replay_exhausted", summary=e.message)
        except LlmContextTooLong as e:
            return Outcome(status="failed", reason="context_too_long", summary=e.message)
        except LlmError as e:
            return Outcome(status="failed", reason="model_error", summary=e.message)

    # -- one model call -----------------------------------------------------------------

    async def _ask(self, scope: RunScope, conversation: Conversation, step: int) -> list[_Planned]:
        tools = self._tools.specs()
        prompt_tokens = conversation.estimated_tokens() + sum(
            estimate_tokens(json.dumps(t.parameters) + t.description) for t in tools
        )
        hold = await self._spending.reserve(prompt_tokens)
        request = ChatRequest(
            endpoint=scope.endpoint,
            messages=tuple(conversation.messages),
            tools=tools,
            max_tokens=hold.max_tokens,
        )
        try:
            response = await self._llm.chat(request, on_delta=self._relay_delta)
        except BaseException:
            await self._spending.release(hold)
            raise
        cost = await self._spending.settle(hold, response.usage)
        await self._deltas.flush()
        self._last_context_tokens = response.usage.total_tokens
        message = response.message
        conversation.add_assistant(message.content or "", message.tool_calls)
        planned = [await self._plan(scope, call) for call in message.tool_calls]
        events: list[Event] = [_responded(response, step, scope.model_name, cost)]
        for p in planned:
            events.append(
                ToolCallRequested(
                    step=step,
                    call_id=p.call.id,
                    tool=p.call.name,
                    arguments=p.arguments or {},
                    raw_arguments="" if p.arguments is not None else p.call.arguments,
                )
            )
            if p.decision is not None:
                d = p.decision
                events.append(
                    PolicyDecided(
                        call_id=p.call.id,
                        tool=p.call.name,
                        decision=d.decision.value,
                        rule=d.rule,
                        scope=d.scope,
                        reason=d.reason,
                    )
                )
        await scope.journal.append(*events)
        return planned

    async def _relay_delta(self, delta: ChatDelta) -> None:
        if delta.content:
            await self._deltas.emit("model", delta.content)
        if delta.arguments:
            call = delta.tool_call_id or (
                str(delta.tool_call_index) if delta.tool_call_index is not None else None
            )
            await self._deltas.emit("tool_args", delta.arguments, call)

    async def _plan(self, scope: RunScope, call: ToolCall) -> _Planned:
        tool = self._tools.get(call.name)
        if tool is None:
            known = ", ".join(self._tools.names)
            return _Planned(
                call=call,
                tool=None,
                arguments=None,
                problem=f"unknown tool {call.name!r}; the tools are: {known}",
            )
        try:
            raw = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as e:
            return _Planned(
                call=call,
                tool=tool,
                arguments=None,
                problem=f"the arguments are not valid JSON ({e}); send a JSON object",
            )
        if not isinstance(raw, dict):
            return _Planned(
                call=call, tool=tool, arguments=None, problem="the arguments must be a JSON object"
            )
        try:
            args = tool.decode(raw)
        except Exception as e:  # ToolFailed: the message says what is wrong
            return _Planned(call=call, tool=tool, arguments=raw, problem=str(e))
        decision = await self._gate.decide(
            ToolRequest(
                tenant_id=scope.tenant_id,
                run_id=scope.run_id,
                project_id=scope.project_id,
                tool=tool.name,
                category=tool.category,
                arguments=raw,
                paths=tool.paths(args),
                command=tool.command(args),
                sandbox=scope.sandbox.kind,
            )
        )
        return _Planned(call=call, tool=tool, arguments=raw, decision=decision)

    # -- the tool calls -----------------------------------------------------------------

    async def _act(
        self,
        scope: RunScope,
        conversation: Conversation,
        planned: list[_Planned],
        cancel: CancelSignal,
    ) -> tuple[StepRecord, Outcome | None]:
        """Run the step's calls; the outcome when the run is done (finished, gates spent)."""
        changed = False
        failures = 0
        signatures = []
        for p in planned:
            signatures.append(f"{p.call.name}({p.call.arguments})")
            if p.decision is not None and p.decision.decision is Decision.ASK and not p.problem:
                p = await self._race(self._ask_approver(p), cancel)
            result, seq = await self._race(self._execute(scope, p), cancel)
            conversation.add_tool_result(p.call.id, p.call.name, result.output)
            failures += 0 if result.ok else 1
            if result.finished is not None:
                done = StepRecord(changed_workspace=True, calls=signatures)
                return done, await self._check_gates(scope, conversation, result.finished, cancel)
            changed = await self._checkpoint(scope, p, result, seq) or changed
        record = StepRecord(
            changed_workspace=changed,
            calls=signatures,
            all_failed=bool(planned) and failures == len(planned),
        )
        return record, None

    async def _check_gates(
        self, scope: RunScope, conversation: Conversation, summary: str, cancel: CancelSignal
    ) -> Outcome | None:
        """The run's outcome once the agent called finish: None sends it back to work."""
        if self._gates is None:
            return Outcome(status="succeeded", summary=summary)
        self._gate_attempts += 1

        async def emit(stream: StreamName, text: str) -> None:
            await self._deltas.emit(stream, text, "quality-gates")

        results = await self._race(self._gates.check(scope.sandbox, emit), cancel)
        await self._deltas.flush()
        ok = gates.passed(results)
        await scope.journal.append(
            QualityGatesChecked(
                attempt=self._gate_attempts,
                passed=ok,
                results=[msgspec.to_builtins(r) for r in results],
            )
        )
        if ok:
            return Outcome(status="succeeded", summary=summary)
        feedback = gates.report(results)
        if self._gate_attempts >= self._gates.gates.max_attempts:
            return Outcome(status="failed", reason="quality_gates_failed", summary=feedback)
        await self._nudge(scope, conversation, "quality_gates", feedback)
        return None

    async def _ask_approver(self, p: _Planned) -> _Planned:
        """The call with the gate's `ask` replaced by the approver's allow or deny."""
        assert p.decision is not None
        if self._approvals is None or p.tool is None or p.arguments is None:
            return p  # no approvals here: `_result_of` treats the ask as a denial
        args = p.tool.decode(p.arguments)
        verdict = await self._approvals.decide(
            Ask(
                call_id=p.call.id,
                tool=p.tool.name,
                category=p.tool.category,
                arguments=p.arguments,
                command=p.tool.command(args),
                paths=p.tool.paths(args),
                decision=p.decision,
            )
        )
        when = self._wall.when() if self._wall is not None else None
        if verdict.waited and self._wall is not None and when is not None:
            self._wall.reschedule(when + verdict.waited)  # waiting for a person is not agent time
        decided = msgspec.structs.replace(
            p.decision,
            decision=Decision.ALLOW if verdict.allow else Decision.DENY,
            reason=verdict.reason,
        )
        return msgspec.structs.replace(p, decision=decided)

    async def _execute(self, scope: RunScope, p: _Planned) -> tuple[ToolResult, int]:
        """Run the call and store its `ToolCallCompleted`; the result and that event's seq."""
        started = time.monotonic()
        result = await self._result_of(scope, p)
        await self._deltas.flush()
        stored = await scope.journal.append(
            ToolCallCompleted(
                call_id=p.call.id,
                tool=p.call.name,
                ok=result.ok,
                output=result.output,
                exit_code=result.exit_code,
                duration_s=round(time.monotonic() - started, 4),
                truncated=result.truncated,
                timed_out=result.timed_out,
                touched_paths=list(result.touched or ()),
                diff=result.diff,
            )
        )
        return result, stored[-1].seq

    async def _result_of(self, scope: RunScope, p: _Planned) -> ToolResult:
        if p.problem or p.tool is None or p.arguments is None:
            return ToolResult(ok=False, output=p.problem or "the call could not be read")
        decision = p.decision
        if decision is not None and decision.decision is Decision.DENY:
            return ToolResult(ok=False, output=f"denied by policy: {_why(decision)}")
        if decision is not None and decision.decision is Decision.ASK:
            # Without an approver an ask times out to deny (ARCHITECTURE.md, "headless").
            return ToolResult(
                ok=False, output=f"needs approval and no approver answered: {_why(decision)}"
            )
        tool = p.tool

        async def emit(stream: StreamName, text: str) -> None:
            await self._deltas.emit(stream, text, p.call.id)

        context = ToolContext(
            sandbox=scope.sandbox,
            output_chars=self._settings.output_chars,
            bash_timeout=self._settings.bash_timeout,
            bash_max_timeout=self._settings.bash_max_timeout,
            emit=emit,
            code=scope.code,
        )
        return await tool(tool.decode(p.arguments), context)

    async def _checkpoint(self, scope: RunScope, p: _Planned, result: ToolResult, seq: int) -> bool:
        """Checkpoint after a write, an edit or a command; True if files changed."""
        if p.tool is None or p.tool.category not in ("write", "edit", "bash") or p.problem:
            return False
        if p.decision is not None and p.decision.decision is not Decision.ALLOW:
            return False  # it did not run
        if p.tool.category != "bash" and not (result.ok and result.touched):
            return False
        if isinstance(scope.sandbox, LayeredSandbox):
            # A hybrid sandbox keeps writes in its layer: they reach the run's worktree
            # (and so its checkpoints) one step at a time, all or nothing, conflicts refused.
            merged = await scope.sandbox.merge()
            if not merged.changes:
                return False
        made = await self._checkpoints.checkpoint(scope.workspace, seq, result.touched)
        if made is None:
            return False
        await scope.journal.append(
            CheckpointCreated(
                checkpoint_id=made.id,
                after_seq=seq,
                changed=list(made.changed),
                files=len(made.files),
                bytes=made.total_bytes,
            )
        )
        return True

    # -- keeping the conversation going ------------------------------------------------

    async def _compact(self, scope: RunScope, conversation: Conversation) -> None:
        limit = self._settings.context_window * self._settings.compact_at
        before = max(self._last_context_tokens, conversation.estimated_tokens())
        if before <= limit:
            return
        elided = conversation.compactable()
        if not elided:
            return
        conversation.elide(elided)
        after = conversation.estimated_tokens()
        self._last_context_tokens = after
        await scope.journal.append(
            ContextCompacted(elided_calls=elided, tokens_before=before, tokens_after=after)
        )
        log.info("context compacted", run_id=str(scope.run_id), before=before, after=after)

    async def _nudge(
        self, scope: RunScope, conversation: Conversation, reason: str, message: str
    ) -> None:
        conversation.add_user(message)
        await scope.journal.append(AgentNudged(reason=reason, message=message))

    @staticmethod
    async def _race(work: Awaitable[T], cancel: CancelSignal) -> T:
        """`work`, unless the run is cancelled first (then the work is cancelled too)."""
        task = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(cancel.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            waiter.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise
        waiter.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise _Cancelled


def _why(decision: PolicyDecision) -> str:
    rule = f" (rule {decision.rule}, {decision.scope})" if decision.rule else ""
    return (decision.reason or decision.decision.value) + rule


def _responded(response: ChatResponse, step: int, model: str, cost: Any) -> ModelResponded:
    return ModelResponded(
        step=step,
        model=response.model or model,
        content=response.message.content or "",
        tool_calls=calls_as_dicts(response.message.tool_calls),
        finish_reason=response.finish_reason,
        input_tokens=response.usage.input_tokens,
        output_tokens=response.usage.output_tokens,
        usage_reported=response.usage.reported,
        cost_usd=cost,
        latency_s=round(response.latency, 4),
        attempts=response.attempts,
    )
