"""The EventStore contract, run against every adapter.

`EventStoreContract` holds the tests; each adapter subclasses it once with a
`store` fixture and two hooks that look behind the port: the outbox rows of a
tenant, and writing an event payload exactly as an older writer stored it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import msgspec
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from adapters.memory.event_store import MemoryEventStore
from adapters.postgres.event_store import PostgresEventStore
from codeforge.domain.errors import Conflict, NotFound, ValidationFailed
from codeforge.domain.events import (
    Event,
    HeartbeatRecorded,
    RunCancelled,
    RunCompleted,
    RunRequested,
    RunStarted,
    RunSuspended,
    StoredEvent,
    register_event_type,
)
from codeforge.domain.ids import new_id
from codeforge.domain.limits import Limits
from codeforge.domain.runs import Run, RunStatus
from codeforge.ports.events import EventContext, EventStore, OutboxMessage

pytestmark = pytest.mark.contract


class ContractNoteRecorded(Event, frozen=True, kw_only=True):
    """A test-only event type at schema version 2: version 1 called `body` `text`."""

    SCHEMA_VERSION: ClassVar[int] = 2
    body: str
    n: int = 0

    @classmethod
    def upcast(cls, payload: dict[str, Any], version: int) -> dict[str, Any]:
        if version < 2:
            payload["body"] = payload.pop("text")
        return payload


register_event_type(ContractNoteRecorded)


class NeverRegistered(Event, frozen=True, kw_only=True):
    note: str = ""


def now() -> datetime:
    return datetime.now(UTC)


def new_run(
    tenant: uuid.UUID,
    *,
    task: uuid.UUID | None = None,
    agent: uuid.UUID | None = None,
    project: uuid.UUID | None = None,
) -> tuple[Run, RunRequested]:
    requested = RunRequested(
        project_id=project or new_id(),
        task_id=task or new_id(),
        agent_id=agent or new_id(),
        mode="mount",
        deliver="patch",
        limits=Limits(max_steps=30, max_cost_usd=Decimal("2.50")),
        policy_overrides={"mode": "acceptEdits"},
    )
    return Run.requested(new_id(), tenant, requested, now()), requested


def outbox_for(run: Run) -> OutboxMessage:
    return OutboxMessage(
        id=new_id(),
        subject="runs.start",
        payload={"run_id": str(run.id)},
        headers={"request-id": "req-1"},
    )


def started(worker: str = "worker-1") -> RunStarted:
    return RunStarted(worker=worker, lease_expires_at=now() + timedelta(minutes=2))


def notes(count: int, start: int = 0) -> list[Event]:
    return [ContractNoteRecorded(body=f"note {i}", n=i) for i in range(start, start + count)]


class EventStoreContract:
    """The tests every EventStore adapter must pass. Not collected itself (no Test prefix)."""

    @pytest.fixture
    def store(self) -> EventStore:
        raise NotImplementedError

    async def outbox_ids(self, store: EventStore, tenant: uuid.UUID) -> set[uuid.UUID]:
        """The ids of the tenant's outbox messages (published or not)."""
        raise NotImplementedError

    async def put_raw(
        self,
        store: EventStore,
        tenant: uuid.UUID,
        run_id: uuid.UUID,
        type_name: str,
        version: int,
        payload: dict[str, Any],
    ) -> None:
        """Store `payload` at the run's next seq as written, bypassing the adapter's encoding."""
        raise NotImplementedError

    async def create(
        self, store: EventStore, tenant: uuid.UUID, **ids: uuid.UUID
    ) -> tuple[Run, StoredEvent]:
        run, requested = new_run(tenant, **ids)
        first = await store.create_run(
            run, requested, outbox_for(run), EventContext(tenant_id=tenant, request_id="req-1")
        )
        return run, first

    # -- leases ----------------------------------------------------------------------

    async def test_expired_leases_lists_running_runs_whose_lease_ended_oldest_first(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        # Leases in 2001 are older than any other test's, so the global query sees only ours.
        epoch = datetime(2001, 1, 1, tzinfo=UTC)
        older, _ = await self.create(store, tenant_id)
        newer, _ = await self.create(store, tenant_id)
        fresh, _ = await self.create(store, tenant_id)
        waiting, _ = await self.create(store, tenant_id)
        context = EventContext(tenant_id=tenant_id)
        for run, expires in (
            (newer, epoch + timedelta(minutes=2)),
            (older, epoch + timedelta(minutes=1)),
            (fresh, epoch + timedelta(days=400)),
        ):
            await store.append(
                run.id,
                [RunStarted(worker="w", lease_expires_at=expires)],
                expected_seq=1,
                context=context,
            )
        ended = await store.expired_leases(epoch + timedelta(hours=1))
        assert [run.id for run in ended] == [older.id, newer.id]
        assert all(run.status is RunStatus.RUNNING for run in ended)
        assert waiting.id not in {run.id for run in ended}
        assert [r.id for r in await store.expired_leases(epoch + timedelta(hours=1), limit=1)] == [
            older.id
        ]
        with pytest.raises(ValidationFailed):
            await store.expired_leases(datetime(2001, 1, 1))

    async def test_an_append_may_carry_an_outbox_message_all_or_nothing(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, _ = await self.create(store, tenant_id)
        context = EventContext(tenant_id=tenant_id)
        resume = outbox_for(run)
        await store.append(
            run.id,
            [RunSuspended(reason="worker_lost")],
            expected_seq=1,
            context=context,
            outbox=resume,
        )
        assert resume.id in await self.outbox_ids(store, tenant_id)
        refused = outbox_for(run)
        with pytest.raises(Conflict):
            await store.append(
                run.id, [RunCancelled()], expected_seq=1, context=context, outbox=refused
            )
        assert refused.id not in await self.outbox_ids(store, tenant_id)
        with pytest.raises(Conflict, match="outbox message"):
            await store.append(
                run.id, [RunCancelled()], expected_seq=2, context=context, outbox=resume
            )
        assert (await store.get_run(tenant_id, run.id)).status is RunStatus.SUSPENDED

    async def test_events_are_read_by_type_across_the_tenants_runs_in_log_order(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        first, _ = await self.create(store, tenant_id)
        second, _ = await self.create(store, tenant_id)
        other, _ = await self.create(store, uuid.uuid4())
        context = EventContext(tenant_id=tenant_id)
        beat = HeartbeatRecorded(worker="w", lease_expires_at=datetime.now(UTC))
        await store.append(
            first.id,
            [RunStarted(worker="w", lease_expires_at=datetime.now(UTC))],
            expected_seq=1,
            context=context,
        )
        await store.append(second.id, [RunCancelled()], expected_seq=1, context=context)
        await store.append(first.id, [beat], expected_seq=2, context=context)
        found = await store.load_by_types(tenant_id, ["RunCancelled", "HeartbeatRecorded"])
        assert [(e.run_id, e.type) for e in found] == [
            (second.id, "RunCancelled"),
            (first.id, "HeartbeatRecorded"),
        ]
        page = await store.load_by_types(tenant_id, ["RunRequested"], limit=1)
        rest = await store.load_by_types(tenant_id, ["RunRequested"], after=page[0].position)
        assert [e.run_id for e in page + rest] == [first.id, second.id]
        assert other.id not in {e.run_id for e in page + rest}

    # -- creating a run --------------------------------------------------------------

    async def test_create_run_stores_the_projection_the_first_event_and_the_outbox_message(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, requested = new_run(tenant_id)
        outbox = outbox_for(run)
        context = EventContext(tenant_id=tenant_id, request_id="req-1")

        first = await store.create_run(run, requested, outbox, context)

        assert (first.run_id, first.seq, first.type, first.schema_version) == (
            run.id,
            1,
            "RunRequested",
            1,
        )
        assert first.event == requested
        assert first.position > 0
        assert (first.task_id, first.agent_id, first.request_id) == (
            run.task_id,
            run.agent_id,
            "req-1",
        )
        stored = await store.get_run(tenant_id, run.id)
        assert stored == run
        assert (stored.version, stored.last_seq, stored.status) == (1, 1, RunStatus.REQUESTED)
        assert stored.limits == Limits(max_steps=30, max_cost_usd=Decimal("2.50"))
        assert await store.load(tenant_id, run.id) == [first]
        assert await self.outbox_ids(store, tenant_id) == {outbox.id}

    async def test_a_duplicate_run_id_is_a_conflict_and_writes_nothing(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, first = await self.create(store, tenant_id)
        again, requested = new_run(tenant_id)
        again = msgspec.structs.replace(again, id=run.id)
        outbox = outbox_for(again)

        with pytest.raises(Conflict, match=f"a run with id {run.id} already exists") as caught:
            await store.create_run(again, requested, outbox, EventContext(tenant_id=tenant_id))

        assert caught.value.field == "id"
        assert await store.get_run(tenant_id, run.id) == run
        assert await store.load(tenant_id, run.id) == [first]
        assert outbox.id not in await self.outbox_ids(store, tenant_id)

    async def test_a_duplicate_outbox_id_is_a_conflict_and_leaves_no_run_behind(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, requested = new_run(tenant_id)
        outbox = outbox_for(run)
        await store.create_run(run, requested, outbox, EventContext(tenant_id=tenant_id))
        other, other_requested = new_run(tenant_id, task=run.task_id)

        with pytest.raises(Conflict, match="outbox message"):
            await store.create_run(
                other, other_requested, outbox, EventContext(tenant_id=tenant_id)
            )

        with pytest.raises(NotFound):
            await store.get_run(tenant_id, other.id)
        assert [e.run_id for e in await store.load_by_task(tenant_id, run.task_id)] == [run.id]

    async def test_a_run_of_another_tenant_than_the_context_is_refused(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, requested = new_run(tenant_id)
        with pytest.raises(ValidationFailed):
            await store.create_run(
                run, requested, outbox_for(run), EventContext(tenant_id=uuid.uuid4())
            )
        with pytest.raises(NotFound):
            await store.get_run(tenant_id, run.id)

    # -- appending -------------------------------------------------------------------

    async def test_append_assigns_consecutive_seqs_and_bumps_the_version(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, first = await self.create(store, tenant_id)
        context = EventContext(tenant_id=tenant_id, request_id="req-2")

        batch = await store.append(run.id, notes(3), expected_seq=1, context=context)
        single = await store.append(run.id, notes(1, 3), expected_seq=4, context=context)

        assert [e.seq for e in batch + single] == [2, 3, 4, 5]
        positions = [e.position for e in [first, *batch, *single]]
        assert positions == sorted(positions)
        assert len(set(positions)) == 5
        assert {e.request_id for e in batch} == {"req-2"}
        stored = await store.get_run(tenant_id, run.id)
        assert (stored.last_seq, stored.version) == (5, 3)
        assert await store.load(tenant_id, run.id) == [first, *batch, *single]

    async def test_appending_after_a_stale_seq_is_a_conflict_and_appends_nothing(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, _ = await self.create(store, tenant_id)
        context = EventContext(tenant_id=tenant_id)
        await store.append(run.id, notes(2), expected_seq=1, context=context)

        with pytest.raises(Conflict, match=f"run {run.id} is at seq 3, not 1"):
            await store.append(run.id, notes(1), expected_seq=1, context=context)
        with pytest.raises(Conflict, match="is at seq 3, not 7"):
            await store.append(run.id, notes(1), expected_seq=7, context=context)

        assert [e.seq for e in await store.load(tenant_id, run.id)] == [1, 2, 3]
        assert (await store.get_run(tenant_id, run.id)).version == 2

    async def test_of_concurrent_appends_after_the_same_seq_exactly_one_wins(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, _ = await self.create(store, tenant_id)
        context = EventContext(tenant_id=tenant_id)

        outcomes = await asyncio.gather(
            *(
                store.append(run.id, notes(2, start=10 * i), expected_seq=1, context=context)
                for i in range(5)
            ),
            return_exceptions=True,
        )

        winners = [o for o in outcomes if isinstance(o, list)]
        assert len(winners) == 1
        assert all(isinstance(o, Conflict) for o in outcomes if not isinstance(o, list))
        log = await store.load(tenant_id, run.id)
        assert [e.seq for e in log] == [1, 2, 3]
        assert log[1:] == winners[0]
        stored = await store.get_run(tenant_id, run.id)
        assert (stored.last_seq, stored.version) == (3, 2)

    async def test_appending_to_an_unknown_run_is_not_found(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        with pytest.raises(NotFound):
            await store.append(
                new_id(), notes(1), expected_seq=0, context=EventContext(tenant_id=tenant_id)
            )

    async def test_an_empty_batch_or_an_unregistered_event_type_is_refused(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, first = await self.create(store, tenant_id)
        context = EventContext(tenant_id=tenant_id)
        with pytest.raises(ValidationFailed):
            await store.append(run.id, [], expected_seq=1, context=context)
        with pytest.raises(ValidationFailed, match="not registered"):
            await store.append(
                run.id, [*notes(1), NeverRegistered()], expected_seq=1, context=context
            )
        assert await store.load(tenant_id, run.id) == [first]

    async def test_text_postgresql_cannot_store_is_refused_and_appends_nothing(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, first = await self.create(store, tenant_id)
        context = EventContext(tenant_id=tenant_id)
        with pytest.raises(ValidationFailed, match="NUL character"):
            await store.append(
                run.id, [ContractNoteRecorded(body="a\x00b")], expected_seq=1, context=context
            )
        with pytest.raises(ValidationFailed):
            await store.append(
                run.id,
                notes(1),
                expected_seq=1,
                context=EventContext(tenant_id=tenant_id, request_id="req\x00"),
            )
        with pytest.raises(ValidationFailed, match="surrogates"):
            await store.append(
                run.id, [ContractNoteRecorded(body="\ud800")], expected_seq=1, context=context
            )
        # A backslash followed by "u0000" is just text.
        [kept] = await store.append(
            run.id, [ContractNoteRecorded(body="a\\u0000b")], expected_seq=1, context=context
        )
        assert await store.load(tenant_id, run.id) == [first, kept]
        assert kept.event == ContractNoteRecorded(body="a\\u0000b")

    # -- the projection --------------------------------------------------------------

    async def test_the_projection_follows_the_events(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, _ = await self.create(store, tenant_id)
        context = EventContext(tenant_id=tenant_id)
        start = started("worker-7")

        await store.append(run.id, [start], expected_seq=1, context=context)
        running = await store.get_run(tenant_id, run.id)
        assert running.status == RunStatus.RUNNING
        assert (running.lease_owner, running.lease_expires_at) == (
            "worker-7",
            start.lease_expires_at,
        )
        assert running.started_at is not None
        assert running.version == 2

        renewed = now() + timedelta(minutes=5)
        done = RunCompleted(summary="fixed it", artifact={"patch": "diff --git a b"})
        await store.append(
            run.id,
            [HeartbeatRecorded(worker="worker-7", lease_expires_at=renewed), done],
            expected_seq=2,
            context=context,
        )

        finished = await store.get_run(tenant_id, run.id)
        assert finished.status == RunStatus.SUCCEEDED
        assert finished.result is not None
        assert (finished.result.outcome, finished.result.summary) == ("succeeded", "fixed it")
        assert finished.result.artifact == {"patch": "diff --git a b"}
        assert (finished.lease_owner, finished.lease_expires_at) == (None, None)
        assert finished.finished_at is not None
        assert (finished.last_seq, finished.version) == (4, 3)
        assert finished.started_at == running.started_at

    async def test_an_invalid_transition_is_a_conflict_and_appends_nothing(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, first = await self.create(store, tenant_id)
        context = EventContext(tenant_id=tenant_id)

        # A requested run cannot succeed: the whole batch goes, the valid first event too.
        with pytest.raises(Conflict, match="a requested run cannot become succeeded"):
            await store.append(
                run.id,
                [*notes(1), RunCompleted(summary="too soon")],
                expected_seq=1,
                context=context,
            )

        assert await store.load(tenant_id, run.id) == [first]
        assert await store.get_run(tenant_id, run.id) == run
        [next_event] = await store.append(run.id, notes(1), expected_seq=1, context=context)
        assert next_event.seq == 2

    # -- reading ---------------------------------------------------------------------

    async def test_load_returns_the_events_after_a_seq_up_to_a_limit(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, first = await self.create(store, tenant_id)
        rest = await store.append(
            run.id, notes(9), expected_seq=1, context=EventContext(tenant_id=tenant_id)
        )
        log = [first, *rest]

        assert await store.load(tenant_id, run.id) == log
        assert await store.load(tenant_id, run.id, after=4) == log[4:]
        assert await store.load(tenant_id, run.id, after=4, limit=3) == log[4:7]
        assert await store.load(tenant_id, run.id, limit=0) == []
        assert await store.load(tenant_id, run.id, after=10) == []
        assert [e.event for e in rest] == notes(9)

    async def test_load_by_task_and_by_agent_page_across_runs_by_position(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        task, agent = new_id(), new_id()
        context = EventContext(tenant_id=tenant_id)
        a, a1 = await self.create(store, tenant_id, task=task)
        b, b1 = await self.create(store, tenant_id, task=task, agent=agent)
        c, c1 = await self.create(store, tenant_id, agent=agent)
        a2 = await store.append(a.id, notes(2), expected_seq=1, context=context)
        b2 = await store.append(b.id, notes(1), expected_seq=1, context=context)
        c2 = await store.append(c.id, notes(1), expected_seq=1, context=context)
        a3 = await store.append(a.id, notes(1), expected_seq=3, context=context)

        by_task = [a1, b1, *a2, *b2, *a3]
        assert await store.load_by_task(tenant_id, task) == by_task
        first_page = await store.load_by_task(tenant_id, task, limit=2)
        second_page = await store.load_by_task(
            tenant_id, task, after=first_page[-1].position, limit=2
        )
        last_page = await store.load_by_task(tenant_id, task, after=second_page[-1].position)
        assert first_page + second_page + last_page == by_task
        assert [len(first_page), len(second_page), len(last_page)] == [2, 2, 2]

        by_agent = [b1, c1, *b2, *c2]
        assert await store.load_by_agent(tenant_id, agent) == by_agent
        assert await store.load_by_agent(tenant_id, agent, after=c1.position) == by_agent[2:]
        assert await store.load_by_task(tenant_id, new_id()) == []

    async def test_another_tenant_sees_nothing(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, _ = await self.create(store, tenant_id)
        other = uuid.uuid4()

        with pytest.raises(NotFound):
            await store.get_run(other, run.id)
        with pytest.raises(NotFound):
            await store.load(other, run.id)
        with pytest.raises(NotFound):
            await store.append(
                run.id, notes(1), expected_seq=1, context=EventContext(tenant_id=other)
            )
        assert (await store.list_runs(other)).items == []
        assert await store.load_by_task(other, run.task_id) == []
        assert await store.load_by_agent(other, run.agent_id) == []
        assert await self.outbox_ids(store, other) == set()
        assert (await store.get_run(tenant_id, run.id)).last_seq == 1

    async def test_an_old_schema_version_is_upgraded_on_read(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, _ = await self.create(store, tenant_id)
        await self.put_raw(
            store, tenant_id, run.id, "ContractNoteRecorded", 1, {"text": "old shape", "n": 3}
        )
        [current] = await store.append(
            run.id, notes(1), expected_seq=2, context=EventContext(tenant_id=tenant_id)
        )

        old, new = (await store.load(tenant_id, run.id))[1:]

        assert (old.seq, old.schema_version) == (2, 1)
        assert old.event == ContractNoteRecorded(body="old shape", n=3)
        assert (new.seq, new.schema_version) == (3, 2)
        assert new == current

    async def test_list_runs_pages_by_id_and_filters(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        task = new_id()
        # new_id() orders by millisecond only: sort to get the order by id.
        created = [(await self.create(store, tenant_id, task=task))[0] for _ in range(3)]
        runs = sorted(created, key=lambda r: r.id)
        await asyncio.sleep(0.002)  # a later millisecond: a greater id
        other, _ = await self.create(store, tenant_id)
        await store.append(
            runs[1].id, [started()], expected_seq=1, context=EventContext(tenant_id=tenant_id)
        )

        page = await store.list_runs(tenant_id, limit=2)
        assert [r.id for r in page.items] == [runs[0].id, runs[1].id]
        assert page.next_cursor == str(runs[1].id)
        rest = await store.list_runs(tenant_id, after=uuid.UUID(page.next_cursor), limit=2)
        assert [r.id for r in rest.items] == [runs[2].id, other.id]
        assert rest.next_cursor is None

        by_task = await store.list_runs(tenant_id, filters={"task_id": str(task)})
        assert [r.id for r in by_task.items] == [r.id for r in runs]
        running = await store.list_runs(tenant_id, filters={"status": "running"})
        assert [r.id for r in running.items] == [runs[1].id]
        assert running.items[0].status == RunStatus.RUNNING
        both = {"task_id": str(task), "status": "requested", "agent_id": str(runs[2].agent_id)}
        assert [r.id for r in (await store.list_runs(tenant_id, filters=both)).items] == [
            runs[2].id
        ]
        project = {"project_id": str(other.project_id)}
        assert [r.id for r in (await store.list_runs(tenant_id, filters=project)).items] == [
            other.id
        ]

    @pytest.mark.parametrize(
        ("filters", "field"),
        [
            ({"colour": "red"}, "colour"),
            ({"status": "sleeping"}, "status"),
            ({"task_id": "x"}, "task_id"),
        ],
    )
    async def test_an_unknown_filter_or_a_bad_value_is_a_validation_error(
        self, store: EventStore, tenant_id: uuid.UUID, filters: dict[str, str], field: str
    ) -> None:
        with pytest.raises(ValidationFailed) as caught:
            await store.list_runs(tenant_id, filters=filters)
        assert caught.value.field == field

    @settings(
        max_examples=25,
        deadline=None,
        # Each adapter's subclass runs this same method: that is the contract suite's design.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        batches=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=6),
        after=st.integers(min_value=0, max_value=40),
        limit=st.none() | st.integers(min_value=0, max_value=40),
    )
    async def test_any_sequence_of_batches_reads_back_as_one_gapless_log(
        self, store: EventStore, batches: list[int], after: int, limit: int | None
    ) -> None:
        tenant = uuid.uuid4()
        run, first = await self.create(store, tenant)
        context = EventContext(tenant_id=tenant)
        log = [first]
        for size in batches:
            log += await store.append(
                run.id, notes(size, len(log)), expected_seq=len(log), context=context
            )

        assert [e.seq for e in log] == list(range(1, sum(batches) + 2))
        assert [e.position for e in log] == sorted({e.position for e in log})
        end = None if limit is None else after + limit
        assert await store.load(tenant, run.id, after=after, limit=limit) == log[after:end]
        assert (await store.get_run(tenant, run.id)).last_seq == len(log)

    async def test_paging_by_task_during_concurrent_appends_never_skips_an_event(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        task = new_id()
        runs = [(await self.create(store, tenant_id, task=task))[0] for _ in range(4)]
        context = EventContext(tenant_id=tenant_id)
        seen: list[StoredEvent] = []
        writing = True

        async def write(run: Run) -> None:
            for i in range(15):
                await store.append(run.id, notes(2), expected_seq=1 + 2 * i, context=context)

        async def tail() -> None:
            after = 0
            while True:
                done = not writing
                page = await store.load_by_task(tenant_id, task, after=after)
                seen.extend(page)
                after = page[-1].position if page else after
                if done and not page:
                    return
                await asyncio.sleep(0)

        reader = asyncio.create_task(tail())
        await asyncio.gather(*(write(run) for run in runs))
        writing = False
        await reader

        assert seen == await store.load_by_task(tenant_id, task)
        assert len(seen) == 4 * 31

    async def test_a_ten_thousand_event_run_loads_in_well_under_a_second(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, _ = await self.create(store, tenant_id)
        context = EventContext(tenant_id=tenant_id)
        for start in range(0, 10_000, 1_000):
            await store.append(run.id, notes(1_000, start), expected_seq=1 + start, context=context)

        await store.load(tenant_id, run.id)  # warm caches and the connection
        # The best of three: this guards against a read that is slow by design (a query
        # per event, say), not against a busy machine; `make bench` measures the speed.
        took = float("inf")
        for _ in range(3):
            began = time.perf_counter()
            log = await store.load(tenant_id, run.id)
            took = min(took, time.perf_counter() - began)

        assert len(log) == 10_001
        assert log[-1].event == ContractNoteRecorded(body="note 9999", n=9999)
        assert took < 0.5, f"loading 10,001 events took {took * 1000:.0f} ms (best of 3)"


class TestMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> EventStore:
        return MemoryEventStore()

    async def outbox_ids(self, store: EventStore, tenant: uuid.UUID) -> set[uuid.UUID]:
        assert isinstance(store, MemoryEventStore)
        return {m.id for m in store.pending_outbox(tenant)}

    async def put_raw(
        self,
        store: EventStore,
        tenant: uuid.UUID,
        run_id: uuid.UUID,
        type_name: str,
        version: int,
        payload: dict[str, Any],
    ) -> None:
        assert isinstance(store, MemoryEventStore)
        store.put_raw(tenant, run_id, type_name, version, payload)


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    def store(self, pg_pool: AsyncConnectionPool) -> EventStore:
        self.pool = pg_pool
        return PostgresEventStore(pg_pool)

    async def outbox_ids(self, store: EventStore, tenant: uuid.UUID) -> set[uuid.UUID]:
        async with self.pool.connection() as conn:
            cursor = await conn.execute("SELECT id FROM outbox WHERE tenant_id = %s", (tenant,))
            return {row[0] for row in await cursor.fetchall()}

    async def put_raw(
        self,
        store: EventStore,
        tenant: uuid.UUID,
        run_id: uuid.UUID,
        type_name: str,
        version: int,
        payload: dict[str, Any],
    ) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO run_events (run_id, seq, type, schema_version, payload, tenant_id,"
                " task_id, agent_id)"
                " SELECT id, last_seq + 1, %s, %s, %s, tenant_id, task_id, agent_id FROM runs"
                " WHERE tenant_id = %s AND id = %s",
                (type_name, version, psycopg.types.json.Jsonb(payload), tenant, run_id),
            )
            await conn.execute(
                "UPDATE runs SET last_seq = last_seq + 1, version = version + 1"
                " WHERE tenant_id = %s AND id = %s",
                (tenant, run_id),
            )

    async def test_the_outbox_row_waits_for_the_relay(
        self, store: EventStore, tenant_id: uuid.UUID
    ) -> None:
        run, requested = new_run(tenant_id)
        outbox = outbox_for(run)
        await store.create_run(run, requested, outbox, EventContext(tenant_id=tenant_id))
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT subject, payload, headers, published_at, attempts FROM outbox"
                " WHERE id = %s",
                (outbox.id,),
            )
            row = await cursor.fetchone()
        assert row == ("runs.start", {"run_id": str(run.id)}, {"request-id": "req-1"}, None, 0)

    async def test_an_unreachable_database_is_dependency_unavailable(
        self, tenant_id: uuid.UUID
    ) -> None:
        from codeforge.ports.errors import DependencyUnavailable

        pool = AsyncConnectionPool(
            "postgresql://nobody@127.0.0.1:1/none", min_size=0, max_size=1, open=False, timeout=0.5
        )
        await pool.open(wait=False)
        try:
            with pytest.raises(DependencyUnavailable):
                await PostgresEventStore(pool).get_run(tenant_id, new_id())
        finally:
            await pool.close()
