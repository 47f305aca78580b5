"""Asks: when the policy gate answers `ask`, who decides, and how long the run waits.

In order:

1. An earlier approval "for this run" of what the same rule asks about answers it
   (recorded as `ApprovalDecided` by `run-scope`).
2. A headless run (no human approver: `approvals.headless`, `codeforge run`, or the
   run's `policy_overrides.headless`) follows the auto-approval rules per tool category:
   reads always; edits and writes only in a sandbox that isolates the filesystem;
   commands only in one that isolates the filesystem and processes; network never.
   Whatever the sandbox, an ask the policy marks not `automatic` is denied: a command
   that reaches the network, a change to a protected path (CI configuration), or a
   command the policy cannot read.
3. Otherwise the run waits (`ApprovalRequested`, status `awaiting_approval`) for an
   answer through `POST /api/v1/runs/{id}/approvals/{approval_id}`, which reaches the
   worker on the run's control subject; the notifier (a webhook) tells an approver. An
   ask unanswered within `approvals.timeout_seconds` is denied (`decided_by: timeout`).
   The time spent waiting does not count against the run's wall time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import structlog

from codeforge.domain.events import ApprovalDecided, ApprovalRequested
from codeforge.domain.ids import new_id
from codeforge.ports.errors import PortError
from codeforge.ports.executor import ApprovalAnswer, Journal, RunControls
from codeforge.ports.notifier import ApprovalNotice, ApprovalNotifier
from codeforge.ports.policy import PolicyDecision, ToolCategory
from codeforge.ports.sandbox import Capabilities

log = structlog.get_logger("codeforge.approvals")


@dataclass(frozen=True)
class Ask:
    """One call the gate asked about."""

    call_id: str
    tool: str
    category: ToolCategory
    arguments: dict[str, Any]
    command: str | None
    paths: tuple[str, ...]
    decision: PolicyDecision


@dataclass(frozen=True)
class Verdict:
    allow: bool
    reason: str
    # Seconds spent waiting for a person (given back to the run's wall time).
    waited: float = 0.0


def auto_decision(category: ToolCategory, sandbox: Capabilities) -> tuple[bool, str]:
    """The headless rules: what a run without a human approver may do of its own accord."""
    if category in ("read", "control"):
        return True, "reads are always allowed"
    if category in ("edit", "write"):
        if sandbox.isolates_filesystem:
            return True, "edits are allowed in a sandbox that isolates the filesystem"
        return False, "edits outside an isolating sandbox need an approver"
    if category == "bash":
        if sandbox.isolates_filesystem and sandbox.isolates_processes:
            return True, "commands are allowed in a sandbox that isolates files and processes"
        return False, "commands outside an isolating sandbox need an approver"
    return False, "network access is denied unless a policy allows it"


class Approvals:
    def __init__(
        self,
        journal: Journal,
        controls: RunControls,
        *,
        headless: bool,
        timeout: float,
        sandbox: Capabilities,
        notifier: ApprovalNotifier,
        notice_base: ApprovalNotice,
    ) -> None:
        self._journal = journal
        self._controls = controls
        self._headless = headless
        self._timeout = timeout
        self._sandbox = sandbox
        self._notifier = notifier
        self._notice = notice_base
        # (tool, rule) pairs approved "for this run".
        self._granted: set[tuple[str, str]] = set()

    async def decide(self, ask: Ask) -> Verdict:
        key = (ask.tool, ask.decision.rule)
        approval_id = f"ap_{new_id().hex}"
        if key in self._granted:
            await self._record(approval_id, True, "run", "run-scope", "approved for this run")
            return Verdict(allow=True, reason="approved earlier for this run")
        if self._headless:
            allow, why = auto_decision(ask.category, self._sandbox)
            if not ask.decision.automatic:
                allow, why = False, f"never approved automatically: {ask.decision.reason}"

            await self._record(approval_id, allow, "once", "auto", f"headless: {why}")
            return Verdict(allow=allow, reason=f"headless: {why}")
        return await self._wait_for_person(approval_id, ask)

    async def _wait_for_person(self, approval_id: str, ask: Ask) -> Verdict:
        d = ask.decision
        await self._journal.append(
            ApprovalRequested(
                approval_id=approval_id,
                call_id=ask.call_id,
                tool=ask.tool,
                arguments=ask.arguments,
                command=ask.command,
                paths=list(ask.paths),
                rule=d.rule,
                scope=d.scope,
                reason=d.reason,
                timeout_s=self._timeout,
            )
        )
        await self._tell(approval_id, ask)
        started = time.monotonic()
        try:
            answer = await asyncio.wait_for(self._controls.answer(approval_id), self._timeout)
        except TimeoutError:
            waited = time.monotonic() - started
            why = f"nobody answered within {self._timeout:g} s"
            await self._record(approval_id, False, "once", "timeout", why)
            return Verdict(allow=False, reason=why, waited=waited)
        waited = time.monotonic() - started
        await self._record(
            approval_id, answer.allow, answer.scope, answer.decided_by, answer.reason
        )
        if answer.allow and answer.scope == "run":
            self._granted.add((ask.tool, d.rule))
        return Verdict(allow=answer.allow, reason=_reason(answer), waited=waited)

    async def _record(
        self, approval_id: str, allow: bool, scope: str, by: str, reason: str
    ) -> None:
        await self._journal.append(
            ApprovalDecided(
                approval_id=approval_id,
                decision="allow" if allow else "deny",
                scope=scope,
                decided_by=by,
                reason=reason,
            )
        )

    async def _tell(self, approval_id: str, ask: Ask) -> None:
        base = self._notice
        notice = ApprovalNotice(
            tenant_id=base.tenant_id,
            run_id=base.run_id,
            approval_id=approval_id,
            tool=ask.tool,
            arguments=ask.arguments,
            command=ask.command,
            paths=list(ask.paths),
            rule=ask.decision.rule,
            reason=ask.decision.reason,
            timeout_s=self._timeout,
            answer_url=f"{base.answer_url}/{approval_id}" if base.answer_url else "",
        )
        try:
            await self._notifier.notify(notice)
        except PortError as e:
            log.warning("approver could not be notified", approval_id=approval_id, error=str(e))


def _reason(answer: ApprovalAnswer) -> str:
    who = f" by {answer.decided_by}" if answer.decided_by else ""
    verb = "approved" if answer.allow else "denied"
    return f"{verb}{who}" + (f": {answer.reason}" if answer.reason else "")
