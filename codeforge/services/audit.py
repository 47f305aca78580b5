"""The audit trail: who did what, when, and what was decided — read from the run logs.

Every policy decision (`PolicyDecided`), every answer to an ask (`ApprovalDecided`),
every delivery (`ArtifactStored`, and `RunCompleted` with what it delivered) and every
run requested (`RunRequested`) is already in the append-only log; the trail is those
events of the tenant in log order. "Who" is the API key that answered an ask, or for
everything else the key that requested the run the event belongs to.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from msgspec import Struct

from codeforge.domain.events import (
    ApprovalDecided,
    ArtifactStored,
    Event,
    PolicyDecided,
    RunCompleted,
    RunRequested,
    StoredEvent,
    encode_payload,
)
from codeforge.domain.keys import Principal
from codeforge.ports.events import EventStore

Kind = Literal["run", "policy", "approval", "delivery"]

KINDS: dict[str, Kind] = {
    "RunRequested": "run",
    "PolicyDecided": "policy",
    "ApprovalDecided": "approval",
    "ArtifactStored": "delivery",
    "RunCompleted": "delivery",
}


class AuditEntry(Struct, frozen=True, kw_only=True):
    position: int
    at: datetime
    kind: Kind
    action: str
    run_id: uuid.UUID
    seq: int
    # An API key id, or "auto" / "timeout" / "run-scope" for asks nobody answered by hand.
    who: str | None = None
    decision: str | None = None
    subject: str | None = None
    detail: dict[str, Any] = {}


class AuditPage(Struct, frozen=True, kw_only=True):
    items: list[AuditEntry]
    # Pass as `after` for the next page (None: nothing more yet).
    next_after: int | None = None


class Audit:
    def __init__(self, events: EventStore) -> None:
        self._events = events

    async def trail(
        self,
        principal: Principal,
        *,
        after: int = 0,
        limit: int = 200,
        kinds: set[Kind] | None = None,
    ) -> AuditPage:
        types = [t for t, k in KINDS.items() if kinds is None or k in kinds]
        found = await self._events.load_by_types(
            principal.tenant_id, types, after=after, limit=limit
        )
        requesters: dict[uuid.UUID, str | None] = {}
        items = []
        for stored in found:
            run = stored.run_id
            if run not in requesters:
                requesters[run] = await self._requester(principal, run, stored)
            items.append(_entry(stored, requesters[run]))
        return AuditPage(items=items, next_after=found[-1].position if found else None)

    async def _requester(
        self, principal: Principal, run_id: uuid.UUID, stored: StoredEvent
    ) -> str | None:
        first: Event = stored.event
        if not isinstance(first, RunRequested):
            [head] = await self._events.load(principal.tenant_id, run_id, limit=1)
            first = head.event
        by = first.requested_by if isinstance(first, RunRequested) else None
        return str(by) if by else None


def _entry(stored: StoredEvent, requester: str | None) -> AuditEntry:
    event: Event = stored.event
    who: str | None = requester
    decision = subject = None
    detail = encode_payload(event)
    match event:
        case PolicyDecided(decision=d, tool=tool):
            decision, subject = d, tool
        case ApprovalDecided(decision=d, decided_by=by, approval_id=aid):
            decision, subject, who = d, aid, by or requester
        case ArtifactStored(name=name):
            subject = name
        case RunCompleted(artifact=artifact):
            decision = "succeeded"
            subject = ", ".join(k for k in ("patch", "commit", "pushed", "pr") if artifact.get(k))
        case RunRequested(deliver=deliver):
            subject = f"deliver {deliver}"
    return AuditEntry(
        position=stored.position,
        at=stored.created_at,
        kind=KINDS[stored.type],
        action=stored.type,
        run_id=stored.run_id,
        seq=stored.seq,
        who=who,
        decision=decision,
        subject=subject or None,
        detail=detail,
    )
