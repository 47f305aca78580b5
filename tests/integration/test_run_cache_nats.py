"""The run cache behind the NATS feed: another process's writes arrive as NATS notices,
and while NATS is away nothing is served from memory.

"Here" is a process's caching store whose cache watches its own NATS feed; "elsewhere"
is another process writing through an `EventLog` that announces on a feed of its own,
as the container wires it when `feed.kind` is nats. The NATS server is one of this
test's own, so it can be stopped and started again on the same port.
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
from adapters.postgres.event_store import PostgresEventStore
from codeforge.domain.events import HeartbeatRecorded, RunRequested
from codeforge.domain.ids import new_id
from codeforge.domain.runs import Run
from codeforge.ports.events import EventContext, OutboxMessage
from codeforge.services.event_log import EventLog
from codeforge.services.run_cache import CachingEventStore, RunCache, watched_cache

# nats-py waits 2 s between reconnect attempts.
WAIT = 15.0


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
async def feed(nats: NatsServer, prefix: str) -> AsyncIterator[NatsEventFeed]:
    async with NatsEventFeed(nats.url, prefix=prefix) as feed:
        yield feed


@pytest.fixture
def here(pg_pool: AsyncConnectionPool, feed: NatsEventFeed) -> CachingEventStore:
    return CachingEventStore(PostgresEventStore(pg_pool), watched_cache(RunCache(), feed))


@pytest.fixture
async def elsewhere(
    migrated_database_url: str, nats: NatsServer, prefix: str
) -> AsyncIterator[EventLog]:
    async with (
        AsyncConnectionPool(migrated_database_url, min_size=1, max_size=2, open=False) as pool,
        NatsEventFeed(nats.url, prefix=prefix) as announcer,
    ):
        await pool.open(wait=True)
        yield EventLog(PostgresEventStore(pool), list, announce_to=announcer)


async def eventually(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def new_run(log: EventLog, tenant: uuid.UUID) -> Run:
    requested = RunRequested(
        project_id=new_id(), task_id=new_id(), agent_id=new_id(), mode="mount", deliver="patch"
    )
    run = Run.requested(new_id(), tenant, requested, datetime.now(UTC))
    outbox = OutboxMessage(id=new_id(), subject="runs.start", payload={"run_id": str(run.id)})
    await log.create_run(run, requested, outbox, EventContext(tenant_id=tenant))
    return run


async def beat(log: EventLog, run: Run, after: int) -> None:
    await log.append(
        run.id,
        [HeartbeatRecorded(worker="w", lease_expires_at=datetime.now(UTC) + timedelta(minutes=1))],
        expected_seq=after,
        context=EventContext(tenant_id=run.tenant_id),
    )


async def seq(store: CachingEventStore, run: Run) -> int:
    return (await store.get_run(run.tenant_id, run.id)).last_seq


async def test_another_processs_write_arrives_by_nats_and_a_lost_nats_serves_nothing(
    nats: NatsServer, here: CachingEventStore, elsewhere: EventLog, tenant_id: uuid.UUID
) -> None:
    run = await new_run(elsewhere, tenant_id)
    assert await seq(here, run) == 1
    assert await seq(here, run) == 1
    assert here.cache.hits == 1

    # A write elsewhere is announced on NATS: the copy here is forgotten.
    await beat(elsewhere, run, 1)
    await eventually(lambda: len(here.cache) == 0)
    assert await seq(here, run) == 2

    # NATS goes away: from the moment the client notices, every read is the database's.
    await asyncio.to_thread(nats.stop)
    await eventually(lambda: not here.cache.serving)
    assert len(here.cache) == 0
    hits = here.cache.hits
    await beat(elsewhere, run, 2)  # its notice cannot be delivered now
    assert await seq(here, run) == 3
    assert await seq(here, run) == 3
    assert here.cache.hits == hits

    # NATS is back: serving from memory again, starting from what the database says.
    await asyncio.to_thread(nats.start)
    await eventually(lambda: here.cache.serving)
    assert await seq(here, run) == 3
    assert await seq(here, run) == 3
    assert here.cache.hits == hits + 1
    await beat(elsewhere, run, 3)
    await eventually(lambda: len(here.cache) == 0)
    assert await seq(here, run) == 4
