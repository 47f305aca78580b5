"""The OutboxStore contract, run against every adapter.

`OutboxContract` holds the tests; each adapter subclasses it once with a `fresh`
fixture that gives an event store and the outbox store on its rows, both empty.
Entries are made the way production makes them: `EventStore.create_run` writes
each one with its run, at the run's `created_at`.

The outbox is one queue for the whole installation — a claim takes any tenant's
entries — so PostgreSQL tests do not share the session's database: this module
migrates a database of its own and empties the outbox before every test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from adapters.memory.event_store import MemoryEventStore
from adapters.memory.outbox import MemoryOutbox
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.migrations import YoyoMigrator
from adapters.postgres.outbox import PostgresOutbox
from adapters.postgres.pool import open_pool
from codeforge.domain.errors import ValidationFailed
from codeforge.domain.events import RunRequested
from codeforge.domain.ids import new_id
from codeforge.domain.runs import Run
from codeforge.ports.errors import DependencyUnavailable
from codeforge.ports.events import EventContext, EventStore, OutboxMessage
from codeforge.ports.outbox import OutboxEntry, OutboxStore
from codeforge.settings import PoolSettings

pytestmark = pytest.mark.contract

# Every test keeps its own clock: entries are created at T0 + n seconds and every
# `now` is given, so leases expire exactly when a test says so.
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Stores(NamedTuple):
    events: EventStore
    outbox: OutboxStore

    async def add(
        self,
        created_at: datetime,
        *,
        tenant: uuid.UUID | None = None,
        payload: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
    ) -> uuid.UUID:
        """Start a run created at `created_at`; returns the id of its outbox entry."""
        tenant = tenant or uuid.uuid4()
        requested = RunRequested(
            project_id=new_id(), task_id=new_id(), agent_id=new_id(), mode="mount", deliver="patch"
        )
        run = Run.requested(new_id(), tenant, requested, created_at)
        message = OutboxMessage(
            id=new_id(),
            subject="runs.start",
            payload={"run_id": str(run.id)} if payload is None else payload,
            headers={"X-Request-ID": "req-1"} if headers is None else headers,
        )
        await self.events.create_run(run, requested, message, EventContext(tenant_id=tenant))
        return message.id

    async def add_many(self, count: int, *, first: float = 0) -> list[uuid.UUID]:
        """`count` entries, one a second from `first`: oldest first."""
        return [await self.add(at(first + n)) for n in range(count)]


def ids(entries: list[OutboxEntry]) -> list[uuid.UUID]:
    return [e.id for e in entries]


class OutboxContract:
    """The tests every OutboxStore adapter must pass. Not collected itself (no Test prefix)."""

    @pytest.fixture
    def fresh(self) -> Callable[[], Awaitable[Stores]]:
        """Make an event store and its outbox store, with nothing in the outbox."""
        raise NotImplementedError

    @pytest.fixture
    async def stores(self, fresh: Callable[[], Awaitable[Stores]]) -> Stores:
        return await fresh()

    # -- claiming --------------------------------------------------------------------

    async def test_a_claim_returns_the_oldest_entries_first_up_to_the_limit(
        self, stores: Stores
    ) -> None:
        # Created out of order: age, not insertion, decides.
        late = await stores.add(at(30))
        early = [await stores.add(at(n)) for n in (10, 20)]

        first = await stores.outbox.claim(limit=2, lease_seconds=60, now=at(100))
        second = await stores.outbox.claim(limit=2, lease_seconds=60, now=at(100))

        assert ids(first) == early
        assert ids(second) == [late]

    async def test_entries_created_at_the_same_instant_are_claimed_in_id_order(
        self, stores: Stores
    ) -> None:
        made = [await stores.add(at(5)) for _ in range(4)]

        claimed = await stores.outbox.claim(limit=10, lease_seconds=60, now=at(10))

        assert ids(claimed) == sorted(made)

    async def test_a_claimed_entry_carries_the_message_as_it_was_written(
        self, stores: Stores
    ) -> None:
        tenant = uuid.uuid4()
        payload: dict[str, object] = {"run_id": "r-1", "nested": {"n": [1, 2.5, None, "ü"]}}
        entry_id = await stores.add(
            at(3), tenant=tenant, payload=payload, headers={"X-Request-ID": "req-9"}
        )

        [entry] = await stores.outbox.claim(limit=1, lease_seconds=60, now=at(10))

        assert entry == OutboxEntry(
            id=entry_id,
            tenant_id=tenant,
            subject="runs.start",
            payload=payload,
            headers={"X-Request-ID": "req-9"},
            created_at=at(3),
            attempts=0,
            last_error=None,
        )

    async def test_a_claim_takes_the_entries_of_every_tenant(self, stores: Stores) -> None:
        tenants = [uuid.uuid4(), uuid.uuid4()]
        made = [await stores.add(at(n), tenant=t) for n, t in enumerate(tenants)]

        claimed = await stores.outbox.claim(limit=10, lease_seconds=60, now=at(10))

        assert [(e.id, e.tenant_id) for e in claimed] == list(zip(made, tenants, strict=True))

    async def test_an_empty_outbox_claims_nothing(self, stores: Stores) -> None:
        assert await stores.outbox.claim(limit=5, lease_seconds=60, now=at(0)) == []

    async def test_claimed_entries_are_not_claimed_again_while_their_lease_runs(
        self, stores: Stores
    ) -> None:
        made = await stores.add_many(3)
        taken = await stores.outbox.claim(limit=2, lease_seconds=30, now=at(100))

        again = await stores.outbox.claim(limit=10, lease_seconds=30, now=at(129.999))

        assert ids(taken) == made[:2]
        assert ids(again) == made[2:]
        assert await stores.outbox.claim(limit=10, lease_seconds=30, now=at(129.999)) == []

    async def test_an_entry_whose_lease_ran_out_is_claimed_again(self, stores: Stores) -> None:
        [entry_id] = await stores.add_many(1)
        await stores.outbox.claim(limit=1, lease_seconds=30, now=at(100))

        # The lease ends at 130: from that instant on the entry is free.
        again = await stores.outbox.claim(limit=1, lease_seconds=30, now=at(130))
        held = await stores.outbox.claim(limit=1, lease_seconds=30, now=at(159))

        assert ids(again) == [entry_id]
        assert again[0].attempts == 0
        assert held == []
        assert await stores.outbox.pending_count() == 1

    async def test_two_concurrent_claimers_never_share_an_entry_and_together_take_all(
        self, stores: Stores
    ) -> None:
        made = await stores.add_many(20)
        taken: list[uuid.UUID] = []

        for _ in range(4):
            a, b = await asyncio.gather(
                stores.outbox.claim(limit=5, lease_seconds=60, now=at(100)),
                stores.outbox.claim(limit=5, lease_seconds=60, now=at(100)),
            )
            assert len(a) <= 5
            assert len(b) <= 5
            assert not set(ids(a)) & set(ids(b))
            taken += ids(a) + ids(b)

        assert len(taken) == len(set(taken)) == 20
        assert set(taken) == set(made)

    async def test_many_concurrent_claimers_take_every_entry_exactly_once(
        self, stores: Stores
    ) -> None:
        made = await stores.add_many(60)

        async def claimer() -> list[uuid.UUID]:
            mine: list[uuid.UUID] = []
            while batch := await stores.outbox.claim(limit=4, lease_seconds=60, now=at(100)):
                mine += ids(batch)
            return mine

        shares = await asyncio.gather(*(claimer() for _ in range(6)))

        taken = [entry_id for share in shares for entry_id in share]
        assert sorted(taken) == sorted(made)

    # -- publishing ------------------------------------------------------------------

    async def test_published_entries_are_neither_claimed_nor_pending(self, stores: Stores) -> None:
        made = await stores.add_many(3)
        claimed = await stores.outbox.claim(limit=2, lease_seconds=30, now=at(100))

        await stores.outbox.mark_published(ids(claimed), now=at(101))

        # Long after every lease: only the unpublished entry comes back.
        assert ids(await stores.outbox.claim(limit=10, lease_seconds=30, now=at(1000))) == [made[2]]
        assert await stores.outbox.pending_count() == 1

    async def test_marking_published_is_idempotent_and_keeps_the_first_time(
        self, stores: Stores
    ) -> None:
        [entry_id] = await stores.add_many(1)
        await stores.outbox.mark_published([entry_id], now=at(10))

        await stores.outbox.mark_published([entry_id], now=at(100))
        await stores.outbox.mark_published([entry_id, new_id()], now=at(100))
        await stores.outbox.mark_published([], now=at(100))

        assert await stores.outbox.pending_count() == 0
        # Published at 10, not 100: a purge of everything published before 50 takes it.
        assert await stores.outbox.purge_published(older_than=at(50)) == 1

    async def test_an_entry_need_not_be_claimed_to_be_published(self, stores: Stores) -> None:
        [entry_id] = await stores.add_many(1)

        await stores.outbox.mark_published([entry_id], now=at(5))

        assert await stores.outbox.claim(limit=1, lease_seconds=30, now=at(10)) == []

    # -- failed publishes ------------------------------------------------------------

    async def test_a_released_entry_waits_until_its_retry_time_and_counts_the_attempt(
        self, stores: Stores
    ) -> None:
        [entry_id] = await stores.add_many(1)
        await stores.outbox.claim(limit=1, lease_seconds=30, now=at(100))

        await stores.outbox.release(entry_id, error="queue unavailable", retry_at=at(200))

        # Past the lease but before the retry time: still hidden.
        assert await stores.outbox.claim(limit=1, lease_seconds=30, now=at(199)) == []
        [entry] = await stores.outbox.claim(limit=1, lease_seconds=30, now=at(200))
        assert (entry.id, entry.attempts, entry.last_error) == (entry_id, 1, "queue unavailable")
        assert await stores.outbox.pending_count() == 1

    async def test_a_release_with_a_past_retry_time_frees_the_entry_at_once(
        self, stores: Stores
    ) -> None:
        [entry_id] = await stores.add_many(1)
        await stores.outbox.claim(limit=1, lease_seconds=300, now=at(100))

        await stores.outbox.release(entry_id, error="boom", retry_at=at(50))

        assert ids(await stores.outbox.claim(limit=1, lease_seconds=30, now=at(101))) == [entry_id]

    async def test_every_release_counts_and_the_last_error_is_kept(self, stores: Stores) -> None:
        [entry_id] = await stores.add_many(1)
        for n in range(3):
            await stores.outbox.claim(limit=1, lease_seconds=30, now=at(100 * n))
            await stores.outbox.release(entry_id, error=f"failure {n}", retry_at=at(100 * n + 1))

        [entry] = await stores.outbox.claim(limit=1, lease_seconds=30, now=at(1000))

        assert (entry.attempts, entry.last_error) == (3, "failure 2")

    async def test_an_error_with_characters_text_cannot_hold_is_still_recorded(
        self, stores: Stores
    ) -> None:
        [entry_id] = await stores.add_many(1)

        await stores.outbox.release(entry_id, error="nul\x00 and \ud800 here", retry_at=at(0))

        [entry] = await stores.outbox.claim(limit=1, lease_seconds=30, now=at(10))
        assert entry.attempts == 1
        assert entry.last_error == "nul\\x00 and \\ud800 here"

    async def test_releasing_a_published_or_unknown_entry_changes_nothing(
        self, stores: Stores
    ) -> None:
        [entry_id] = await stores.add_many(1)
        await stores.outbox.mark_published([entry_id], now=at(10))

        await stores.outbox.release(entry_id, error="late failure", retry_at=at(0))
        await stores.outbox.release(new_id(), error="never existed", retry_at=at(0))

        assert await stores.outbox.pending_count() == 0
        assert await stores.outbox.claim(limit=5, lease_seconds=30, now=at(100)) == []

    # -- metrics and housekeeping ----------------------------------------------------

    async def test_pending_count_counts_unpublished_entries_claimed_or_not(
        self, stores: Stores
    ) -> None:
        assert await stores.outbox.pending_count() == 0
        made = await stores.add_many(4)
        await stores.outbox.claim(limit=2, lease_seconds=30, now=at(100))
        assert await stores.outbox.pending_count() == 4

        await stores.outbox.mark_published(made[:1], now=at(101))

        assert await stores.outbox.pending_count() == 3

    async def test_oldest_pending_age_is_the_age_of_the_oldest_unpublished_entry(
        self, stores: Stores
    ) -> None:
        assert await stores.outbox.oldest_pending_age(at(0)) is None
        made = await stores.add_many(3, first=10)

        assert await stores.outbox.oldest_pending_age(at(100)) == 90.0
        await stores.outbox.mark_published(made[:1], now=at(100))
        assert await stores.outbox.oldest_pending_age(at(100.5)) == 89.5
        # A clock behind the writer's never makes an age negative.
        assert await stores.outbox.oldest_pending_age(at(0)) == 0.0
        await stores.outbox.mark_published(made[1:], now=at(100))
        assert await stores.outbox.oldest_pending_age(at(100)) is None

    async def test_purge_deletes_only_entries_published_before_the_cutoff(
        self, stores: Stores
    ) -> None:
        made = await stores.add_many(4)
        await stores.outbox.mark_published(made[:1], now=at(10))
        await stores.outbox.mark_published(made[1:2], now=at(20))
        await stores.outbox.mark_published(made[2:3], now=at(30))

        assert await stores.outbox.purge_published(older_than=at(20)) == 1
        assert await stores.outbox.purge_published(older_than=at(20)) == 0
        # The unpublished entry survives any cutoff.
        assert await stores.outbox.purge_published(older_than=at(10_000)) == 2
        assert await stores.outbox.pending_count() == 1
        assert ids(await stores.outbox.claim(limit=5, lease_seconds=30, now=at(100))) == [made[3]]

    # -- bad arguments ---------------------------------------------------------------

    @pytest.mark.parametrize(
        ("limit", "lease_seconds", "now", "field"),
        [
            (0, 30.0, at(0), "limit"),
            (-1, 30.0, at(0), "limit"),
            (1, 0.0, at(0), "lease_seconds"),
            (1, -5.0, at(0), "lease_seconds"),
            (1, float("nan"), at(0), "lease_seconds"),
            (1, float("inf"), at(0), "lease_seconds"),
            (1, 1e15, at(0), "lease_seconds"),
            (1, 30.0, datetime(2030, 1, 1), "now"),  # naive on purpose
        ],
    )
    async def test_bad_claim_arguments_are_validation_errors_and_claim_nothing(
        self, stores: Stores, limit: int, lease_seconds: float, now: datetime, field: str
    ) -> None:
        await stores.add_many(1)

        with pytest.raises(ValidationFailed) as caught:
            await stores.outbox.claim(limit=limit, lease_seconds=lease_seconds, now=now)

        assert caught.value.field == field
        assert len(await stores.outbox.claim(limit=1, lease_seconds=30, now=at(10))) == 1

    async def test_naive_times_are_refused_everywhere(self, stores: Stores) -> None:
        [entry_id] = await stores.add_many(1)
        naive = datetime(2030, 1, 1)  # naive on purpose

        with pytest.raises(ValidationFailed, match="retry_at"):
            await stores.outbox.release(entry_id, error="x", retry_at=naive)
        with pytest.raises(ValidationFailed, match="now"):
            await stores.outbox.mark_published([entry_id], now=naive)
        with pytest.raises(ValidationFailed, match="now"):
            await stores.outbox.oldest_pending_age(naive)
        with pytest.raises(ValidationFailed, match="older_than"):
            await stores.outbox.purge_published(older_than=naive)

        [entry] = await stores.outbox.claim(limit=1, lease_seconds=30, now=at(10))
        assert entry.attempts == 0

    # -- any sequence of operations --------------------------------------------------

    @settings(
        max_examples=30,
        deadline=None,
        # Each adapter's subclass runs this same method: that is the contract suite's design.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        created=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=6),
        steps=st.lists(
            st.one_of(
                st.tuples(
                    st.just("claim"),
                    st.integers(min_value=1, max_value=4),
                    st.integers(min_value=1, max_value=20),
                ),
                st.tuples(
                    st.just("publish"),
                    st.integers(min_value=0, max_value=5),
                    st.integers(min_value=0, max_value=0),
                ),
                st.tuples(
                    st.just("release"),
                    st.integers(min_value=0, max_value=5),
                    st.integers(min_value=-5, max_value=20),
                ),
                st.tuples(
                    st.just("tick"),
                    st.integers(min_value=0, max_value=25),
                    st.integers(min_value=0, max_value=0),
                ),
            ),
            max_size=25,
        ),
    )
    async def test_any_sequence_of_claims_publishes_and_releases_follows_the_model(
        self,
        fresh: Callable[[], Awaitable[Stores]],
        created: list[int],
        steps: list[tuple[str, int, int]],
    ) -> None:
        stores = await fresh()
        model = {
            await stores.add(at(offset)): OutboxModel(created_at=at(offset)) for offset in created
        }
        now = at(10)
        for op, a, b in steps:
            if op == "claim":
                expected = sorted(
                    (i for i, m in model.items() if m.claimable(now)),
                    key=lambda i: (model[i].created_at, i),
                )[:a]
                claimed = await stores.outbox.claim(limit=a, lease_seconds=b, now=now)
                assert ids(claimed) == expected
                assert [e.attempts for e in claimed] == [model[i].attempts for i in expected]
                for i in expected:
                    model[i].hold = now + timedelta(seconds=b)
            elif op == "publish":
                chosen = sorted(model)[a % len(model)]
                await stores.outbox.mark_published([chosen], now=now)
                model[chosen].published = True
            elif op == "release":
                chosen = sorted(model)[a % len(model)]
                await stores.outbox.release(chosen, error="e", retry_at=now + timedelta(seconds=b))
                if not model[chosen].published:
                    model[chosen].attempts += 1
                    model[chosen].hold = now + timedelta(seconds=b)
            else:
                now += timedelta(seconds=a)
            pending = [m.created_at for m in model.values() if not m.published]
            assert await stores.outbox.pending_count() == len(pending)
            assert await stores.outbox.oldest_pending_age(now) == (
                max(0.0, (now - min(pending)).total_seconds()) if pending else None
            )


class OutboxModel:
    """What the contract says one entry's state is."""

    def __init__(self, created_at: datetime) -> None:
        self.created_at = created_at
        self.published = False
        self.hold: datetime | None = None
        self.attempts = 0

    def claimable(self, now: datetime) -> bool:
        return not self.published and (self.hold is None or self.hold <= now)


