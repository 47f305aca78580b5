"""The outbox relays' side of the `outbox` table in PostgreSQL.

Implements `codeforge.ports.outbox.OutboxStore` (its module docstring is the
contract). How each promise is kept:

- A claim is one statement: a CTE picks the claimable rows oldest first with
  `FOR UPDATE SKIP LOCKED` and the UPDATE sets their `claimed_until`. Rows that
  another claim has locked are skipped, not waited for; a row another claim
  updated and committed meanwhile is re-checked against the WHERE clause under
  READ COMMITTED and dropped, since its `claimed_until` now lies ahead. So two
  relays never take the same row while its lease runs.
- `claimed_until` doubles as the retry time of a release: one column says when a
  row may be claimed next, so the claim has one condition to test.
- `mark_published` and `release` touch only unpublished rows, which makes the
  first idempotent and the second harmless after a publish by another relay.
- Driver errors become port errors here: a database out of reach
  `DependencyUnavailable`, anything else `PortError`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from adapters.postgres.errors import describe
from codeforge.ports.errors import DependencyUnavailable, PortError
from codeforge.ports.outbox import OutboxEntry, check_claim, check_time, storable_error

_CLAIM = (
    "WITH due AS ("
    " SELECT id FROM outbox"
    " WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until <= %(now)s)"
    " ORDER BY created_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    " UPDATE outbox AS o SET claimed_until = %(until)s FROM due WHERE o.id = due.id"
    " RETURNING o.id, o.tenant_id, o.subject, o.payload::text, o.headers::text,"
    " o.created_at, o.attempts, o.last_error"
)
_MARK_PUBLISHED = (
    "UPDATE outbox SET published_at = %s, claimed_until = NULL"
    " WHERE id = ANY(%s) AND published_at IS NULL"
)
_RELEASE = (
    "UPDATE outbox SET attempts = attempts + 1, last_error = %s, claimed_until = %s"
    " WHERE id = %s AND published_at IS NULL"
)
_PENDING = "SELECT count(*), min(created_at) FROM outbox WHERE published_at IS NULL"


class PostgresOutbox:
    """`OutboxStore` on the application's pool (autocommit connections)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def claim(self, *, limit: int, lease_seconds: float, now: datetime) -> list[OutboxEntry]:
        until = check_claim(limit, lease_seconds, now)
        async with self._connection() as conn:
            cursor = await conn.execute(_CLAIM, {"now": now, "until": until, "limit": limit})
            rows = await cursor.fetchall()
        # RETURNING follows no ORDER BY: put the batch back in claim order.
        return sorted((_entry(row) for row in rows), key=lambda e: (e.created_at, e.id))

    async def mark_published(self, ids: Sequence[uuid.UUID], *, now: datetime) -> None:
        check_time("now", now)
        if not ids:
            return
        async with self._connection() as conn:
            await conn.execute(_MARK_PUBLISHED, (now, list(ids)))

    async def release(self, entry_id: uuid.UUID, *, error: str, retry_at: datetime) -> None:
        check_time("retry_at", retry_at)
        async with self._connection() as conn:
            await conn.execute(_RELEASE, (storable_error(error), retry_at, entry_id))

    async def pending_count(self) -> int:
        count, _ = await self._pending()
        return int(count)

    async def oldest_pending_age(self, now: datetime) -> float | None:
        check_time("now", now)
        _, oldest = await self._pending()
        if oldest is None:
            return None
        return max(0.0, (now - oldest).total_seconds())

    async def purge_published(self, *, older_than: datetime) -> int:
        check_time("older_than", older_than)
        async with self._connection() as conn:
            cursor = await conn.execute(
                "DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < %s",
                (older_than,),
            )
            return cursor.rowcount

    async def _pending(self) -> tuple[int, datetime | None]:
        async with self._connection() as conn:
            cursor = await conn.execute(_PENDING)
            row = await cursor.fetchone()
        assert row is not None  # an aggregate without GROUP BY always yields one row
        return row[0], row[1]

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError) as e:
            raise DependencyUnavailable(f"the outbox is unavailable: {describe(e)}") from e
        except psycopg.Error as e:
            raise PortError(f"the outbox failed: {describe(e)}") from e


def _entry(row: tuple[Any, ...]) -> OutboxEntry:
    entry_id, tenant_id, subject, payload, headers, created_at, attempts, last_error = row
    return OutboxEntry(
        id=entry_id,
        tenant_id=tenant_id,
        subject=subject,
        payload=msgspec.json.decode(payload),
        headers=msgspec.json.decode(headers, type=dict[str, str]),
        created_at=created_at,
        attempts=attempts,
        last_error=last_error,
    )
