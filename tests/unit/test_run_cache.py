"""Runs served from memory stay current: notices, own writes, feed losses, tenants, bounds.

The cache sits on an in-memory store; a write made to that store behind the cache's
back (as another process would, or psql) shows whether a read came from memory.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from adapters.memory.event_feed import MemoryEventFeed, resync_notice
from adapters.memory.event_store import MemoryEventStore
from codeforge.domain.errors import Conflict, NotFound
from codeforge.domain.events import HeartbeatRecorded, RunStarted
from codeforge.domain.runs import Run, RunStatus
from codeforge.ports.events import EventContext, FeedNotice
from codeforge.services.run_cache import CachingEventStore, RunCache
from tests.support.runs import create_run


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Setup:
    """A caching store over `backing`, watching `feed`; writes to `backing` bypass both."""

    def __init__(self, *, max_entries: int = 100, clock: Clock | None = None) -> None:
        self.backing = MemoryEventStore()
        self.feed = MemoryEventFeed()
        self.cache = RunCache(max_entries=max_entries, max_age=10, clock=clock or Clock())
        self.feed.watch(self.cache)
        self.store = CachingEventStore(self.backing, self.cache)

    async def new_run(self, tenant: uuid.UUID | None = None) -> Run:
        return await create_run(self.store, tenant or uuid.uuid4())

    async def slow_read(self, run: Run) -> tuple[asyncio.Task[Run], asyncio.Event]:
        """A read through the cache, under way with the run as it is now, that returns
        when the event is set (whatever has happened meanwhile)."""
        old = await self.backing.get_run(run.tenant_id, run.id)
        release = asyncio.Event()

        async def read() -> Run:
            await release.wait()
            return old

        reading = asyncio.create_task(self.cache.run(run.tenant_id, run.id, read))
        await asyncio.sleep(0)
        return reading, release

    async def change_elsewhere(self, run: Run, *, announce: bool = True) -> int:
        """A heartbeat appended behind the cache's back; announced on the feed if asked."""
        current = await self.backing.get_run(run.tenant_id, run.id)
        stored = await self.backing.append(
            run.id,
            [heartbeat()],
            expected_seq=current.last_seq,
            context=EventContext(tenant_id=run.tenant_id),
        )
        seq = stored[-1].seq
        if announce:
            await self.feed.publish(
                FeedNotice(tenant_id=run.tenant_id, kind="run_event", run_id=run.id, seq=seq)
            )
        return seq

    async def seq(self, run: Run) -> int:
        return (await self.store.get_run(run.tenant_id, run.id)).last_seq


def heartbeat() -> HeartbeatRecorded:
    return HeartbeatRecorded(worker="w", lease_expires_at=datetime.now(UTC) + timedelta(minutes=1))


async def test_a_run_is_served_from_memory_until_a_notice_says_it_changed() -> None:
    s = Setup()
    run = await s.new_run()
    assert await s.seq(run) == 1

    await s.change_elsewhere(run, announce=False)
    assert await s.seq(run) == 1  # from memory: the change was not announced
    assert s.cache.hits == 1

    await s.change_elsewhere(run)
    assert await s.seq(run) == 3


async def test_a_notice_of_the_seq_already_held_keeps_the_copy() -> None:
    s = Setup()
    run = await s.new_run()
    await s.seq(run)
    await s.feed.publish(
        FeedNotice(tenant_id=run.tenant_id, kind="run_event", run_id=run.id, seq=1)
    )
    await s.change_elsewhere(run, announce=False)
    assert await s.seq(run) == 1


async def test_deltas_and_status_notices_of_other_entities_keep_the_copy() -> None:
    s = Setup()
    run = await s.new_run()
    await s.seq(run)
    await s.change_elsewhere(run, announce=False)
    tenant = run.tenant_id
    await s.feed.publish(
        FeedNotice(tenant_id=tenant, kind="delta", run_id=run.id, stream="model", text="hi")
    )
    await s.feed.publish(
        FeedNotice(tenant_id=tenant, kind="status", entity="task", entity_id=run.task_id)
    )
    assert await s.seq(run) == 1
    await s.feed.publish(
        FeedNotice(
            tenant_id=tenant, kind="status", run_id=run.id, seq=2, entity="run", entity_id=run.id
        )
    )
    assert await s.seq(run) == 2


async def test_a_resync_notice_forgets_every_run() -> None:
    s = Setup()
    run = await s.new_run()
    await s.seq(run)
    await s.change_elsewhere(run, announce=False)
    await s.feed.publish(resync_notice(uuid.uuid4()))
    assert len(s.cache) == 0
    assert await s.seq(run) == 2


