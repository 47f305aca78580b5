"""The run cache on PostgreSQL: another pool's writes arrive by NOTIFY (or by NATS, with
that feed); a lost feed serves nothing.

"Here" is a process's caching store on the shared pool with its own feed; "elsewhere"
is another process's plain store on a pool of its own (with the NATS feed, writing
through an `EventLog` that announces on a feed of its own, as the container wires it).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from adapters.nats.event_feed import NatsEventFeed
from adapters.nats.server import NatsServer
from adapters.postgres.event_feed import PostgresEventFeed
from adapters.postgres.event_store import PostgresEventStore
from codeforge.domain.events import HeartbeatRecorded
from codeforge.domain.runs import Run
from codeforge.ports.events import EventContext
from codeforge.services.event_log import EventLog
from codeforge.services.run_cache import CachingEventStore, RunCache, watched_cache
from tests.support.runs import create_run

WAIT = 5.0
# The listener stays away this long after its connection is killed.
RECONNECT_DELAY = 1.5


@pytest.fixture
async def feed(pg_pool: AsyncConnectionPool) -> AsyncIterator[PostgresEventFeed]:
    async with PostgresEventFeed(
        pg_pool, reconnect_delay=RECONNECT_DELAY, max_reconnect_delay=RECONNECT_DELAY
    ) as feed:
        yield feed


@pytest.fixture
def here(pg_pool: AsyncConnectionPool, feed: PostgresEventFeed) -> CachingEventStore:
    return CachingEventStore(PostgresEventStore(pg_pool), watched_cache(RunCache(), feed))


@pytest.fixture
async def elsewhere(migrated_database_url: str) -> AsyncIterator[PostgresEventStore]:
    async with AsyncConnectionPool(
        migrated_database_url, min_size=1, max_size=2, open=False
    ) as pool:
        await pool.open(wait=True)
        yield PostgresEventStore(pool)


async def eventually(condition: Callable[[], bool], within: float = WAIT) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def beat(store: PostgresEventStore | EventLog, run: Run, after: int) -> None:
    await store.append(
        run.id,
        [HeartbeatRecorded(worker="w", lease_expires_at=datetime.now(UTC) + timedelta(minutes=1))],
        expected_seq=after,
        context=EventContext(tenant_id=run.tenant_id),
    )


async def seq(store: CachingEventStore, run: Run) -> int:
    return (await store.get_run(run.tenant_id, run.id)).last_seq


async def test_another_pools_append_is_read_within_milliseconds(
    here: CachingEventStore, elsewhere: PostgresEventStore, tenant_id: uuid.UUID
) -> None:
    run = await create_run(elsewhere, tenant_id)
    await seq(here, run)
    assert await seq(here, run) == 1
    assert here.cache.hits == 1

    await beat(elsewhere, run, 1)
    appended = time.monotonic()
    while True:
        current = await seq(here, run)
        waited = time.monotonic() - appended
        if current == 2 or waited >= 1.0:
            break
        await asyncio.sleep(0.001)

    assert (current, waited < 1.0) == (2, True)
    assert await seq(here, run) == 2
    assert here.cache.hits >= 2  # served from memory again once current


async def test_while_the_listener_is_lost_every_read_goes_to_the_database(
    pg_pool: AsyncConnectionPool,
    feed: PostgresEventFeed,
    here: CachingEventStore,
    elsewhere: PostgresEventStore,
    tenant_id: uuid.UUID,
) -> None:
    run = await create_run(elsewhere, tenant_id)
    await seq(here, run)
    assert await seq(here, run) == 1
    async with pg_pool.connection() as conn:
        await conn.execute("SELECT pg_terminate_backend(%s)", (feed.listener_pid,))
    await eventually(lambda: not here.cache.serving)
    hits = here.cache.hits

    await beat(elsewhere, run, 1)  # nobody listens: this notice is lost
    assert await seq(here, run) == 2
    await beat(elsewhere, run, 2)
    assert await seq(here, run) == 3
    assert here.cache.hits == hits
    assert len(here.cache) == 0

    await eventually(lambda: here.cache.serving)
    assert await seq(here, run) == 3
    assert await seq(here, run) == 3
    assert here.cache.hits == hits + 1


async def test_a_closed_feed_leaves_nothing_served_from_memory(
    feed: PostgresEventFeed,
    here: CachingEventStore,
    elsewhere: PostgresEventStore,
    tenant_id: uuid.UUID,
) -> None:
    run = await create_run(elsewhere, tenant_id)
    await seq(here, run)
    await feed.close()

    await beat(elsewhere, run, 1)

    assert not here.cache.serving
    assert await seq(here, run) == 2


# -- the NATS feed ---------------------------------------------------------------------

# nats-py waits 2 s between reconnect attempts.
NATS_WAIT = 15.0


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "jetstream")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def prefix() -> str:
    return f"cftest.{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def nats_feed(nats: NatsServer, prefix: str) -> AsyncIterator[NatsEventFeed]:
    async with NatsEventFeed(nats.url, prefix=prefix) as feed:
        yield feed


@pytest.fixture
def here_on_nats(pg_pool: AsyncConnectionPool, nats_feed: NatsEventFeed) -> CachingEventStore:
    return CachingEventStore(PostgresEventStore(pg_pool), watched_cache(RunCache(), nats_feed))


@pytest.fixture
async def elsewhere_on_nats(
    migrated_database_url: str, nats: NatsServer, prefix: str
) -> AsyncIterator[EventLog]:
    async with (
        AsyncConnectionPool(migrated_database_url, min_size=1, max_size=2, open=False) as pool,
        NatsEventFeed(nats.url, prefix=prefix) as announcer,
    ):
        await pool.open(wait=True)
        yield EventLog(PostgresEventStore(pool), list, announce_to=announcer)


async def test_another_processs_write_arrives_by_nats_and_a_lost_nats_serves_nothing(
    nats: NatsServer,
    here_on_nats: CachingEventStore,
    elsewhere_on_nats: EventLog,
    tenant_id: uuid.UUID,
) -> None:
    here, elsewhere = here_on_nats, elsewhere_on_nats
    run = await create_run(elsewhere, tenant_id)
    assert await seq(here, run) == 1
    assert await seq(here, run) == 1
    assert here.cache.hits == 1

    # A write elsewhere is announced on NATS: the copy here is forgotten.
    await beat(elsewhere, run, 1)
    await eventually(lambda: len(here.cache) == 0)
    assert await seq(here, run) == 2

    # NATS goes away: from the moment the client notices, every read is the database's.
    await asyncio.to_thread(nats.stop)
    await eventually(lambda: not here.cache.serving, NATS_WAIT)
    assert len(here.cache) == 0
    hits = here.cache.hits
    await beat(elsewhere, run, 2)  # its notice cannot be delivered now
    assert await seq(here, run) == 3
    assert await seq(here, run) == 3
    assert here.cache.hits == hits

    # NATS is back: serving from memory again, starting from what the database says.
    await asyncio.to_thread(nats.start)
    await eventually(lambda: here.cache.serving, NATS_WAIT)
    assert await seq(here, run) == 3
    assert await seq(here, run) == 3
    assert here.cache.hits == hits + 1
    await beat(elsewhere, run, 3)
    await eventually(lambda: len(here.cache) == 0)
    assert await seq(here, run) == 4
