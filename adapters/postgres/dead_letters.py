"""Dead letters in the `dead_letters` table (migration 0006).

Implements `codeforge.ports.dead_letters.DeadLetterStore` (its module docstring is the
contract). How each promise is kept:

- `record` is `INSERT … ON CONFLICT (id) DO NOTHING`: a second delivery of the same letter,
  even concurrent with the first, stores nothing and reports so through the row count.
- `list` pages by the row value `(failed_at, id)`, which the primary key makes unique; the
  cursor letter's `failed_at` is read first, so a cursor that names no letter is refused
  instead of silently starting over. An exact subject uses the subject index; a pattern
  becomes an anchored regular expression where "*" is one token.
- `mark_replayed` is one UPDATE with `replay_count + 1`: concurrent marks never lose a count.
- Driver errors become port errors here: a database out of reach `DependencyUnavailable`,
  anything else `PortError`.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from adapters.postgres.errors import describe
from codeforge.domain.errors import NotFound
from codeforge.ports.dead_letters import (
    StoredDeadLetter,
    check_limit,
    check_subject_filter,
    check_time,
    stored_from,
    unknown_cursor,
)
from codeforge.ports.errors import DependencyUnavailable, PortError
from codeforge.ports.queue import DeadLetter
from codeforge.ports.stores import Page

_COLUMNS = (
    "id, subject, payload, headers::text, reason, error, attempts, consumer,"
    " failed_at, recorded_at, replayed_at, replay_count"
)
_RECORD = (
    "INSERT INTO dead_letters (id, subject, payload, headers, reason, error, attempts,"
    " consumer, failed_at, recorded_at)"
    " VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (id) DO NOTHING"
)
_GET = f"SELECT {_COLUMNS} FROM dead_letters WHERE id = %s"  # noqa: S608 - constant columns
_CURSOR = "SELECT failed_at FROM dead_letters WHERE id = %s"
_MARK_REPLAYED = (
    "UPDATE dead_letters SET replayed_at = %s, replay_count = replay_count + 1"  # noqa: S608
    f" WHERE id = %s RETURNING {_COLUMNS}"
)


class PostgresDeadLetterStore:
    """`DeadLetterStore` on the application's pool (autocommit connections)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def record(self, letter: DeadLetter, *, at: datetime) -> bool:
        s = stored_from(letter, at)
        async with self._connection() as conn:
            cursor = await conn.execute(
                _RECORD,
                (
                    s.id,
                    s.subject,
                    s.payload,
                    msgspec.json.encode(s.headers).decode(),
                    s.reason,
                    s.error,
                    s.attempts,
                    s.consumer,
                    s.failed_at,
                    s.recorded_at,
                ),
            )
            return cursor.rowcount == 1

    async def get(self, letter_id: uuid.UUID) -> StoredDeadLetter:
        async with self._connection() as conn:
            cursor = await conn.execute(_GET, (letter_id,))
            row = await cursor.fetchone()
        if row is None:
            raise NotFound(f"dead letter {letter_id} not found")
        return _letter(row)

    async def list(
        self,
        *,
        limit: int = 50,
        after: uuid.UUID | None = None,
        subject: str | None = None,
    ) -> Page[StoredDeadLetter]:
        check_limit(limit)
        conditions: list[str] = []
        params: list[Any] = []
        if subject is not None:
            tokens = check_subject_filter(subject)
            if "*" in tokens:
                conditions.append("subject ~ %s")
                params.append(_pattern(tokens))
            else:
                conditions.append("subject = %s")
                params.append(subject)
        async with self._connection() as conn:
            if after is not None:
                cursor = await conn.execute(_CURSOR, (after,))
                found = await cursor.fetchone()
                if found is None:
                    raise unknown_cursor(after)
                conditions.append("(failed_at, id) < (%s, %s)")
                params += [found[0], after]
            where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
            cursor = await conn.execute(
                # Columns and conditions are constants; values travel as parameters.
                f"SELECT {_COLUMNS} FROM dead_letters{where}"  # noqa: S608
                " ORDER BY failed_at DESC, id DESC LIMIT %s",
                (*params, limit + 1),
            )
            rows = await cursor.fetchall()
        items = [_letter(row) for row in rows[:limit]]
        return Page(items, str(items[-1].id) if len(rows) > limit else None)

    async def mark_replayed(self, letter_id: uuid.UUID, *, at: datetime) -> StoredDeadLetter:
        check_time("at", at)
        async with self._connection() as conn:
            cursor = await conn.execute(_MARK_REPLAYED, (at, letter_id))
            row = await cursor.fetchone()
        if row is None:
            raise NotFound(f"dead letter {letter_id} not found")
        return _letter(row)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError) as e:
            raise DependencyUnavailable(
                f"the dead-letter store is unavailable: {describe(e)}"
            ) from e
        except psycopg.Error as e:
            raise PortError(f"the dead-letter store failed: {describe(e)}") from e


def _pattern(tokens: list[str]) -> str:
    # Tokens are letters, digits, "_" and "-" (checked): escaped, none is special.
    return "^" + r"\.".join("[^.]+" if t == "*" else re.escape(t) for t in tokens) + "$"


def _letter(row: tuple[Any, ...]) -> StoredDeadLetter:
    (
        letter_id,
        subject,
        payload,
        headers,
        reason,
        error,
        attempts,
        consumer,
        failed_at,
        recorded_at,
        replayed_at,
        replay_count,
    ) = row
    return StoredDeadLetter(
        id=letter_id,
        subject=subject,
        payload=bytes(payload),
        headers=msgspec.json.decode(headers, type=dict[str, str]),
        reason=reason,
        error=error,
        attempts=attempts,
        consumer=consumer,
        failed_at=failed_at,
        recorded_at=recorded_at,
        replayed_at=replayed_at,
        replay_count=replay_count,
    )
