"""The RunEventFeed contract, run against every adapter, plus what only LISTEN/NOTIFY does.

`EventFeedContract` holds the tests; each adapter subclasses it with a `feed`
fixture (built with a small `max_pending`, so overflowing is cheap) and an
`event_store` fixture whose writes reach that feed.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from adapters.memory.event_feed import MemoryEventFeed, Subscription, is_resync
from adapters.memory.event_store import MemoryEventStore
from adapters.nats.event_feed import NatsEventFeed
from adapters.postgres.event_feed import PostgresEventFeed, decode_notice, encode_notice
from adapters.postgres.event_store import PostgresEventStore
from codeforge.domain.errors import Conflict
from codeforge.domain.events import RunCompleted, RunStarted
from codeforge.domain.ids import new_id
from codeforge.domain.runs import Run
from codeforge.ports.errors import DependencyUnavailable
from codeforge.ports.events import EventContext, EventStore, FeedNotice
from codeforge.services.event_log import EventLog
from tests.support.runs import create_run

pytestmark = pytest.mark.contract

MAX_PENDING = 8
WAIT = 5.0


def run_event(tenant: uuid.UUID, run_id: uuid.UUID, seq: int) -> FeedNotice:
    return FeedNotice(tenant_id=tenant, kind="run_event", run_id=run_id, seq=seq)


def run_status(run: Run, seq: int, status: str) -> FeedNotice:
    return FeedNotice(
        tenant_id=run.tenant_id,
        kind="status",
        run_id=run.id,
        seq=seq,
        entity="run",
        entity_id=run.id,
        status=status,
    )


async def next_notice(subscription: Subscription, within: float = WAIT) -> FeedNotice:
    return await asyncio.wait_for(anext(subscription), within)


async def read_until(
    subscription: Subscription, done: Callable[[list[FeedNotice]], bool]
) -> list[FeedNotice]:
    """Notices until `done(seen)` holds; fails after WAIT seconds."""
    seen: list[FeedNotice] = []
    deadline = time.monotonic() + WAIT
    while not done(seen):
        seen.append(await next_notice(subscription, max(0.01, deadline - time.monotonic())))
    return seen


async def eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class Watcher:
    """A `FeedWatcher` that records what it is told, in order."""

    def __init__(self) -> None:
        self.told: list[FeedNotice | str] = []

    def noticed(self, notice: FeedNotice) -> None:
        self.told.append(notice)

    def feed_lost(self) -> None:
        self.told.append("lost")

    def feed_restored(self) -> None:
        self.told.append("restored")


class EventFeedContract:
    """The tests every RunEventFeed adapter must pass. Not collected itself (no Test prefix)."""

    @pytest.fixture
    def feed(self) -> MemoryEventFeed | PostgresEventFeed:
        raise NotImplementedError

    @pytest.fixture
    def event_store(self, feed: MemoryEventFeed | PostgresEventFeed) -> EventStore:
        raise NotImplementedError

    async def test_a_subscriber_receives_the_notices_of_its_tenant_only(
        self, feed: MemoryEventFeed | PostgresEventFeed, tenant_id: uuid.UUID
    ) -> None:
        other = uuid.uuid4()
        mine = feed.subscribe(tenant_id)
        theirs = feed.subscribe(other)
        run_id = new_id()

        await feed.publish(run_event(other, new_id(), 4))
        await feed.publish(run_event(tenant_id, run_id, 7))
        status = FeedNotice(
            tenant_id=tenant_id, kind="status", entity="task", entity_id=new_id(), status="done"
        )
        await feed.publish(status)

        assert await next_notice(mine) == run_event(tenant_id, run_id, 7)
        assert await next_notice(mine) == status
        assert (await next_notice(theirs)).tenant_id == other
        await mine.aclose()
        await theirs.aclose()

    async def test_every_subscriber_receives_every_notice(
        self, feed: MemoryEventFeed | PostgresEventFeed, tenant_id: uuid.UUID
    ) -> None:
        subscribers = [feed.subscribe(tenant_id) for _ in range(3)]
        notices = [run_event(tenant_id, new_id(), 1) for _ in range(3)]
        for notice in notices:
            await feed.publish(notice)

        for subscriber in subscribers:
            assert [await next_notice(subscriber) for _ in notices] == notices
            await subscriber.aclose()

    async def test_a_slow_subscriber_never_blocks_publishing_and_gets_the_newest_notice_per_run(
        self, feed: MemoryEventFeed | PostgresEventFeed, tenant_id: uuid.UUID
    ) -> None:
        slow = feed.subscribe(tenant_id)
        runs = [new_id() for _ in range(3)]
        last = 100

        async def publish_all() -> None:
            for seq in range(1, last + 1):
                for run_id in runs:
                    await feed.publish(run_event(tenant_id, run_id, seq))

        # Far more notices than the subscriber's queue holds, and nobody reading.
        await asyncio.wait_for(publish_all(), WAIT)

        def caught_up(seen: list[FeedNotice]) -> bool:
            return {n.run_id for n in seen if n.seq == last} == set(runs)

        seen = await read_until(slow, caught_up)
        for run_id in runs:
            seqs = [n.seq or 0 for n in seen if n.run_id == run_id]
            assert seqs == sorted(set(seqs)), "notices of one run arrive in seq order"
        assert not any(is_resync(n) for n in seen), "three runs fit in the queue"
        await slow.aclose()

    async def test_a_subscriber_behind_on_more_runs_than_it_can_queue_is_told_to_resync(
        self, feed: MemoryEventFeed | PostgresEventFeed, tenant_id: uuid.UUID
    ) -> None:
        behind = feed.subscribe(tenant_id)
        for _ in range(MAX_PENDING + 5):
            await feed.publish(run_event(tenant_id, new_id(), 1))
        await eventually(lambda: behind.dropped > 0)
        after = run_event(tenant_id, new_id(), 9)
        await feed.publish(after)

        resync = await next_notice(behind)
        assert is_resync(resync)
        assert resync.tenant_id == tenant_id
        # What arrives after the overflow is queued normally again.
        assert after in await read_until(behind, lambda seen: after in seen)
        await behind.aclose()

    async def test_a_closed_subscription_ends_and_is_forgotten(
        self, feed: MemoryEventFeed | PostgresEventFeed, tenant_id: uuid.UUID
    ) -> None:
        before = feed.subscriber_count()
        subscription = feed.subscribe(tenant_id)
        assert feed.subscriber_count() == before + 1
        waiting = asyncio.create_task(anext(subscription))
        await asyncio.sleep(0.01)

        await subscription.aclose()

        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(waiting, WAIT)
        assert feed.subscriber_count() == before
        await feed.publish(run_event(tenant_id, new_id(), 1))
        assert [n async for n in subscription] == []

    async def test_an_append_reaches_a_subscriber_and_a_rejected_one_does_not(
        self,
        feed: MemoryEventFeed | PostgresEventFeed,
        event_store: EventStore,
        tenant_id: uuid.UUID,
    ) -> None:
        subscriber = feed.subscribe(tenant_id)
        run = await create_run(event_store, tenant_id)
        created = [await next_notice(subscriber) for _ in range(2)]
        context = EventContext(tenant_id=tenant_id)
        with pytest.raises(Conflict):
            await event_store.append(run.id, [RunCompleted()], expected_seq=1, context=context)
        started = RunStarted(worker="w", lease_expires_at=datetime.now(UTC) + timedelta(minutes=2))
        await event_store.append(run.id, [started], expected_seq=1, context=context)

        appended = [await next_notice(subscriber) for _ in range(2)]

        assert created == [run_event(tenant_id, run.id, 1), run_status(run, 1, "requested")]
        assert appended == [run_event(tenant_id, run.id, 2), run_status(run, 2, "running")]
        await subscriber.aclose()

    async def test_a_watcher_hears_every_tenant_from_a_known_state_until_the_feed_closes(
        self, feed: MemoryEventFeed | PostgresEventFeed, tenant_id: uuid.UUID
    ) -> None:
        watcher = Watcher()
        feed.watch(watcher)
        assert watcher.told == ["restored"]
        mine, theirs = run_event(tenant_id, new_id(), 3), run_event(uuid.uuid4(), new_id(), 5)

        await feed.publish(mine)
        await feed.publish(theirs)
        await eventually(lambda: len(watcher.told) == 3)
        await feed.close()

        assert watcher.told == ["restored", mine, theirs, "lost"]
        late = Watcher()
        feed.watch(late)
        assert late.told == ["lost"]


class TestMemoryEventFeed(EventFeedContract):
    @pytest.fixture
    async def feed(self) -> AsyncIterator[MemoryEventFeed | PostgresEventFeed]:
        feed = MemoryEventFeed(max_pending=MAX_PENDING)
        yield feed
        await feed.close()

    @pytest.fixture
    def event_store(self, feed: MemoryEventFeed | PostgresEventFeed) -> EventStore:
        assert isinstance(feed, MemoryEventFeed)
        return MemoryEventStore(feed=feed)

    async def test_a_slow_subscriber_holds_exactly_the_newest_notice_per_run(
        self, feed: MemoryEventFeed | PostgresEventFeed, tenant_id: uuid.UUID
    ) -> None:
        slow = feed.subscribe(tenant_id)
        runs = [new_id() for _ in range(3)]
        for seq in range(1, 51):
            for run_id in runs:
                await feed.publish(run_event(tenant_id, run_id, seq))

        assert [await next_notice(slow) for _ in runs] == [
            run_event(tenant_id, run_id, 50) for run_id in runs
        ]
        assert slow.dropped == 0

    async def test_closing_the_feed_ends_every_subscription(self, tenant_id: uuid.UUID) -> None:
        feed = MemoryEventFeed()
        subscription = feed.subscribe(tenant_id)
        await feed.close()
        assert [n async for n in subscription] == []
        assert [n async for n in feed.subscribe(tenant_id)] == []


class TestPostgresEventFeed(EventFeedContract):
    @pytest.fixture
    async def feed(
        self, pg_pool: AsyncConnectionPool
    ) -> AsyncIterator[MemoryEventFeed | PostgresEventFeed]:
        self.pool = pg_pool
        async with PostgresEventFeed(
            pg_pool, max_pending=MAX_PENDING, reconnect_delay=0.05
        ) as feed:
            yield feed

    @pytest.fixture
    def event_store(self, feed: MemoryEventFeed | PostgresEventFeed) -> EventStore:
        return PostgresEventStore(self.pool)

    async def test_two_feed_instances_see_each_others_notices(
        self,
        feed: MemoryEventFeed | PostgresEventFeed,
        migrated_database_url: str,
        tenant_id: uuid.UUID,
    ) -> None:
        # A second "process": its own pool and its own listening connection.
        async with PostgresEventFeed(migrated_database_url) as elsewhere:
            assert isinstance(feed, PostgresEventFeed)
            assert elsewhere.listener_pid != feed.listener_pid
            here_sub, there_sub = feed.subscribe(tenant_id), elsewhere.subscribe(tenant_id)
            from_here = run_event(tenant_id, new_id(), 1)
            from_there = run_event(tenant_id, new_id(), 2)

            await feed.publish(from_here)
            await elsewhere.publish(from_there)

            assert [await next_notice(there_sub) for _ in range(2)] == [from_here, from_there]
            assert [await next_notice(here_sub) for _ in range(2)] == [from_here, from_there]

    async def test_the_listener_recovers_after_its_connection_is_killed_and_subscribers_resync(
        self, feed: MemoryEventFeed | PostgresEventFeed, tenant_id: uuid.UUID
    ) -> None:
        assert isinstance(feed, PostgresEventFeed)
        subscriber = feed.subscribe(tenant_id)
        killed = feed.listener_pid
        async with self.pool.connection() as conn:
            await conn.execute("SELECT pg_terminate_backend(%s)", (killed,))

        resync = await next_notice(subscriber)

        assert is_resync(resync)
        assert feed.reconnects == 1
        assert feed.listener_pid not in (None, killed)
        after = run_event(tenant_id, new_id(), 3)
        await feed.publish(after)
        assert await next_notice(subscriber) == after
        await subscriber.aclose()

    async def test_a_watcher_is_told_the_listener_was_lost_and_restored(
        self, feed: MemoryEventFeed | PostgresEventFeed, tenant_id: uuid.UUID
    ) -> None:
        assert isinstance(feed, PostgresEventFeed)
        watcher = Watcher()
        feed.watch(watcher)
        async with self.pool.connection() as conn:
            await conn.execute("SELECT pg_terminate_backend(%s)", (feed.listener_pid,))

        await eventually(lambda: watcher.told == ["restored", "lost", "restored"])
        after = run_event(tenant_id, new_id(), 3)
        await feed.publish(after)
        await eventually(lambda: watcher.told[-1] == after)

    async def test_notices_keep_arriving_across_keepalive_checks(
        self, pg_pool: AsyncConnectionPool, tenant_id: uuid.UUID
    ) -> None:
        async with PostgresEventFeed(pg_pool, keepalive=0.02) as feed:
            subscriber = feed.subscribe(tenant_id)
            for seq in range(1, 4):
                await asyncio.sleep(0.05)  # the listener checks its connection meanwhile
                await feed.publish(run_event(tenant_id, run_id := new_id(), seq))
                assert await next_notice(subscriber) == run_event(tenant_id, run_id, seq)
            assert feed.reconnects == 0

    async def test_a_malformed_notify_payload_is_ignored(
        self, feed: MemoryEventFeed | PostgresEventFeed, tenant_id: uuid.UUID
    ) -> None:
        subscriber = feed.subscribe(tenant_id)
        async with self.pool.connection() as conn:
            await conn.execute("SELECT pg_notify('codeforge_events', 'not json')")
            await conn.execute("""SELECT pg_notify('codeforge_events', '{"t": "nope"}')""")
        valid = run_event(tenant_id, new_id(), 1)
        await feed.publish(valid)
        assert await next_notice(subscriber) == valid
        await subscriber.aclose()

    async def test_an_unreachable_database_fails_start_clearly(self) -> None:
        from codeforge.ports.errors import DependencyUnavailable

        feed = PostgresEventFeed("postgresql://nobody@127.0.0.1:1/none", connect_timeout=0.2)
        with pytest.raises(DependencyUnavailable, match="event feed"):
            await feed.start()
        await feed.close()


@pytest.fixture(scope="module")
def nats_url() -> Iterator[str]:
    from adapters.nats.server import find_or_start_nats

    url = os.environ.get("CODEFORGE_TEST_NATS_URL", "nats://127.0.0.1:4222")
    with find_or_start_nats(url) as found:
        yield found


class _AnnouncingStore:
    """The PostgreSQL store with writes going through the EventLog that tells the feed,
    as the container wires it when the feed is NATS."""

    def __init__(self, store: EventStore, feed: NatsEventFeed) -> None:
        self._store = store
        self._log = EventLog(store, list, announce_to=feed)
        self.create_run = self._log.create_run
        self.append = self._log.append

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class TestNatsEventFeed(EventFeedContract):
    @pytest.fixture
    async def feed(
        self, pg_pool: AsyncConnectionPool, nats_url: str
    ) -> AsyncIterator[MemoryEventFeed | PostgresEventFeed]:
        self.pool = pg_pool
        self.prefix = f"cftest.{uuid.uuid4().hex[:8]}"
        async with NatsEventFeed(nats_url, prefix=self.prefix, max_pending=MAX_PENDING) as feed:
            yield feed  # type: ignore[misc]

    @pytest.fixture
    def event_store(self, feed: MemoryEventFeed | PostgresEventFeed) -> EventStore:
        assert isinstance(feed, NatsEventFeed)
        return _AnnouncingStore(PostgresEventStore(self.pool), feed)  # type: ignore[return-value]

    async def test_two_feed_instances_see_each_others_notices(
        self, feed: MemoryEventFeed | PostgresEventFeed, nats_url: str, tenant_id: uuid.UUID
    ) -> None:
        async with NatsEventFeed(nats_url, prefix=self.prefix) as other:
            subscriber = other.subscribe(tenant_id)
            run_id = new_id()
            await feed.publish(run_event(tenant_id, run_id, 7))
            assert await next_notice(subscriber) == run_event(tenant_id, run_id, 7)
            await subscriber.aclose()

    async def test_an_unreachable_server_fails_start_clearly(self) -> None:
        with pytest.raises(DependencyUnavailable, match="cannot reach NATS"):
            await NatsEventFeed("nats://127.0.0.1:1", connect_timeout=1).start()


def test_a_notify_payload_is_small_and_round_trips() -> None:
    notice = FeedNotice(
        tenant_id=uuid.uuid4(),
        kind="status",
        run_id=new_id(),
        seq=2**40,
        entity="run",
        entity_id=new_id(),
        status="awaiting_approval",
    )
    payload = encode_notice(notice)
    assert len(payload.encode()) < 300
    assert decode_notice(payload) == notice
    bare = run_event(uuid.uuid4(), new_id(), 1)
    assert set(json.loads(encode_notice(bare))) == {"t", "k", "r", "s"}
    assert decode_notice(encode_notice(bare)) == bare