class TestMemoryOutbox(OutboxContract):
    @pytest.fixture
    def fresh(self) -> Callable[[], Awaitable[Stores]]:
        async def make() -> Stores:
            events = MemoryEventStore()
            return Stores(events, MemoryOutbox(events))

        return make

    async def test_the_event_stores_pending_messages_leave_out_published_ones(
        self, stores: Stores
    ) -> None:
        made = await stores.add_many(2)
        await stores.outbox.mark_published(made[:1], now=at(10))

        assert isinstance(stores.events, MemoryEventStore)
        assert [m.id for m in stores.events.pending_outbox()] == made[1:]


@pytest.fixture(scope="module")
async def outbox_pool(make_database: Callable[[], str]) -> AsyncIterator[AsyncConnectionPool]:
    """A migrated database of this module's own: claims take every tenant's entries."""
    url = make_database()
    YoyoMigrator(url).apply()
    async for pool in open_pool(url, PoolSettings(min_size=2, max_size=8)):
        yield pool


class TestPostgresOutbox(OutboxContract):
    @pytest.fixture
    def fresh(self, outbox_pool: AsyncConnectionPool) -> Callable[[], Awaitable[Stores]]:
        self.pool = outbox_pool

        async def make() -> Stores:
            async with outbox_pool.connection() as conn:
                await conn.execute("DELETE FROM outbox")
            return Stores(PostgresEventStore(outbox_pool), PostgresOutbox(outbox_pool))

        return make

    async def test_a_claim_skips_entries_another_claim_holds_locked_instead_of_waiting(
        self, stores: Stores
    ) -> None:
        made = await stores.add_many(4)
        async with self.pool.connection() as conn, conn.transaction():
            # Another relay, mid-claim: it has locked the two oldest rows.
            await conn.execute("SELECT id FROM outbox ORDER BY created_at, id LIMIT 2 FOR UPDATE")

            claimed = await asyncio.wait_for(
                stores.outbox.claim(limit=4, lease_seconds=30, now=at(100)), timeout=5
            )

        assert ids(claimed) == made[2:]
        # Its transaction ended without claiming them: they are free.
        assert ids(await stores.outbox.claim(limit=4, lease_seconds=30, now=at(100))) == made[:2]

    async def test_the_claim_columns_hold_what_the_relay_did(self, stores: Stores) -> None:
        [entry_id] = await stores.add_many(1)
        await stores.outbox.claim(limit=1, lease_seconds=30, now=at(100))
        await stores.outbox.release(entry_id, error="nats down", retry_at=at(160))

        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT claimed_until, attempts, last_error, published_at FROM outbox"
                " WHERE id = %s",
                (entry_id,),
            )
            row = await cursor.fetchone()

        assert row == (at(160), 1, "nats down", None)

    async def test_an_unreachable_database_is_dependency_unavailable(self) -> None:
        pool = AsyncConnectionPool(
            "postgresql://nobody@127.0.0.1:1/none", min_size=0, max_size=1, open=False, timeout=0.5
        )
        await pool.open(wait=False)
        try:
            with pytest.raises(DependencyUnavailable, match="outbox"):
                await PostgresOutbox(pool).claim(limit=1, lease_seconds=30, now=at(0))
            with pytest.raises(DependencyUnavailable):
                await PostgresOutbox(pool).pending_count()
        finally:
            await pool.close()
