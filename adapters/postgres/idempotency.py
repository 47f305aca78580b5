"""Idempotency records in PostgreSQL (table `idempotency_keys`, migration 0004).

Implements `codeforge.ports.idempotency.IdempotencyStore`. Beyond the port's contract,
shared with the in-memory adapter:

- `complete` raises `NotFound` when no claim is in progress for the key (never claimed,
  released, or purged) and `Conflict` when the key is already completed: a response is
  stored once, and never over a record it does not belong to.
- `release` only forgets an in-progress claim; releasing anything else does nothing.
- `scope`, `key` and `fingerprint` may not contain NUL characters (`ValidationFailed`);
  times must be timezone-aware (`ValueError`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool

from adapters.postgres.errors import describe
from codeforge.domain.errors import Conflict, NotFound, ValidationFailed
from codeforge.ports.errors import DependencyUnavailable, PortError
from codeforge.ports.idempotency import Claimed, IdempotencyRecord, StoredResponse

# A claim that loses the insert reads the winner's row; if that row vanished in between
# (released or purged), the claim is simply tried again. Each retry needs another
# concurrent change to the same key, so a handful of attempts is plenty.
_CLAIM_ATTEMPTS = 8

# One statement, so of N concurrent claims exactly one inserts (or takes over an
# expired record); the others wait on the key's lock and see the winner's row.
_CLAIM = """
INSERT INTO idempotency_keys AS k (scope, key, fingerprint, state, created_at, expires_at)
VALUES (%(scope)s, %(key)s, %(fingerprint)s, 'in_progress', %(now)s, %(expires_at)s)
ON CONFLICT (scope, key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint,
        state = 'in_progress',
        status_code = NULL,
        headers = NULL,
        body = NULL,
        created_at = EXCLUDED.created_at,
        expires_at = EXCLUDED.expires_at
    WHERE k.expires_at <= %(now)s
RETURNING true
"""

_GET = """
SELECT state, fingerprint, status_code, headers::text, body, expires_at
FROM idempotency_keys
WHERE scope = %(scope)s AND key = %(key)s AND expires_at > %(now)s
"""

_COMPLETE = """
UPDATE idempotency_keys
SET state = 'completed', status_code = %(status_code)s, headers = %(headers)s::jsonb,
    body = %(body)s
WHERE scope = %(scope)s AND key = %(key)s AND state = 'in_progress'
RETURNING true
"""

_STATE = "SELECT state FROM idempotency_keys WHERE scope = %(scope)s AND key = %(key)s"

_RELEASE = """
DELETE FROM idempotency_keys
WHERE scope = %(scope)s AND key = %(key)s AND state = 'in_progress'
"""

_PURGE = "DELETE FROM idempotency_keys WHERE expires_at <= %(now)s"

_headers_decoder = msgspec.json.Decoder(dict[str, str])


class PostgresIdempotencyStore:
    """`IdempotencyStore` on a psycopg pool of autocommit connections."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def claim(
        self, scope: str, key: str, fingerprint: str, now: datetime, ttl: timedelta
    ) -> Claimed | IdempotencyRecord:
        _check_text(scope=scope, key=key, fingerprint=fingerprint)
        _check_aware(now)
        params = {
            "scope": scope,
            "key": key,
            "fingerprint": fingerprint,
            "now": now,
            "expires_at": now + ttl,
        }
        async with _translated("claiming an idempotency key"), self._pool.connection() as conn:
            for _ in range(_CLAIM_ATTEMPTS):
                if await (await conn.execute(_CLAIM, params)).fetchone() is not None:
                    return Claimed()
                row = await (await conn.execute(_GET, params)).fetchone()
                if row is not None:
                    return _record(row)
        raise PortError(
            f"idempotency key {key!r} kept changing while it was being claimed; try again"
        )

    async def get(self, scope: str, key: str, now: datetime) -> IdempotencyRecord | None:
        _check_aware(now)
        _check_text(scope=scope, key=key)
        params = {"scope": scope, "key": key, "now": now}
        async with _translated("reading an idempotency key"), self._pool.connection() as conn:
            row = await (await conn.execute(_GET, params)).fetchone()
        return None if row is None else _record(row)

    async def complete(self, scope: str, key: str, response: StoredResponse) -> None:
        _check_text(scope=scope, key=key)
        params = {
            "scope": scope,
            "key": key,
            "status_code": response.status_code,
            "headers": msgspec.json.encode(response.headers).decode(),
            "body": response.body,
        }
        async with _translated("completing an idempotency key"), self._pool.connection() as conn:
            if await (await conn.execute(_COMPLETE, params)).fetchone() is not None:
                return
            row = await (await conn.execute(_STATE, params)).fetchone()
        if row is not None and row[0] == "completed":
            raise Conflict(f"idempotency key {key!r} is already completed", field="key")
        raise NotFound(f"idempotency key {key!r} has no claim in progress", field="key")

    async def release(self, scope: str, key: str) -> None:
        _check_text(scope=scope, key=key)
        params = {"scope": scope, "key": key}
        async with _translated("releasing an idempotency key"), self._pool.connection() as conn:
            await conn.execute(_RELEASE, params)

    async def purge_expired(self, now: datetime) -> int:
        _check_aware(now)
        async with _translated("purging idempotency keys"), self._pool.connection() as conn:
            cursor = await conn.execute(_PURGE, {"now": now})
            return cursor.rowcount


def _record(row: tuple[Any, ...]) -> IdempotencyRecord:
    state, fingerprint, status_code, headers, body, expires_at = row
    response = None
    if state == "completed":
        response = StoredResponse(status_code, _headers_decoder.decode(headers), bytes(body))
    return IdempotencyRecord(
        state=state, fingerprint=fingerprint, response=response, expires_at=expires_at
    )


def _check_text(**values: str) -> None:
    # PostgreSQL text holds neither NUL nor lone surrogates; both adapters refuse them alike.
    for field, value in values.items():
        if "\x00" in value:
            raise ValidationFailed(f"{field} may not contain NUL characters", field=field)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationFailed(f"{field} is not valid Unicode text", field=field) from None


def _check_aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise ValueError("times given to the idempotency store must be timezone-aware")


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
