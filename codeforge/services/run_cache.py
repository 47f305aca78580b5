"""Run projections served from memory, kept fresh by the run event feed.

Reading a run (`GET /api/v1/runs/{id}`, a stream's status check) is one row, but
going to the database for it costs more CPU than the rest of the request. A
process therefore keeps recently read runs, by tenant and run id, and forgets one
as soon as it may have changed. What keeps that correct:

- The `runs` row changes only through the event store's `create_run` and
  `append` (the projection is folded in the same transaction), and every such
  change raises the run's `last_seq`. So "is this copy current?" is "is its
  `last_seq` the newest?".
- Writes in this process go through `CachingEventStore`, which forgets the run
  when the write returns or fails (a failed write may still have committed):
  whoever changed a run reads the change back (read-your-writes).
- Writes in other processes arrive as feed notices carrying the run's newest seq
  (NOTIFY is sent on commit, so within milliseconds); a notice newer than the
  cached copy forgets it. Notices of a run this process wrote itself come back
  with the seq it already has, and cost nothing.
- A read that was in flight while a notice or a write came by may have read the
  old row: its result is kept only if its `last_seq` is at least the newest seq
  heard meanwhile (a write of unknown outcome counts as newer than anything).
- While the feed may be missing notices (not started, connection lost, closed)
  nothing is served from memory or kept; everything is forgotten when the feed is
  lost and again when it is restored (the notices in between are gone).
- A copy older than `max_age` seconds is read again: a backstop for changes that
  bypass the store and the feed (an operator's UPDATE in psql, a NATS notice that
  was lost without a disconnect).
- The key includes the tenant: a run is only ever found under its own tenant.
- At most `max_entries` runs, the least recently used dropped first; 0 turns the
  cache off (every read goes to the store).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from codeforge.domain.events import Event, RunRequested, StoredEvent
from codeforge.domain.runs import Run
from codeforge.ports.events import (
    EventContext,
    EventStore,
    FeedNotice,
    OutboxMessage,
    RunEventFeed,
)
from codeforge.ports.stores import Page

_Key = tuple[uuid.UUID, uuid.UUID]
# "Changed to some seq we do not know": no read in flight may be kept.
_UNKNOWN_SEQ = sys.maxsize


class _Reads:
    """The reads of one run in flight, and the newest seq heard of while they were."""

    __slots__ = ("count", "newest_seq")

    def __init__(self) -> None:
        self.count = 0
        self.newest_seq = 0


class RunCache:
    """Runs by (tenant, run id); a `FeedWatcher`, so give it to `RunEventFeed.watch`."""

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_age: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be 0 (off) or more")
        self._max = max_entries
        self._max_age = max_age
        self._clock = clock
        self._runs: OrderedDict[_Key, tuple[Run, float]] = OrderedDict()
        self._reads: dict[_Key, _Reads] = {}
        # Until a feed says it is receiving, nothing may be trusted.
        self._trusted = False
        # Bumped whenever everything is forgotten: a read begun before is not kept.
        self._epoch = 0
        self.hits = 0
        self.misses = 0

    @property
    def serving(self) -> bool:
        """Whether a read may be answered from memory now."""
        return self._trusted and self._max > 0

    def __len__(self) -> int:
        return len(self._runs)

    async def run(
        self, tenant_id: uuid.UUID, run_id: uuid.UUID, read: Callable[[], Awaitable[Run]]
    ) -> Run:
        """The run from memory when current, else `read()` (kept when it is safe to)."""
        if not self.serving:
            return await read()
        key = (tenant_id, run_id)
        entry = self._runs.get(key)
        if entry is not None:
            if entry[1] > self._clock():
                self._runs.move_to_end(key)
                self.hits += 1
                return entry[0]
            del self._runs[key]
        self.misses += 1
        reads = self._reads.get(key)
        if reads is None:
            reads = self._reads[key] = _Reads()
        reads.count += 1
        epoch = self._epoch
        try:
            run = await read()
        finally:
            reads.count -= 1
            if reads.count == 0:
                del self._reads[key]
        if (
            self.serving
            and epoch == self._epoch
            and run.last_seq >= reads.newest_seq
            and run.tenant_id == tenant_id
            and run.id == run_id
        ):
            self._keep(key, run)
        return run

    def forget(self, tenant_id: uuid.UUID, run_id: uuid.UUID, seq: int | None = None) -> None:
        """The run changed (to `seq`, when known): drop any older copy, now and in flight."""
        key = (tenant_id, run_id)
        newest = _UNKNOWN_SEQ if seq is None else seq
        entry = self._runs.get(key)
        if entry is not None and entry[0].last_seq < newest:
            del self._runs[key]
        reads = self._reads.get(key)
        if reads is not None and reads.newest_seq < newest:
            reads.newest_seq = newest

    def clear(self) -> None:
        self._runs.clear()
        self._epoch += 1

    # -- FeedWatcher -------------------------------------------------------------------

    def noticed(self, notice: FeedNotice) -> None:
        if notice.kind == "delta":
            return  # live output only; the run's row did not change
        if notice.run_id is None:
            if notice.kind == "run_event":
                self.clear()  # a resync: anything may have been missed
            return
        if notice.kind == "status" and notice.entity not in (None, "run"):
            return
        self.forget(notice.tenant_id, notice.run_id, notice.seq)

    def feed_lost(self) -> None:
        self._trusted = False
        self.clear()

    def feed_restored(self) -> None:
        self.clear()
        self._trusted = True

    # ------------------------------------------------------------------------------------

    def _keep(self, key: _Key, run: Run) -> None:
        self._runs[key] = (run, self._clock() + self._max_age)
        self._runs.move_to_end(key)
        while len(self._runs) > self._max:
            self._runs.popitem(last=False)


def watched_cache(cache: RunCache, feed: RunEventFeed) -> RunCache:
    """`cache`, told by `feed` of every change from now on."""
    feed.watch(cache)
    return cache


class CachingEventStore:
    """An `EventStore` whose `get_run` is served by a `RunCache`.

    Every other read goes straight to `store`; every write forgets the run it
    wrote, once it returns or fails. All of a process's writes must go through
    this one instance for read-your-writes to hold (the composition root hands
    out no other).
    """

    def __init__(self, store: EventStore, cache: RunCache) -> None:
        self._store = store
        self.cache = cache

    async def create_run(
        self, run: Run, requested: RunRequested, outbox: OutboxMessage, context: EventContext
    ) -> StoredEvent:
        try:
            return await self._store.create_run(run, requested, outbox, context)
        finally:
            self.cache.forget(context.tenant_id, run.id)

    async def append(
        self,
        run_id: uuid.UUID,
        events: Sequence[Event],
        *,
        expected_seq: int,
        context: EventContext,
        outbox: OutboxMessage | None = None,
    ) -> list[StoredEvent]:
        newest: int | None = None
        try:
            stored = await self._store.append(
                run_id, events, expected_seq=expected_seq, context=context, outbox=outbox
            )
            newest = stored[-1].seq
            return stored
        finally:
            self.cache.forget(context.tenant_id, run_id, newest)

    async def get_run(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Run:
        return await self.cache.run(
            tenant_id, run_id, lambda: self._store.get_run(tenant_id, run_id)
        )

    async def list_runs(
        self,
        tenant_id: uuid.UUID,
        *,
        limit: int = 50,
        after: uuid.UUID | None = None,
        filters: dict[str, str] | None = None,
    ) -> Page[Run]:
        return await self._store.list_runs(tenant_id, limit=limit, after=after, filters=filters)

    async def expired_leases(self, now: datetime, *, limit: int = 100) -> list[Run]:
        return await self._store.expired_leases(now, limit=limit)

    async def load(
        self,
        tenant_id: uuid.UUID,
        run_id: uuid.UUID,
        *,
        after: int = 0,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        return await self._store.load(tenant_id, run_id, after=after, limit=limit)

    async def load_by_task(
        self, tenant_id: uuid.UUID, task_id: uuid.UUID, *, after: int = 0, limit: int = 500
    ) -> list[StoredEvent]:
        return await self._store.load_by_task(tenant_id, task_id, after=after, limit=limit)

    async def load_by_agent(
        self, tenant_id: uuid.UUID, agent_id: uuid.UUID, *, after: int = 0, limit: int = 500
    ) -> list[StoredEvent]:
        return await self._store.load_by_agent(tenant_id, agent_id, after=after, limit=limit)

    async def load_by_types(
        self, tenant_id: uuid.UUID, types: Sequence[str], *, after: int = 0, limit: int = 500
    ) -> list[StoredEvent]:
        return await self._store.load_by_types(tenant_id, types, after=after, limit=limit)