async def test_a_write_through_the_store_is_read_back_at_once() -> None:
    s = Setup()
    run = await s.new_run()
    context = EventContext(tenant_id=run.tenant_id)
    assert (await s.store.get_run(run.tenant_id, run.id)).status is RunStatus.REQUESTED

    await s.store.append(
        run.id,
        [RunStarted(worker="w", lease_expires_at=datetime.now(UTC) + timedelta(minutes=1))],
        expected_seq=1,
        context=context,
    )

    assert (await s.store.get_run(run.tenant_id, run.id)).status is RunStatus.RUNNING


async def test_a_failed_write_forgets_the_run_too() -> None:
    s = Setup()
    run = await s.new_run()
    await s.seq(run)
    await s.change_elsewhere(run, announce=False)
    with pytest.raises(Conflict):
        await s.store.append(
            run.id, [heartbeat()], expected_seq=1, context=EventContext(tenant_id=run.tenant_id)
        )
    assert await s.seq(run) == 2


async def test_nothing_is_served_while_the_feed_is_lost_and_nothing_kept_from_before() -> None:
    s = Setup()
    run = await s.new_run()
    await s.seq(run)

    s.cache.feed_lost()
    await s.change_elsewhere(run, announce=False)
    assert await s.seq(run) == 2
    assert len(s.cache) == 0

    s.cache.feed_restored()
    assert await s.seq(run) == 2
    await s.change_elsewhere(run, announce=False)
    assert await s.seq(run) == 2  # served from memory again


async def test_nothing_is_served_before_a_feed_is_watched() -> None:
    backing = MemoryEventStore()
    cache = RunCache()
    store = CachingEventStore(backing, cache)
    s = Setup()
    run = await s.new_run()
    assert not cache.serving
    with pytest.raises(NotFound):
        await store.get_run(run.tenant_id, run.id)
    assert len(cache) == 0


async def test_a_read_in_flight_when_the_run_changes_is_not_kept() -> None:
    s = Setup()
    run = await s.new_run()
    reading, release = await s.slow_read(run)
    await s.change_elsewhere(run)  # the notice arrives while the old row is on its way
    release.set()

    assert (await reading).last_seq == 1  # that read may answer with what it read …
    assert len(s.cache) == 0  # … but it is not kept
    assert await s.seq(run) == 2


async def test_a_read_in_flight_when_this_process_writes_is_not_kept() -> None:
    s = Setup()
    run = await s.new_run()
    reading, release = await s.slow_read(run)
    await s.store.append(
        run.id, [heartbeat()], expected_seq=1, context=EventContext(tenant_id=run.tenant_id)
    )
    release.set()
    await reading

    assert await s.seq(run) == 2


async def test_a_read_in_flight_across_a_feed_loss_is_not_kept() -> None:
    s = Setup()
    run = await s.new_run()
    reading, release = await s.slow_read(run)
    s.cache.feed_lost()
    await s.change_elsewhere(run, announce=False)  # its notice is lost with the feed
    s.cache.feed_restored()
    release.set()
    await reading

    assert len(s.cache) == 0
    assert await s.seq(run) == 2


async def test_a_run_is_only_found_under_its_own_tenant() -> None:
    s = Setup()
    run = await s.new_run()
    await s.seq(run)
    other_tenant = uuid.uuid4()
    with pytest.raises(NotFound):
        await s.store.get_run(other_tenant, run.id)
    with pytest.raises(NotFound):
        await s.store.get_run(other_tenant, run.id)
    assert (await s.store.get_run(run.tenant_id, run.id)).tenant_id == run.tenant_id


async def test_the_least_recently_read_run_is_dropped_first() -> None:
    s = Setup(max_entries=2)
    first, second, third = [await s.new_run() for _ in range(3)]
    await s.seq(first)
    await s.seq(second)
    await s.seq(first)
    await s.seq(third)  # drops `second`, read longest ago

    assert len(s.cache) == 2
    for run in (first, second, third):
        await s.change_elsewhere(run, announce=False)
    # Kept runs still answer from memory (seq 1); the dropped one is read again.
    assert [await s.seq(r) for r in (third, first, second)] == [1, 1, 2]


async def test_a_copy_older_than_max_age_is_read_again() -> None:
    clock = Clock()
    s = Setup(clock=clock)
    run = await s.new_run()
    await s.seq(run)
    await s.change_elsewhere(run, announce=False)
    clock.now += 9.9
    assert await s.seq(run) == 1
    clock.now += 0.2
    assert await s.seq(run) == 2


async def test_size_zero_turns_the_cache_off() -> None:
    s = Setup(max_entries=0)
    run = await s.new_run()
    await s.seq(run)
    await s.change_elsewhere(run, announce=False)
    assert await s.seq(run) == 2
    assert len(s.cache) == 0
    assert not s.cache.serving
