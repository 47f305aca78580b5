"""Browser sessions in PostgreSQL (table `sessions`, migration 0004).

Implements `codeforge.ports.sessions.SessionStore`. Beyond the port's contract, shared
with the in-memory adapter: `add` with an id that exists raises `Conflict` (field "id");
`revoke` keeps the first revocation time and does nothing for an unknown id, so signing
out twice, or out of a session already gone, succeeds. NUL or a lone surrogate in
`csrf_hash` is refused
(`ValidationFailed`); times must be timezone-aware (`ValueError`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import psycopg
from psycopg_pool import AsyncConnectionPool

from adapters import store_rules
from adapters.postgres.errors import describe
from codeforge.domain.errors import Conflict, ValidationFailed
from codeforge.ports.errors import DependencyUnavailable, PortError
from codeforge.ports.sessions import Session

_ADD = """
INSERT INTO sessions (id, tenant_id, key_id, csrf_hash, created_at, expires_at, revoked_at)
VALUES (%(id)s, %(tenant_id)s, %(key_id)s, %(csrf_hash)s, %(created_at)s, %(expires_at)s,
        %(revoked_at)s)
"""

_GET = """
SELECT id, tenant_id, key_id, csrf_hash, created_at, expires_at, revoked_at
FROM sessions WHERE id = %(id)s
"""

_REVOKE = "UPDATE sessions SET revoked_at = %(at)s WHERE id = %(id)s AND revoked_at IS NULL"


class PostgresSessionStore:
    """`SessionStore` on a psycopg pool of autocommit connections."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def add(self, session: Session) -> None:
        if not store_rules.storable_text(session.csrf_hash):
            raise ValidationFailed(
                "csrf_hash may not contain NUL characters or invalid Unicode", field="csrf_hash"
            )
        _check_aware(session.created_at, session.expires_at, session.revoked_at)
        params = {
            "id": session.id,
            "tenant_id": session.tenant_id,
            "key_id": session.key_id,
            "csrf_hash": session.csrf_hash,
            "created_at": session.created_at,
            "expires_at": session.expires_at,
            "revoked_at": session.revoked_at,
        }
        async with _translated("adding a session"), self._pool.connection() as conn:
            try:
                await conn.execute(_ADD, params)
            except psycopg.errors.UniqueViolation as e:
                raise Conflict(f"a session with id {session.id} already exists", field="id") from e

    async def get(self, session_id: uuid.UUID) -> Session | None:
        async with _translated("reading a session"), self._pool.connection() as conn:
            row = await (await conn.execute(_GET, {"id": session_id})).fetchone()
        if row is None:
            return None
        id_, tenant_id, key_id, csrf_hash, created_at, expires_at, revoked_at = row
        return Session(
            id=id_,
            tenant_id=tenant_id,
            key_id=key_id,
            csrf_hash=csrf_hash,
            created_at=created_at,
            expires_at=expires_at,
            revoked_at=revoked_at,
        )

    async def revoke(self, session_id: uuid.UUID, at: datetime) -> None:
        _check_aware(at)
        async with _translated("revoking a session"), self._pool.connection() as conn:
            await conn.execute(_REVOKE, {"id": session_id, "at": at})


@asynccontextmanager
async def _translated(doing: str) -> AsyncIterator[None]:
    try:
        yield
    except psycopg.OperationalError as e:
        raise DependencyUnavailable(
            f"the database is unavailable while {doing}: {describe(e)}"
        ) from e
    except psycopg.Error as e:
        raise PortError(f"the database failed while {doing}: {describe(e)}") from e


def _check_aware(*moments: datetime | None) -> None:
    if any(moment is not None and moment.tzinfo is None for moment in moments):
        raise ValueError("times given to the session store must be timezone-aware")
