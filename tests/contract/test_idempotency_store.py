"""The IdempotencyStore contract, run against every adapter.

`IdempotencyStoreContract` holds the tests; each adapter subclasses it once with a
fixture that builds the store. Tests share one PostgreSQL table, so every key lives in
a scope made from the test's own `tenant_id`.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from adapters.memory.idempotency import MemoryIdempotencyStore
from adapters.postgres.idempotency import PostgresIdempotencyStore
from codeforge.domain.errors import Conflict, NotFound, ValidationFailed
from codeforge.ports.idempotency import (
    Claimed,
    IdempotencyRecord,
    IdempotencyStore,
    StoredResponse,
)

pytestmark = pytest.mark.contract

NOW = datetime(2030, 5, 17, 12, 0, 0, 123456, tzinfo=UTC)
TTL = timedelta(hours=24)
RESPONSE = StoredResponse(
    201, {"content-type": "application/json", "location": "/api/v1/runs/1"}, b'{"id": 1}'
)
# Keys as clients send them: printable text (PostgreSQL text cannot hold NUL).
# Visible text of any script; NUL and lone surrogates are refused (see their own test).
KEYS = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), min_size=1, max_size=40
)


class IdempotencyStoreContract:
    """The tests every IdempotencyStore adapter must pass. Not collected itself."""

    @pytest.fixture
    def store(self) -> IdempotencyStore:
        raise NotImplementedError

    @pytest.fixture
    def scope(self, tenant_id: uuid.UUID) -> str:
        return f"{tenant_id}:{uuid.uuid4()}"

    async def test_the_first_claim_of_a_key_wins_and_the_record_is_in_progress(
        self, store: IdempotencyStore, scope: str
    ) -> None:
        assert await store.claim(scope, "k1", "POST /runs abc", NOW, TTL) == Claimed()

        assert await store.get(scope, "k1", NOW) == IdempotencyRecord(
            state="in_progress", fingerprint="POST /runs abc", expires_at=NOW + TTL
        )

    async def test_a_second_claim_while_in_progress_returns_the_record(
        self, store: IdempotencyStore, scope: str
    ) -> None:
        await store.claim(scope, "k1", "fp", NOW, TTL)

        again = await store.claim(scope, "k1", "fp", NOW + timedelta(seconds=5), TTL)

        assert again == IdempotencyRecord(
            state="in_progress", fingerprint="fp", response=None, expires_at=NOW + TTL
        )

    async def test_a_completed_key_replays_the_stored_response(
        self, store: IdempotencyStore, scope: str
    ) -> None:
        await store.claim(scope, "k1", "fp", NOW, TTL)
        await store.complete(scope, "k1", RESPONSE)

        replay = await store.claim(scope, "k1", "fp", NOW + timedelta(hours=1), TTL)

        assert replay == IdempotencyRecord(
            state="completed", fingerprint="fp", response=RESPONSE, expires_at=NOW + TTL
        )
        assert await store.get(scope, "k1", NOW) == replay

    async def test_an_empty_body_and_no_headers_are_stored_as_such(
        self, store: IdempotencyStore, scope: str
    ) -> None:
        await store.claim(scope, "k1", "fp", NOW, TTL)
        await store.complete(scope, "k1", StoredResponse(204, {}, b""))

        record = await store.get(scope, "k1", NOW)

        assert record is not None
        assert record.response == StoredResponse(204, {}, b"")

    async def test_a_claim_with_another_fingerprint_gets_the_record_as_is(
        self, store: IdempotencyStore, scope: str
    ) -> None:
        await store.claim(scope, "k1", "POST /runs body-a", NOW, TTL)
        await store.complete(scope, "k1", RESPONSE)

        other = await store.claim(scope, "k1", "POST /runs body-b", NOW, TTL)

        assert other == IdempotencyRecord(
            state="completed",
            fingerprint="POST /runs body-a",
            response=RESPONSE,
            expires_at=NOW + TTL,
        )

    async def test_a_released_key_can_be_claimed_again(
        self, store: IdempotencyStore, scope: str
    ) -> None:
        await store.claim(scope, "k1", "fp-1", NOW, TTL)
        await store.release(scope, "k1")

        assert await store.get(scope, "k1", NOW) is None
        assert await store.claim(scope, "k1", "fp-2", NOW, TTL) == Claimed()
        record = await store.get(scope, "k1", NOW)
        assert record is not None
        assert record.fingerprint == "fp-2"

    async def test_releasing_a_completed_or_unknown_key_changes_nothing(
        self, store: IdempotencyStore, scope: str
    ) -> None:
        await store.claim(scope, "done", "fp", NOW, TTL)
        await store.complete(scope, "done", RESPONSE)

        await store.release(scope, "done")
        await store.release(scope, "never-claimed")

        record = await store.get(scope, "done", NOW)
        assert record is not None
        assert record.response == RESPONSE
        assert await store.get(scope, "never-claimed", NOW) is None

    async def test_completing_a_key_without_a_claim_is_not_found(
        self, store: IdempotencyStore, scope: str
    ) -> None:
        with pytest.raises(NotFound) as caught:
            await store.complete(scope, "never-claimed", RESPONSE)
        assert caught.value.field == "key"

        await store.claim(scope, "released", "fp", NOW, TTL)
        await store.release(scope, "released")
        with pytest.raises(NotFound):
            await store.complete(scope, "released", RESPONSE)
        assert await store.get(scope, "released", NOW) is None

    async def test_completing_a_key_twice_is_a_conflict_and_keeps_the_first_response(
        self, store: IdempotencyStore, scope: str
    ) -> None:
        await store.claim(scope, "k1", "fp", NOW, TTL)
        await store.complete(scope, "k1", RESPONSE)

        with pytest.raises(Conflict):
            await store.complete(scope, "k1", StoredResponse(500, {}, b"late"))

        record = await store.get(scope, "k1", NOW)
        assert record is not None
        assert record.response == RESPONSE

    async def test_a_record_expires_after_its_ttl_and_the_key_can_be_claimed_again(
        self, store: IdempotencyStore, scope: str
    ) -> None:
        await store.claim(scope, "k1", "fp-old", NOW, timedelta(minutes=10))
        await store.complete(scope, "k1", RESPONSE)
        just_before = NOW + timedelta(minutes=10) - timedelta(microseconds=1)
        expiry = NOW + timedelta(minutes=10)

        assert isinstance(
            await store.claim(scope, "k1", "fp-new", just_before, TTL), IdempotencyRecord
        )
        assert await store.get(scope, "k1", expiry) is None
        assert await store.claim(scope, "k1", "fp-new", expiry, TTL) == Claimed()

        assert await store.get(scope, "k1", expiry) == IdempotencyRecord(
            state="in_progress", fingerprint="fp-new", expires_at=expiry + TTL
        )

    async def test_purge_expired_deletes_exactly_the_expired_records(
        self, store: IdempotencyStore, scope: str
    ) -> None:
        # Long ago, so that no other test's record is old enough to be purged with these.
        then = datetime(1901, 1, 1, tzinfo=UTC) + timedelta(seconds=uuid.uuid4().int % 10**7)
        await store.claim(scope, "short-done", "fp", then, timedelta(minutes=1))
        await store.complete(scope, "short-done", RESPONSE)
        await store.claim(scope, "short-pending", "fp", then, timedelta(minutes=2))
        await store.claim(scope, "long", "fp", then, timedelta(hours=1))

        purged = await store.purge_expired(then + timedelta(minutes=2))

        assert purged == 2
        assert await store.get(scope, "long", then) is not None
        # Gone, not merely hidden: even a reader from before the expiry finds nothing.
        assert await store.get(scope, "short-done", then) is None
        assert await store.get(scope, "short-pending", then) is None
        assert await store.purge_expired(then + timedelta(minutes=2)) == 0

    async def test_of_50_concurrent_claims_of_one_key_exactly_one_is_claimed(
        self, store: IdempotencyStore, scope: str
    ) -> None:
        results = await asyncio.gather(
            *(store.claim(scope, "hot", f"fp-{i}", NOW, TTL) for i in range(50))
        )

        winners = [i for i, result in enumerate(results) if isinstance(result, Claimed)]
        assert len(winners) == 1
        losers = [result for result in results if not isinstance(result, Claimed)]
        assert {loser.fingerprint for loser in losers} == {f"fp-{winners[0]}"}

    async def test_of_50_concurrent_claims_of_an_expired_key_exactly_one_is_claimed(
        self, store: IdempotencyStore, scope: str
    ) -> None:
        await store.claim(scope, "hot", "fp-old", NOW, timedelta(seconds=1))
        later = NOW + timedelta(seconds=1)

        results = await asyncio.gather(
            *(store.claim(scope, "hot", f"fp-{i}", later, TTL) for i in range(50))
        )

        assert sum(isinstance(result, Claimed) for result in results) == 1
        record = await store.get(scope, "hot", later)
        assert record is not None
        assert record.fingerprint != "fp-old"

    async def test_the_same_key_in_two_scopes_is_two_records(
        self, store: IdempotencyStore, tenant_id: uuid.UUID
    ) -> None:
        alice, bob = f"{tenant_id}:alice", f"{tenant_id}:bob"
        await store.claim(alice, "k1", "fp-alice", NOW, TTL)
        await store.complete(alice, "k1", RESPONSE)

        assert await store.claim(bob, "k1", "fp-bob", NOW, TTL) == Claimed()
        await store.release(bob, "k1")

        record = await store.get(alice, "k1", NOW)
        assert record is not None
        assert (record.fingerprint, record.response) == ("fp-alice", RESPONSE)
        assert await store.get(bob, "k1", NOW) is None

    @settings(
        max_examples=25,
        deadline=None,
        # Each adapter's subclass runs this one method (a different executor): fine, as
        # every example draws fresh ids, and the store fixture is the same across examples.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        keys=st.lists(KEYS, min_size=1, max_size=6),
        scope_names=st.lists(KEYS, min_size=2, max_size=3, unique=True),
    )
    async def test_any_keys_in_any_scopes_are_claimed_once_each_and_never_mixed(
        self,
        store: IdempotencyStore,
        tenant_id: uuid.UUID,
        keys: list[str],
        scope_names: list[str],
    ) -> None:
        run = uuid.uuid4()
        scopes = [f"{tenant_id}:{run}:{name}" for name in scope_names]
        firsts: dict[tuple[str, str], str] = {}
        for scope in scopes:
            for i, key in enumerate(keys):
                fingerprint = f"{scope}|{key}|{i}"
                result = await store.claim(scope, key, fingerprint, NOW, TTL)
                if (scope, key) in firsts:
                    assert isinstance(result, IdempotencyRecord)
                    assert result.fingerprint == firsts[scope, key]
                else:
                    assert result == Claimed()
                    firsts[scope, key] = fingerprint

        for (scope, key), fingerprint in firsts.items():
            record = await store.get(scope, key, NOW)
            assert record is not None
            assert record.fingerprint == fingerprint

    async def test_nul_characters_are_refused(self, store: IdempotencyStore, scope: str) -> None:
        with pytest.raises(ValidationFailed) as caught:
            await store.claim(scope, "bad\x00key", "fp", NOW, TTL)
        assert caught.value.field == "key"

    async def test_lone_surrogates_are_refused_on_every_call(
        self, store: IdempotencyStore, scope: str
    ) -> None:
        with pytest.raises(ValidationFailed) as caught:
            await store.claim(scope, "bad\ud800", "fp", NOW, TTL)
        assert caught.value.field == "key"
        with pytest.raises(ValidationFailed):
            await store.get(scope, "bad\ud800", NOW)
        with pytest.raises(ValidationFailed):
            await store.release("\udfff", "k")


class TestMemoryIdempotencyStore(IdempotencyStoreContract):
    @pytest.fixture
    def store(self) -> IdempotencyStore:
        return MemoryIdempotencyStore()


class TestPostgresIdempotencyStore(IdempotencyStoreContract):
    @pytest.fixture
    def store(self, pg_pool: AsyncConnectionPool) -> IdempotencyStore:
        return PostgresIdempotencyStore(pg_pool)
