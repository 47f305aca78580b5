"""Browser sessions: an API key exchanged for a cookie, revocable on sign-out.

The cookie itself is signed by the HTTP layer; the store only remembers which
sessions exist so `DELETE /api/v1/sessions` really ends one (a signed cookie
alone cannot be revoked before it expires).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from msgspec import Struct


class Session(Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    key_id: uuid.UUID
    # SHA-256 of the CSRF token: the token itself only ever lives in the browser.
    csrf_hash: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at


class SessionStore(Protocol):
    """`get` returns None for unknown ids; `revoke` is idempotent."""

    async def add(self, session: Session) -> None: ...

    async def get(self, session_id: uuid.UUID) -> Session | None: ...

    async def revoke(self, session_id: uuid.UUID, at: datetime) -> None: ...
