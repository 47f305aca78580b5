"""The SessionStore contract, run against every adapter.

`SessionStoreContract` holds the tests; each adapter subclasses it once with a fixture
that builds the store. Session ids are fresh per test, and every session carries the
test's own `tenant_id`.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from adapters.memory.sessions import MemorySessionStore
from adapters.postgres.sessions import PostgresSessionStore
from codeforge.domain.errors import Conflict, ValidationFailed
from codeforge.domain.ids import new_id
from codeforge.ports.sessions import Session, SessionStore

pytestmark = pytest.mark.contract

NOW = datetime(2030, 5, 17, 12, 0, 0, 654321, tzinfo=UTC)


def a_session(tenant_id: uuid.UUID, **changes: object) -> Session:
    fields: dict[str, object] = {
        "id": new_id(),
        "tenant_id": tenant_id,
        "key_id": new_id(),
        "csrf_hash": hashlib.sha256(b"csrf-token").hexdigest(),
        "created_at": NOW,
        "expires_at": NOW + timedelta(hours=12),
    }
    fields.update(changes)
    return Session(**fields)  # type: ignore[arg-type]


class SessionStoreContract:
    """The tests every SessionStore adapter must pass. Not collected itself."""

    @pytest.fixture
    def store(self) -> SessionStore:
        raise NotImplementedError

    async def test_an_added_session_reads_back_equal_and_active(
        self, store: SessionStore, tenant_id: uuid.UUID
    ) -> None:
        session = a_session(tenant_id)

        await store.add(session)

        found = await store.get(session.id)
        assert found == session
        assert found.active(NOW + timedelta(hours=1))

    async def test_an_unknown_session_is_none(self, store: SessionStore) -> None:
        assert await store.get(uuid.uuid4()) is None

    async def test_adding_a_session_id_twice_is_a_conflict_and_keeps_the_first(
        self, store: SessionStore, tenant_id: uuid.UUID
    ) -> None:
        first = a_session(tenant_id)
        await store.add(first)

        with pytest.raises(Conflict) as caught:
            await store.add(a_session(tenant_id, id=first.id, csrf_hash="other"))

        assert caught.value.field == "id"
        assert await store.get(first.id) == first

    async def test_a_revoked_session_is_no_longer_active(
        self, store: SessionStore, tenant_id: uuid.UUID
    ) -> None:
        session = a_session(tenant_id)
        await store.add(session)
        signed_out = NOW + timedelta(minutes=30)

        await store.revoke(session.id, signed_out)

        found = await store.get(session.id)
        assert found is not None
        assert found.revoked_at == signed_out
        assert not found.active(NOW + timedelta(minutes=31))

    async def test_revoking_twice_keeps_the_first_revocation_time(
        self, store: SessionStore, tenant_id: uuid.UUID
    ) -> None:
        session = a_session(tenant_id)
        await store.add(session)

        await store.revoke(session.id, NOW + timedelta(minutes=1))
        await store.revoke(session.id, NOW + timedelta(minutes=2))

        found = await store.get(session.id)
        assert found is not None
        assert found.revoked_at == NOW + timedelta(minutes=1)

    async def test_revoking_an_unknown_session_does_nothing(self, store: SessionStore) -> None:
        unknown = uuid.uuid4()

        await store.revoke(unknown, NOW)

        assert await store.get(unknown) is None

    async def test_revoking_one_session_leaves_the_others_of_the_same_key_active(
        self, store: SessionStore, tenant_id: uuid.UUID
    ) -> None:
        key_id = new_id()
        laptop, phone = a_session(tenant_id, key_id=key_id), a_session(tenant_id, key_id=key_id)
        await store.add(laptop)
        await store.add(phone)

        await store.revoke(laptop.id, NOW)

        found = await store.get(phone.id)
        assert found == phone
        assert found.active(NOW)

    async def test_a_session_is_active_until_it_expires(
        self, store: SessionStore, tenant_id: uuid.UUID
    ) -> None:
        session = a_session(tenant_id, expires_at=NOW + timedelta(hours=1))
        await store.add(session)

        found = await store.get(session.id)

        assert found is not None
        assert found.active(NOW + timedelta(hours=1) - timedelta(microseconds=1))
        assert not found.active(NOW + timedelta(hours=1))

    @settings(
        max_examples=30,
        deadline=None,
        # Each adapter's subclass runs this one method (a different executor): fine, as
        # every example draws fresh ids, and the store fixture is the same across examples.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        created_at=st.datetimes(
            min_value=datetime(1970, 1, 1), max_value=datetime(9000, 1, 1), timezones=st.just(UTC)
        ),
        lifetime=st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=400)),
        # Any text PostgreSQL can hold; NUL and lone surrogates are refused (tested apart).
        csrf_hash=st.text(
            st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=80
        ),
        revoked=st.booleans(),
    )
    async def test_any_session_reads_back_exactly_as_added(
        self,
        store: SessionStore,
        tenant_id: uuid.UUID,
        created_at: datetime,
        lifetime: timedelta,
        csrf_hash: str,
        revoked: bool,
    ) -> None:
        session = a_session(
            tenant_id,
            csrf_hash=csrf_hash,
            created_at=created_at,
            expires_at=created_at + lifetime,
            revoked_at=created_at if revoked else None,
        )

        await store.add(session)

        assert await store.get(session.id) == session

    @pytest.mark.parametrize("bad", ["nul\x00", "lone \ud800 surrogate"])
    async def test_text_the_database_cannot_hold_is_refused_and_nothing_is_stored(
        self, store: SessionStore, tenant_id: uuid.UUID, bad: str
    ) -> None:
        session = a_session(tenant_id, csrf_hash=bad)
        with pytest.raises(ValidationFailed) as caught:
            await store.add(session)
        assert caught.value.field == "csrf_hash"
        assert await store.get(session.id) is None


class TestMemorySessionStore(SessionStoreContract):
    @pytest.fixture
    def store(self) -> SessionStore:
        return MemorySessionStore()


class TestPostgresSessionStore(SessionStoreContract):
    @pytest.fixture
    def store(self, pg_pool: AsyncConnectionPool) -> SessionStore:
        return PostgresSessionStore(pg_pool)
