"""Workers take run jobs with a lease, renew it, obey cancel, suspend on shutdown;
the reaper ends runs whose lease expired. Real PostgreSQL, the in-process queue."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from psycopg_pool import AsyncConnectionPool

from adapters.memory.queue import MemoryBroker, MemoryQueue
from adapters.postgres.costs import PostgresCostLedger
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.migrations import YoyoMigrator
from adapters.postgres.pool import open_pool
from codeforge.domain.commands import ControlRun, StartRun
from codeforge.domain.events import RunRequested, RunResumed, RunStarted
from codeforge.domain.ids import new_id
from codeforge.domain.runs import Run, RunStatus
from codeforge.ports.costs import Budgets
from codeforge.ports.events import EventContext, OutboxMessage
from codeforge.ports.executor import CancelSignal, Journal, Outcome
from codeforge.services.event_log import EventLog
from codeforge.services.lease_reaper import LeaseReaper
from codeforge.services.run_worker import RunWorker
from codeforge.services.subjects import START_RUN, control_subject, subject_registry
from codeforge.settings import PoolSettings

TENANT = uuid.uuid4()


class ScriptedAgent:
    """Stands in for the agent (an LLM loop): finishes when told, or when cancelled."""

    def __init__(self) -> None:
        self.started: asyncio.Queue[uuid.UUID] = asyncio.Queue()
        self.finish = asyncio.Event()
        self.executions: list[uuid.UUID] = []

    async def execute(self, run: Run, cancel: CancelSignal, journal: Journal) -> Outcome:
        self.executions.append(run.id)
        await self.started.put(run.id)
        done = asyncio.ensure_future(self.finish.wait())
        cancelled = asyncio.ensure_future(cancel.wait())
        try:
            await asyncio.wait({done, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()
            cancelled.cancel()
        if cancel.is_set():
            return Outcome(status="cancelled")
        return Outcome(status="succeeded", summary="did it")


@pytest.fixture
async def pool(make_database: Callable[[], str]) -> AsyncIterator[AsyncConnectionPool]:
    url = make_database()
    YoyoMigrator(url).apply()
    async for opened in open_pool(url, PoolSettings(min_size=1, max_size=8)):
        yield opened


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


async def new_queue(broker: MemoryBroker) -> MemoryQueue:
    queue = MemoryQueue(subject_registry(), broker=broker)
    await queue.start()
    return queue


async def create_run(store: PostgresEventStore) -> Run:
    requested = RunRequested(
        project_id=new_id(), task_id=new_id(), agent_id=new_id(), mode="mount", deliver="patch"
    )
    run = Run.requested(new_id(), TENANT, requested, datetime.now(UTC))
    outbox = OutboxMessage(id=new_id(), subject=START_RUN, payload={})
    await store.create_run(run, requested, outbox, EventContext(tenant_id=TENANT))
    return run


def worker(
    queue: MemoryQueue, store: PostgresEventStore, agent: ScriptedAgent, name: str, **kw: float
) -> RunWorker:
    return RunWorker(queue, store, EventLog(store, list), agent, worker_id=name, **kw)


async def wait_status(store: PostgresEventStore, run: Run, status: RunStatus) -> Run:
    for _ in range(200):
        current = await store.get_run(TENANT, run.id)
        if current.status is status:
            return current
        await asyncio.sleep(0.02)
    raise AssertionError(f"run stayed {current.status}, never {status}")


async def test_each_job_runs_exactly_once_across_two_workers_even_when_delivered_twice(
    pool: AsyncConnectionPool, broker: MemoryBroker
) -> None:
    store = PostgresEventStore(pool)
    agent = ScriptedAgent()
    agent.finish.set()
    queues = [await new_queue(broker) for _ in range(3)]
    workers = [worker(queues[i], store, agent, f"w{i}") for i in range(2)]
    for w in workers:
        await w.start()
    runs = [await create_run(store) for _ in range(8)]
    for run in runs:
        job = StartRun(run_id=run.id, tenant_id=TENANT)
        # At-least-once delivery: every job arrives twice.
        await queues[2].publish(START_RUN, job)
        await queues[2].publish(START_RUN, job)
    for run in runs:
        done = await wait_status(store, run, RunStatus.SUCCEEDED)
        assert done.result is not None
        assert done.result.summary == "did it"
        assert done.lease_owner is None
    assert sorted(agent.executions) == sorted(run.id for run in runs)
    for q in queues:
        await q.drain()


async def test_taking_a_job_records_the_lease_and_heartbeats_renew_it(
    pool: AsyncConnectionPool, broker: MemoryBroker
) -> None:
    store = PostgresEventStore(pool)
    agent = ScriptedAgent()
    queue = await new_queue(broker)
    w = worker(queue, store, agent, "w1", lease_seconds=60, heartbeat_seconds=0.1)
    await w.start()
    run = await create_run(store)
    await queue.publish(START_RUN, StartRun(run_id=run.id, tenant_id=TENANT))
    await asyncio.wait_for(agent.started.get(), 5)
    first = await wait_status(store, run, RunStatus.RUNNING)
    assert first.lease_owner == "w1"
    await asyncio.sleep(0.35)
    later = await store.get_run(TENANT, run.id)
    assert later.lease_expires_at is not None
    assert first.lease_expires_at is not None
    assert later.lease_expires_at > first.lease_expires_at
    types = [e.type for e in await store.load(TENANT, run.id)]
    assert types[:2] == ["RunRequested", "RunStarted"]
    assert "HeartbeatRecorded" in types
    agent.finish.set()
    await wait_status(store, run, RunStatus.SUCCEEDED)
    await queue.drain()


async def test_a_cancel_on_the_control_subject_reaches_the_lease_holder(
    pool: AsyncConnectionPool, broker: MemoryBroker
) -> None:
    store = PostgresEventStore(pool)
    agent = ScriptedAgent()
    worker_queue, api_queue = await new_queue(broker), await new_queue(broker)
    w = worker(worker_queue, store, agent, "w1")
    await w.start()
    run = await create_run(store)
    await api_queue.publish(START_RUN, StartRun(run_id=run.id, tenant_id=TENANT))
    await asyncio.wait_for(agent.started.get(), 5)
    await asyncio.sleep(0.05)  # the worker subscribes to the run's control subject
    loop = asyncio.get_running_loop()
    sent = loop.time()
    await api_queue.publish(
        control_subject(run.id),
        ControlRun(run_id=run.id, tenant_id=TENANT, action="cancel", reason="not needed"),
    )
    cancelled = await wait_status(store, run, RunStatus.CANCELLED)
    assert loop.time() - sent < 1.0
    assert cancelled.result is not None
    assert cancelled.result.summary == "not needed"
    await worker_queue.drain()
    await api_queue.drain()


async def test_shutdown_suspends_running_runs_and_releases_their_lease(
    pool: AsyncConnectionPool, broker: MemoryBroker
) -> None:
    store = PostgresEventStore(pool)
    agent = ScriptedAgent()
    queue = await new_queue(broker)
    w = worker(queue, store, agent, "w1")
    await w.start()
    run = await create_run(store)
    await queue.publish(START_RUN, StartRun(run_id=run.id, tenant_id=TENANT))
    await asyncio.wait_for(agent.started.get(), 5)
    await w.suspend_all()
    suspended = await store.get_run(TENANT, run.id)
    assert suspended.status is RunStatus.SUSPENDED
    assert suspended.lease_owner is None
    assert w.running == []
    # Queued again in the same write as the suspension, for whoever resumes it.
    async with pool.connection() as conn:
        queued = await (
            await conn.execute(
                "SELECT count(*) FROM outbox WHERE payload->>'run_id' = %s", (str(run.id),)
            )
        ).fetchone()
    assert queued == (1,)  # the resume (this test queued the first start by hand)
    # Another worker handed the job resumes the run where it was.
    successor = worker(queue, store, agent, "w2")
    await successor.start()
    await queue.publish(START_RUN, StartRun(run_id=run.id, tenant_id=TENANT))
    assert await asyncio.wait_for(agent.started.get(), 5) == run.id
    resumed = await wait_status(store, run, RunStatus.RUNNING)
    assert (resumed.lease_owner, resumed.attempts) == ("w2", 2)
    agent.finish.set()
    await wait_status(store, run, RunStatus.SUCCEEDED)
    events = await store.load(TENANT, run.id)
    assert [e.type for e in events] == [
        "RunRequested", "RunStarted", "RunSuspended", "RunResumed", "RunCompleted",
    ]  # fmt: skip
    await queue.drain()


async def test_the_reaper_ends_a_run_whose_lease_expired_and_spares_a_renewed_one(
    pool: AsyncConnectionPool,
) -> None:
    store = PostgresEventStore(pool)
    event_log = EventLog(store, list)
    lost, alive = await create_run(store), await create_run(store)
    past = datetime.now(UTC) - timedelta(seconds=5)
    future = datetime.now(UTC) + timedelta(minutes=5)
    for run, expires in ((lost, past), (alive, future)):
        await store.append(
            run.id,
            [RunStarted(worker="gone", lease_expires_at=expires)],
            expected_seq=1,
            context=EventContext(tenant_id=TENANT),
        )
    ledger = PostgresCostLedger(pool)
    held = await ledger.reserve(
        tenant_id=TENANT,
        project_id=lost.project_id,
        run_id=lost.id,
        model="m",
        amount_usd=Decimal("0.5"),
        budgets=Budgets(),
    )
    reaper = LeaseReaper(store, event_log, ledger=ledger, max_attempts=2)
    assert await reaper.reap_once() == 1
    # The dead worker's model call will never settle: its hold goes back to the budgets.
    assert (await ledger.spent(TENANT, "project", str(held.project_id))).held_usd == 0
    # The run waits to be resumed by any worker (queued in the same write).
    suspended = await store.get_run(TENANT, lost.id)
    assert suspended.status is RunStatus.SUSPENDED
    [reason] = [
        e.event.reason for e in await store.load(TENANT, lost.id) if e.type == "RunSuspended"
    ]
    assert reason.startswith("worker_lost: the lease of gone expired")
    assert (await store.get_run(TENANT, alive.id)).status is RunStatus.RUNNING
    assert await reaper.reap_once() == 0
    # A run whose worker keeps dying is given up after max_attempts starts.
    await store.append(
        lost.id,
        [RunResumed(worker="gone again", lease_expires_at=past)],
        expected_seq=suspended.last_seq,
        context=EventContext(tenant_id=TENANT),
    )
    assert await reaper.reap_once() == 1
    failed = await store.get_run(TENANT, lost.id)
    assert failed.status is RunStatus.FAILED
    assert failed.result is not None
    assert failed.result.summary == "worker_lost"
    assert "gave up after 2 attempts" in failed.result.artifact["detail"]


async def test_a_worker_whose_lease_was_taken_away_stops_the_run(
    pool: AsyncConnectionPool, broker: MemoryBroker
) -> None:
    store = PostgresEventStore(pool)
    agent = ScriptedAgent()
    queue = await new_queue(broker)
    w = worker(queue, store, agent, "w1", lease_seconds=0.2, heartbeat_seconds=0.5)
    await w.start()
    run = await create_run(store)
    await queue.publish(START_RUN, StartRun(run_id=run.id, tenant_id=TENANT))
    await asyncio.wait_for(agent.started.get(), 5)
    await asyncio.sleep(0.3)  # the lease (0.2 s) expires before the first heartbeat
    assert await LeaseReaper(store, EventLog(store, list)).reap_once() == 1
    for _ in range(100):
        if not w.running:
            break
        await asyncio.sleep(0.02)
    assert w.running == []
    assert (await store.get_run(TENANT, run.id)).status is RunStatus.SUSPENDED
    await queue.drain()
