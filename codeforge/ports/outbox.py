"""The transactional outbox, as the relay that publishes it sees it.

Messages enter the outbox in the same transaction as the state that caused them
(`EventStore.create_run`); a relay claims them, publishes them to the queue and
marks them published, so a queue outage delays work but never loses it.

OutboxStore contract (one contract suite checks every adapter):

- The outbox is one queue for the whole installation: relays work for every
  tenant, so nothing here is scoped by tenant. Entries carry their `tenant_id`.
- An entry is *pending* until it is marked published, and *claimable* while it
  is pending and `now` has reached its hold: the end of its last claim's lease
  or the `retry_at` of its last release (an entry never claimed nor released is
  claimable at once).
- `claim(limit, lease_seconds, now)` atomically takes up to `limit` claimable
  entries, oldest first (by `created_at`, then `id`), and holds each until
  `now + lease_seconds`; it returns them in that order. Concurrent claimers — in
  this process or in others — never get the same entry while its lease runs,
  and a claimer never waits for another: entries being claimed elsewhere are
  skipped. Once a lease runs out the entry is claimable again, so a relay that
  died mid-publish delays its entries, never strands them. A claim does not
  count as an attempt.
- `mark_published(ids, now)` records `now` as the publication time of the pending
  entries among `ids`; entries already published keep their first time, and
  unknown ids are ignored (idempotent: a relay may repeat it after a crash).
  Published entries are never claimed again and no longer count as pending.
- `release(entry_id, error, retry_at)` records a failed publish: `attempts`
  grows by one, `last_error` becomes `error`, and the entry is claimable again
  once `now` reaches `retry_at` (back-off is the caller's choice; a `retry_at`
  in the past makes it claimable at once). Releasing an entry that is already
  published, or no longer stored, changes nothing.
- `pending_count()` counts pending entries (claimed or not);
  `oldest_pending_age(now)` is the age in seconds of the oldest pending entry
  (never negative), or None when nothing is pending. Both are cheap enough for
  readiness probes and metrics.
- `purge_published(older_than)` deletes entries published before `older_than`
  and returns how many; pending entries are never purged.
- Every `datetime` passed in must be timezone-aware, `limit` at least 1 and
  `lease_seconds` positive and finite, else `ValidationFailed` (nothing changes);
  `check_claim` and `check_time` are those rules. A release's `error` is stored
  as `storable_error` makes it (a failure is recorded even when its message
  holds what text columns refuse).
- Errors: `codeforge.ports.errors.DependencyUnavailable` when the storage is out
  of reach, `PortError` for any other storage failure.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from msgspec import Struct

from codeforge.domain.errors import ValidationFailed

__all__ = ["OutboxEntry", "OutboxStore", "check_claim", "check_time", "storable_error"]


class OutboxEntry(Struct, frozen=True, kw_only=True):
    """A claimed outbox message: what to publish, and how often publishing it failed."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    subject: str
    payload: dict[str, Any]
    headers: dict[str, str]
    created_at: datetime
    # Failed publishes so far (releases); claims are not counted.
    attempts: int
    last_error: str | None = None


class OutboxStore(Protocol):
    async def claim(
        self, *, limit: int, lease_seconds: float, now: datetime
    ) -> list[OutboxEntry]: ...

    async def mark_published(self, ids: Sequence[uuid.UUID], *, now: datetime) -> None: ...

    async def release(self, entry_id: uuid.UUID, *, error: str, retry_at: datetime) -> None: ...

    async def pending_count(self) -> int: ...

    async def oldest_pending_age(self, now: datetime) -> float | None: ...

    async def purge_published(self, *, older_than: datetime) -> int: ...


def check_time(name: str, when: datetime) -> datetime:
    """`when`, or `ValidationFailed` if it is naive (it would mean another instant once stored)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValidationFailed(f"{name} must carry a time zone", field=name)
    return when


def check_claim(limit: int, lease_seconds: float, now: datetime) -> datetime:
    """The end of the lease `claim` would grant, or `ValidationFailed` naming the bad argument."""
    if limit < 1:
        raise ValidationFailed(f"limit must be at least 1, not {limit}", field="limit")
    check_time("now", now)
    try:
        if not (math.isfinite(lease_seconds) and lease_seconds > 0):
            raise OverflowError
        return now + timedelta(seconds=lease_seconds)
    except OverflowError:
        raise ValidationFailed(
            f"lease_seconds must be a positive number of seconds, not {lease_seconds}",
            field="lease_seconds",
        ) from None


def storable_error(error: str) -> str:
    """`error` with NUL characters and lone surrogates escaped: text columns refuse both."""
    return error.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
