"""Answering a run's asks: what waits for an approver, and passing on the answer.

The state of an approval is a fold over the run's events (`ApprovalRequested`, then
`ApprovalDecided`); an answer travels to the worker holding the run on its control
subject, and the worker records the decision — so an answer given twice, or after a
timeout already denied the call, changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec
from msgspec import Struct

from codeforge.domain.commands import ControlRun
from codeforge.domain.errors import Conflict, NotFound
from codeforge.domain.events import ApprovalDecided, ApprovalRequested
from codeforge.domain.keys import Principal
from codeforge.domain.runs import RunStatus
from codeforge.ports.events import EventStore
from codeforge.services.run_control import RunControl


class Approval(Struct, frozen=True, kw_only=True):
    approval_id: str
    call_id: str
    tool: str
    arguments: dict[str, Any] = {}
    command: str | None = None
    paths: list[str] = []
    rule: str = ""
    reason: str = ""
    requested_at: datetime
    state: Literal["pending", "allowed", "denied"] = "pending"
    scope: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None


class RunApprovals:
    def __init__(self, events: EventStore, control: RunControl) -> None:
        self._events = events
        self._control = control

    async def list(self, principal: Principal, run_id: uuid.UUID) -> list[Approval]:
        await self._events.get_run(principal.tenant_id, run_id)
        found: dict[str, Approval] = {}
        for stored in await self._events.load(principal.tenant_id, run_id):
            match stored.event:
                case ApprovalRequested() as asked:
                    found[asked.approval_id] = Approval(
                        approval_id=asked.approval_id,
                        call_id=asked.call_id,
                        tool=asked.tool,
                        arguments=asked.arguments,
                        command=asked.command,
                        paths=asked.paths,
                        rule=asked.rule,
                        reason=asked.reason,
                        requested_at=stored.created_at,
                    )
                case ApprovalDecided(approval_id=aid) as decided if aid in found:
                    found[aid] = msgspec.structs.replace(
                        found[aid],
                        state="allowed" if decided.decision == "allow" else "denied",
                        scope=decided.scope,
                        decided_by=decided.decided_by,
                        decided_at=stored.created_at,
                        decision_reason=decided.reason,
                    )
        return list(found.values())

    async def answer(
        self,
        principal: Principal,
        run_id: uuid.UUID,
        approval_id: str,
        *,
        allow: bool,
        scope: Literal["once", "run"] = "once",
        reason: str = "",
    ) -> Approval:
        """Send the answer to the worker; the approval as it was when answered."""
        principal.require_mutation()
        run = await self._events.get_run(principal.tenant_id, run_id)
        approvals = {a.approval_id: a for a in await self.list(principal, run_id)}
        approval = approvals.get(approval_id)
        if approval is None:
            raise NotFound(f"run {run_id} has no approval {approval_id!r}", field="approval_id")
        if approval.state != "pending":
            raise Conflict(f"approval {approval_id} was already decided ({approval.state})")
        if run.status is not RunStatus.AWAITING_APPROVAL:
            raise Conflict(f"the run is {run.status.value}, not waiting for an approval")
        why = reason.encode("utf-8", "replace").decode().strip()
        await self._control.send(
            ControlRun(
                run_id=run.id,
                tenant_id=run.tenant_id,
                action="approve" if allow else "deny",
                approval_id=approval_id,
                reason=why,
                scope=scope,
                decided_by=str(principal.key_id),
            )
        )
        return approval
