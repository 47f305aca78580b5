"""Browser sessions in a dict, with the PostgreSQL adapter's invariants.

Implements `codeforge.ports.sessions.SessionStore` for one process (not thread-safe):
`add` with an id that exists raises `Conflict` (field "id"); `revoke` keeps the first
revocation time and does nothing for an unknown id; NUL or a lone surrogate in
`csrf_hash` is refused
(`ValidationFailed`); times must be timezone-aware (`ValueError`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from adapters import store_rules
from codeforge.domain.errors import Conflict, ValidationFailed
from codeforge.ports.sessions import Session


class MemorySessionStore:
    def __init__(self) -> None:
        self._sessions: dict[uuid.UUID, Session] = {}

    async def add(self, session: Session) -> None:
        if not store_rules.storable_text(session.csrf_hash):
            raise ValidationFailed(
                "csrf_hash may not contain NUL characters or invalid Unicode", field="csrf_hash"
            )
        _check_aware(session.created_at, session.expires_at, session.revoked_at)
        if session.id in self._sessions:
            raise Conflict(f"a session with id {session.id} already exists", field="id")
        self._sessions[session.id] = session

    async def get(self, session_id: uuid.UUID) -> Session | None:
        return self._sessions.get(session_id)

    async def revoke(self, session_id: uuid.UUID, at: datetime) -> None:
        _check_aware(at)
        session = self._sessions.get(session_id)
        if session is not None and session.revoked_at is None:
            self._sessions[session_id] = msgspec.structs.replace(session, revoked_at=at)


def _check_aware(*moments: datetime | None) -> None:
    if any(moment is not None and moment.tzinfo is None for moment in moments):
        raise ValueError("times given to the session store must be timezone-aware")
