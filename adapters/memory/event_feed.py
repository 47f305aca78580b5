"""The live run event feed inside one process, and the fan-out every feed shares.

`FanOut` hands each notice to the subscribers of its tenant without ever
waiting for one of them; the PostgreSQL feed puts its LISTEN connection in
front of the same fan-out, so both adapters behave alike for subscribers.

How a subscriber that falls behind is treated (the "lagging" design):

- A notice only says "something new up to seq S" (or "entity X is now Y"), so
  an older notice for the same run is worth nothing once a newer one is queued.
  Each subscriber's queue therefore holds at most one notice per key — per run
  for `run_event`, per entity for `status` — and a newer notice replaces the
  queued one in place. Ordering per run is kept, and the newest notice per run
  is never dropped, however slow the reader.
- The queue is bounded by the number of distinct keys (`max_pending`). When a
  notice for one more key arrives at a full queue, everything queued is
  dropped and the subscriber is marked lagging: its next item is a *resync
  notice* — `FeedNotice(kind="run_event", run_id=None)` for its tenant —
  meaning "you may have missed anything: re-read from the store". Notices that
  arrive after that are queued normally again.
- A feed that may have missed notices itself (the PostgreSQL listener after a
  reconnect) marks every subscriber lagging, with the same effect.
- Deltas (ephemeral text) are keyed per run, stream and tool call; a delta that
  arrives while one with its key is queued is appended to it (up to
  `MAX_JOINED_DELTA_CHARS`, past which the oldest text is cut with a marker), so
  text is never reordered within its stream and a slow reader costs bounded memory.

Watchers (`FeedWatcher`, e.g. the run cache) are told of every notice before any
subscriber, synchronously and without a queue, and of the feed in front losing and
regaining its connection (`lost`, `restored`).

Publishing never blocks and never fails because of a subscriber.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Hashable

import msgspec

from codeforge.ports.events import FeedNotice, FeedWatcher

DEFAULT_MAX_PENDING = 1000


def resync_notice(tenant_id: uuid.UUID) -> FeedNotice:
    """The notice that tells a subscriber to re-read what it follows from the store."""
    return FeedNotice(tenant_id=tenant_id, kind="run_event")


def is_resync(notice: FeedNotice) -> bool:
    return notice.kind == "run_event" and notice.run_id is None


# How much joined delta text one queued notice keeps for a slow reader.
MAX_JOINED_DELTA_CHARS = 64 * 1024
DELTA_CUT_MARKER = "[… earlier output skipped: the reader fell behind …]\n"


def _key(notice: FeedNotice) -> Hashable:
    if notice.kind == "run_event":
        return ("run_event", notice.run_id)
    if notice.kind == "delta":
        return ("delta", notice.run_id, notice.stream, notice.call_id)
    return ("status", notice.entity, notice.entity_id or notice.run_id)


def _joined(queued: FeedNotice, later: FeedNotice) -> FeedNotice:
    text = (queued.text or "") + (later.text or "")
    if len(text) > MAX_JOINED_DELTA_CHARS:
        text = DELTA_CUT_MARKER + text[-(MAX_JOINED_DELTA_CHARS - len(DELTA_CUT_MARKER)) :]
    return msgspec.structs.replace(queued, text=text)


def _newer(candidate: FeedNotice, queued: FeedNotice) -> bool:
    # Notices of one run come in seq order from one log, but two feeds may relay
    # them with different delays: keep the highest seq whatever the arrival order.
    if candidate.kind == "run_event" and candidate.seq is not None and queued.seq is not None:
        return candidate.seq >= queued.seq
    return True


class Subscription:
    """One subscriber: an async iterator of its tenant's notices, from creation on.

    It is registered when created (not at the first `__anext__`), so nothing
    published after `subscribe()` returns is missed. `aclose()` unregisters it;
    closing the feed ends the iteration.
    """

    def __init__(self, fan_out: FanOut, tenant_id: uuid.UUID, max_pending: int) -> None:
        self.tenant_id = tenant_id
        # Notices dropped because the queue was full (each time followed by a resync).
        self.dropped = 0
        self._fan_out = fan_out
        self._max_pending = max_pending
        # A dict keeps insertion order, and replacing a value keeps its place.
        self._pending: dict[Hashable, FeedNotice] = {}
        self._lagging = False
        self._closed = False
        self._wake = asyncio.Event()

    @property
    def lagging(self) -> bool:
        return self._lagging

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> FeedNotice:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._lagging:
                self._lagging = False
                return resync_notice(self.tenant_id)
            if self._pending:
                return self._pending.pop(next(iter(self._pending)))
            self._wake.clear()
            await self._wake.wait()

    async def aclose(self) -> None:
        self._fan_out.discard(self)
        self.end()

    def offer(self, notice: FeedNotice) -> None:
        """Queue `notice` without waiting (see the module docstring for a full queue)."""
        if self._closed:
            return
        if is_resync(notice):
            self.resync()
            return
        key = _key(notice)
        queued = self._pending.get(key)
        if queued is not None:
            if notice.kind == "delta":
                self._pending[key] = _joined(queued, notice)
            elif _newer(notice, queued):
                self._pending[key] = notice
        elif len(self._pending) >= self._max_pending:
            self.resync(dropping=1)
        else:
            self._pending[key] = notice
        self._wake.set()

    def resync(self, dropping: int = 0) -> None:
        """Drop what is queued; the next item tells the subscriber to re-read the store."""
        self.dropped += len(self._pending) + dropping
        self._pending.clear()
        self._lagging = True
        self._wake.set()

    def end(self) -> None:
        self._closed = True
        self._pending.clear()
        self._wake.set()


class FanOut:
    """Subscribers by tenant and watchers; delivery is synchronous and never waits.

    `receiving` says whether the feed in front of it hears every notice now (a
    feed with a connection starts without one: it calls `restored` once it has).
    """

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING, *, receiving: bool = True) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._max_pending = max_pending
        self._by_tenant: dict[uuid.UUID, set[Subscription]] = {}
        self._watchers: list[FeedWatcher] = []
        self._receiving = receiving
        self._closed = False

    @property
    def receiving(self) -> bool:
        return self._receiving and not self._closed

    def watch(self, watcher: FeedWatcher) -> None:
        self._watchers.append(watcher)
        if self.receiving:
            watcher.feed_restored()
        else:
            watcher.feed_lost()

    def lost(self) -> None:
        """The feed in front may miss notices from now on."""
        self._receiving = False
        for watcher in self._watchers:
            watcher.feed_lost()

    def restored(self) -> None:
        """The feed in front hears every notice again (what it missed is gone)."""
        if self._closed:
            return
        self._receiving = True
        for watcher in self._watchers:
            watcher.feed_restored()

    def subscribe(self, tenant_id: uuid.UUID) -> Subscription:
        subscription = Subscription(self, tenant_id, self._max_pending)
        if self._closed:
            subscription.end()
        else:
            self._by_tenant.setdefault(tenant_id, set()).add(subscription)
        return subscription

    def discard(self, subscription: Subscription) -> None:
        subscribers = self._by_tenant.get(subscription.tenant_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._by_tenant[subscription.tenant_id]

    def deliver(self, notice: FeedNotice) -> None:
        for watcher in self._watchers:
            watcher.noticed(notice)
        for subscription in tuple(self._by_tenant.get(notice.tenant_id, ())):
            subscription.offer(notice)

    def resync_all(self) -> None:
        for subscribers in self._by_tenant.values():
            for subscription in subscribers:
                subscription.resync()

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._by_tenant.values())

    def close(self) -> None:
        self._closed = True
        for watcher in self._watchers:
            watcher.feed_lost()
        self._watchers.clear()
        for subscribers in self._by_tenant.values():
            for subscription in subscribers:
                subscription.end()
        self._by_tenant.clear()


class MemoryEventFeed:
    """`RunEventFeed` within one process: `publish` hands the notice straight to the fan-out.

    `MemoryEventStore(feed=...)` publishes through it after every commit. After
    `close()`, `publish` does nothing and new subscriptions end at once.
    """

    def __init__(self, *, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._fan_out = FanOut(max_pending)

    async def publish(self, notice: FeedNotice) -> None:
        self._fan_out.deliver(notice)

    def subscribe(self, tenant_id: uuid.UUID) -> Subscription:
        return self._fan_out.subscribe(tenant_id)

    def watch(self, watcher: FeedWatcher) -> None:
        self._fan_out.watch(watcher)

    def subscriber_count(self) -> int:
        return self._fan_out.subscriber_count()

    async def close(self) -> None:
        self._fan_out.close()
