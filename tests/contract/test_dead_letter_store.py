"""The DeadLetterStore contract, run against every adapter.

`DeadLetterStoreContract` holds the tests; each adapter subclasses it once with a `fresh`
fixture that gives an empty store. Dead letters belong to the whole installation (listing
takes every one), so PostgreSQL tests do not share the session's database: this module
migrates a database of its own and empties the table before every test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from adapters.memory.dead_letters import MemoryDeadLetterStore
from adapters.postgres.dead_letters import PostgresDeadLetterStore
from adapters.postgres.migrations import YoyoMigrator
from adapters.postgres.pool import open_pool
from codeforge.domain.errors import NotFound, ValidationFailed
from codeforge.ports.dead_letters import DeadLetterStore, StoredDeadLetter
from codeforge.ports.errors import DependencyUnavailable
from codeforge.ports.queue import DeadLetter
from codeforge.settings import PoolSettings

pytestmark = pytest.mark.contract

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def letter(
    failed: float = 0,
    *,
    subject: str = "runs.start",
    letter_id: uuid.UUID | None = None,
    **fields: object,
) -> DeadLetter:
    values: dict[str, object] = {
        "id": letter_id or uuid.uuid4(),
        "subject": subject,
        "payload": b'{"run_id": "x"}',
        "headers": {"X-Request-ID": "req-1"},
        "reason": "handler_failed",
        "error": "RuntimeError: boom",
        "attempts": 4,
        "consumer": "wq-runs_start-0123456789",
        "failed_at": at(failed),
    }
    values.update(fields)
    return DeadLetter(**values)  # type: ignore[arg-type]


def ids(letters: list[StoredDeadLetter]) -> list[uuid.UUID]:
    return [x.id for x in letters]


def newest_first(letters: list[DeadLetter]) -> list[uuid.UUID]:
    return [x.id for x in sorted(letters, key=lambda x: (x.failed_at, x.id), reverse=True)]


async def every_page(
    store: DeadLetterStore, limit: int, subject: str | None = None
) -> list[list[uuid.UUID]]:
    pages: list[list[uuid.UUID]] = []
    after: uuid.UUID | None = None
    while True:
        page = await store.list(limit=limit, after=after, subject=subject)
        pages.append(ids(page.items))
        if page.next_cursor is None:
            return pages
        after = uuid.UUID(page.next_cursor)


class DeadLetterStoreContract:
    @pytest.fixture
    def fresh(self) -> Callable[[], Awaitable[DeadLetterStore]]:
        raise NotImplementedError

    @pytest.fixture
    async def store(self, fresh: Callable[[], Awaitable[DeadLetterStore]]) -> DeadLetterStore:
        return await fresh()

    # -- recording -------------------------------------------------------------------

    async def test_a_recorded_letter_reads_back_byte_for_byte_with_its_record_time(
        self, store: DeadLetterStore
    ) -> None:
        # Not UTF-8, not JSON: an invalid payload is kept exactly as it came.
        sent = letter(5, payload=b"\xff\x00not json", reason="invalid_payload", attempts=1)

        assert await store.record(sent, at=at(7)) is True
        stored = await store.get(sent.id)

        assert stored.letter == sent
        assert (stored.recorded_at, stored.replayed_at, stored.replay_count) == (at(7), None, 0)

    async def test_recording_a_letter_twice_keeps_the_first_and_says_so(
        self, store: DeadLetterStore
    ) -> None:
        first = letter(1)
        await store.record(first, at=at(2))

        again = await store.record(msgspec.structs.replace(first, error="other"), at=at(9))

        assert again is False
        stored = await store.get(first.id)
        assert (stored.error, stored.recorded_at) == (first.error, at(2))
        assert ids((await store.list()).items) == [first.id]

    async def test_concurrent_records_of_one_letter_store_it_once(
        self, store: DeadLetterStore
    ) -> None:
        one = letter(1)

        results = await asyncio.gather(*(store.record(one, at=at(2)) for _ in range(8)))

        assert sorted(results) == [False] * 7 + [True]
        assert ids((await store.list()).items) == [one.id]

    async def test_text_the_database_refuses_is_stored_escaped(
        self, store: DeadLetterStore
    ) -> None:
        sent = letter(error="bad\x00byte \udcff", headers={"X-Note": "a\x00b"})
        await store.record(sent, at=at(1))

        stored = await store.get(sent.id)

        assert stored.error == "bad\\x00byte \\udcff"
        assert stored.headers == {"X-Note": "a\\x00b"}

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"reason": "lost"}, "reason"),
            ({"attempts": -1}, "attempts"),
            ({"attempts": 2**31}, "attempts"),
            ({"failed_at": datetime(2030, 1, 1)}, "failed_at"),  # naive on purpose
        ],
    )
    async def test_a_letter_that_breaks_a_rule_is_refused_and_not_stored(
        self, store: DeadLetterStore, fields: dict[str, Any], field: str
    ) -> None:
        bad = letter(**fields)

        with pytest.raises(ValidationFailed) as caught:
            await store.record(bad, at=at(1))

        assert caught.value.field == field
        with pytest.raises(NotFound):
            await store.get(bad.id)

    async def test_a_naive_record_time_is_refused(self, store: DeadLetterStore) -> None:
        with pytest.raises(ValidationFailed) as caught:
            await store.record(letter(), at=datetime(2030, 1, 1))  # naive on purpose
        assert caught.value.field == "at"

    async def test_an_unknown_letter_is_not_found(self, store: DeadLetterStore) -> None:
        with pytest.raises(NotFound):
            await store.get(uuid.uuid4())

    # -- listing ---------------------------------------------------------------------

    async def test_letters_are_listed_newest_failure_first_whatever_order_they_came_in(
        self, store: DeadLetterStore
    ) -> None:
        letters = [letter(3), letter(1), letter(2)]
        for n, x in enumerate(letters):
            await store.record(x, at=at(10 + n))

        page = await store.list()

        assert ids(page.items) == newest_first(letters)
        assert page.next_cursor is None

    async def test_pages_follow_each_other_without_gaps_or_repeats_even_on_ties(
        self, store: DeadLetterStore
    ) -> None:
        # Seven letters failing in the same instant: only the id breaks the tie.
        letters = [letter(1) for _ in range(7)] + [letter(0), letter(2)]
        for x in letters:
            await store.record(x, at=at(5))

        pages = await every_page(store, limit=3)

        assert pages == [newest_first(letters)[i : i + 3] for i in (0, 3, 6)]

    async def test_a_subject_filter_keeps_that_subject_or_pattern_only(
        self, store: DeadLetterStore
    ) -> None:
        start = letter(1)
        control_a = letter(2, subject="runs.control.a-1")
        control_b = letter(3, subject="runs.control.b_2")
        deeper = letter(4, subject="runs.control.a-1.x")
        for x in (start, control_a, control_b, deeper):
            await store.record(x, at=at(5))

        assert ids((await store.list(subject="runs.start")).items) == [start.id]
        assert ids((await store.list(subject="runs.control.a-1")).items) == [control_a.id]
        assert ids((await store.list(subject="runs.control.*")).items) == [
            control_b.id,
            control_a.id,
        ]
        assert ids((await store.list(subject="*.*")).items) == [start.id]
        assert (await store.list(subject="runs.control")).items == []

    async def test_a_cursor_that_names_no_letter_is_refused(self, store: DeadLetterStore) -> None:
        await store.record(letter(1), at=at(2))

        with pytest.raises(ValidationFailed) as caught:
            await store.list(after=uuid.uuid4())

        assert caught.value.field == "cursor"

    @pytest.mark.parametrize("limit", [0, -1, 201])
    async def test_a_limit_out_of_range_is_refused(
        self, store: DeadLetterStore, limit: int
    ) -> None:
        with pytest.raises(ValidationFailed) as caught:
            await store.list(limit=limit)
        assert caught.value.field == "limit"

    @pytest.mark.parametrize("subject", ["", "runs..start", "runs.st art", "runs.>", "a.%"])
    async def test_a_malformed_subject_filter_is_refused(
        self, store: DeadLetterStore, subject: str
    ) -> None:
        with pytest.raises(ValidationFailed) as caught:
            await store.list(subject=subject)
        assert caught.value.field == "subject"

    # -- replays ---------------------------------------------------------------------

    async def test_marking_a_replay_records_when_and_counts_them(
        self, store: DeadLetterStore
    ) -> None:
        sent = letter(1)
        await store.record(sent, at=at(2))

        first = await store.mark_replayed(sent.id, at=at(10))
        second = await store.mark_replayed(sent.id, at=at(20))

        assert (first.replayed_at, first.replay_count) == (at(10), 1)
        assert (second.replayed_at, second.replay_count) == (at(20), 2)
        assert await store.get(sent.id) == second
        assert second.letter == sent

    async def test_concurrent_replay_marks_are_all_counted(self, store: DeadLetterStore) -> None:
        sent = letter(1)
        await store.record(sent, at=at(2))

        await asyncio.gather(*(store.mark_replayed(sent.id, at=at(3)) for _ in range(10)))

        assert (await store.get(sent.id)).replay_count == 10

    async def test_marking_an_unknown_letter_is_not_found(self, store: DeadLetterStore) -> None:
        with pytest.raises(NotFound):
            await store.mark_replayed(uuid.uuid4(), at=at(1))

    async def test_a_naive_replay_time_is_refused_and_changes_nothing(
        self, store: DeadLetterStore
    ) -> None:
        sent = letter(1)
        await store.record(sent, at=at(2))

        with pytest.raises(ValidationFailed) as caught:
            await store.mark_replayed(sent.id, at=datetime(2030, 1, 1))  # naive on purpose

        assert caught.value.field == "at"
        assert (await store.get(sent.id)).replay_count == 0

    # -- any set of letters ----------------------------------------------------------

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
        made=st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=3),
                st.sampled_from(["runs.start", "runs.control.a", "runs.control.b"]),
            ),
            max_size=12,
        ),
        limit=st.integers(min_value=1, max_value=5),
        subject=st.sampled_from([None, "runs.start", "runs.control.*", "runs.control.b"]),
    )
    async def test_paging_through_any_letters_yields_each_match_once_newest_first(
        self,
        fresh: Callable[[], Awaitable[DeadLetterStore]],
        made: list[tuple[int, str]],
        limit: int,
        subject: str | None,
    ) -> None:
        store = await fresh()
        letters = [letter(failed, subject=s) for failed, s in made]
        for x in letters:
            await store.record(x, at=at(10))
        wanted = [
            x
            for x in letters
            if subject is None
            or x.subject == subject
            or (subject.endswith("*") and x.subject.startswith(subject[:-1]))
        ]

        pages = await every_page(store, limit, subject)

        assert [i for page in pages for i in page] == newest_first(wanted)
        assert all(len(page) == limit for page in pages[:-1])
        assert len(pages[-1]) <= limit
        # A last page is never announced empty: next_cursor is set only when more remain.
        assert pages[-1] or len(pages) == 1


class TestMemoryDeadLetterStore(DeadLetterStoreContract):
    @pytest.fixture
    def fresh(self) -> Callable[[], Awaitable[DeadLetterStore]]:
        async def make() -> DeadLetterStore:
            return MemoryDeadLetterStore()

        return make


@pytest.fixture(scope="module")
async def dead_letter_pool(
    make_database: Callable[[], str],
) -> AsyncIterator[AsyncConnectionPool]:
    """A migrated database of this module's own: listings take every dead letter."""
    url = make_database()
    YoyoMigrator(url).apply()
    async for pool in open_pool(url, PoolSettings(min_size=2, max_size=8)):
        yield pool


