"""The outbox relays' side of a `MemoryEventStore`'s outbox.

Implements `codeforge.ports.outbox.OutboxStore` (its module docstring is the
contract) on the rows `MemoryEventStore.create_run` writes, through
`MemoryEventStore.outbox_rows`. No method awaits before it is done, so on one
event loop each is atomic, as one statement is in PostgreSQL: two concurrent
claims never take the same entry. Not thread-safe.

Entries are handed out as PostgreSQL hands them out: payload and headers go
through JSON on every claim, so a caller never holds the stored dicts.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import msgspec

from adapters.memory.event_store import MemoryEventStore, OutboxRow
from codeforge.ports.outbox import OutboxEntry, check_claim, check_time, storable_error


class MemoryOutbox:
    """`OutboxStore` over the outbox of `events`."""

    def __init__(self, events: MemoryEventStore) -> None:
        self._rows = events.outbox_rows()

    async def claim(self, *, limit: int, lease_seconds: float, now: datetime) -> list[OutboxEntry]:
        until = check_claim(limit, lease_seconds, now)
        due = sorted(
            (
                (entry_id, row)
                for entry_id, row in self._rows.items()
                if row.published_at is None
                and (row.claimed_until is None or row.claimed_until <= now)
            ),
            key=lambda item: (item[1].created_at, item[0]),
        )[:limit]
        for entry_id, row in due:
            self._rows[entry_id] = msgspec.structs.replace(row, claimed_until=until)
        return [_entry(entry_id, row) for entry_id, row in due]

    async def mark_published(self, ids: Sequence[uuid.UUID], *, now: datetime) -> None:
        check_time("now", now)
        for entry_id in ids:
            row = self._rows.get(entry_id)
            if row is not None and row.published_at is None:
                self._rows[entry_id] = msgspec.structs.replace(
                    row, published_at=now, claimed_until=None
                )

    async def release(self, entry_id: uuid.UUID, *, error: str, retry_at: datetime) -> None:
        check_time("retry_at", retry_at)
        row = self._rows.get(entry_id)
        if row is None or row.published_at is not None:
            return
        self._rows[entry_id] = msgspec.structs.replace(
            row,
            attempts=row.attempts + 1,
            last_error=storable_error(error),
            claimed_until=retry_at,
        )

    async def pending_count(self) -> int:
        return sum(1 for row in self._rows.values() if row.published_at is None)

    async def oldest_pending_age(self, now: datetime) -> float | None:
        check_time("now", now)
        pending = [row.created_at for row in self._rows.values() if row.published_at is None]
        if not pending:
            return None
        return max(0.0, (now - min(pending)).total_seconds())

    async def purge_published(self, *, older_than: datetime) -> int:
        check_time("older_than", older_than)
        purged = [
            entry_id
            for entry_id, row in self._rows.items()
            if row.published_at is not None and row.published_at < older_than
        ]
        for entry_id in purged:
            del self._rows[entry_id]
        return len(purged)


def _entry(entry_id: uuid.UUID, row: OutboxRow) -> OutboxEntry:
    message = row.message
    return OutboxEntry(
        id=entry_id,
        tenant_id=row.tenant_id,
        subject=message.subject,
        payload=msgspec.json.decode(msgspec.json.encode(message.payload)),
        headers=msgspec.json.decode(msgspec.json.encode(message.headers), type=dict[str, str]),
        created_at=row.created_at,
        attempts=row.attempts,
        last_error=row.last_error,
    )