class TestPostgresDeadLetterStore(DeadLetterStoreContract):
    @pytest.fixture
    def fresh(
        self, dead_letter_pool: AsyncConnectionPool
    ) -> Callable[[], Awaitable[DeadLetterStore]]:
        self.pool = dead_letter_pool

        async def make() -> DeadLetterStore:
            async with dead_letter_pool.connection() as conn:
                await conn.execute("DELETE FROM dead_letters")
            return PostgresDeadLetterStore(dead_letter_pool)

        return make

    async def test_the_row_holds_the_payload_as_bytes_and_the_headers_as_json(
        self, store: DeadLetterStore
    ) -> None:
        sent = letter(1, payload=b"\x00\x01raw", headers={"X-Request-ID": "r-9"})
        await store.record(sent, at=at(2))

        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT payload, headers->>'X-Request-ID', replay_count FROM dead_letters"
                " WHERE id = %s",
                (sent.id,),
            )
            row = await cursor.fetchone()

        assert row == (b"\x00\x01raw", "r-9", 0)

    async def test_an_unreachable_database_is_dependency_unavailable(self) -> None:
        pool = AsyncConnectionPool(
            "postgresql://nobody@127.0.0.1:1/none", min_size=0, max_size=1, open=False, timeout=0.5
        )
        await pool.open(wait=False)
        try:
            with pytest.raises(DependencyUnavailable, match="dead-letter store"):
                await PostgresDeadLetterStore(pool).record(letter(), at=at(0))
            with pytest.raises(DependencyUnavailable):
                await PostgresDeadLetterStore(pool).list()
        finally:
            await pool.close()
