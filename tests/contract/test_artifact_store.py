"""The ArtifactStore contract, against every adapter (memory and PostgreSQL)."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from psycopg_pool import AsyncConnectionPool

from adapters.memory.artifacts import MemoryArtifactStore
from adapters.postgres.artifacts import PostgresArtifactStore
from codeforge.domain.errors import NotFound, ValidationFailed
from codeforge.domain.ids import new_id
from codeforge.ports.artifacts import ArtifactStore

pytestmark = pytest.mark.contract


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest) -> ArtifactStore:
    if request.param == "memory":
        return MemoryArtifactStore()
    pool: AsyncConnectionPool = request.getfixturevalue("pg_pool")
    return PostgresArtifactStore(pool)


async def test_an_artifact_is_stored_replaced_and_listed(store: ArtifactStore) -> None:
    tenant, run = uuid.uuid4(), new_id()
    first = await store.put(tenant, run, "patch", "text/x-diff", b"diff one")
    assert first.sha256 == hashlib.sha256(b"diff one").hexdigest()
    second = await store.put(tenant, run, "patch", "text/x-diff", b"diff two\xff")
    got = await store.get(tenant, run, "patch")
    assert got.content == b"diff two\xff"
    assert got.info.size == second.size == 9
    await store.put(tenant, run, "report.json", "application/json", b"{}")
    assert [a.name for a in await store.list(tenant, run)] == ["patch", "report.json"]


async def test_artifacts_are_tenant_scoped(store: ArtifactStore) -> None:
    tenant, run = uuid.uuid4(), new_id()
    await store.put(tenant, run, "patch", "text/x-diff", b"mine")
    with pytest.raises(NotFound):
        await store.get(uuid.uuid4(), run, "patch")
    assert await store.list(uuid.uuid4(), run) == []
    with pytest.raises(NotFound):
        await store.put(uuid.uuid4(), run, "patch", "text/x-diff", b"overwrite attempt")
    assert (await store.get(tenant, run, "patch")).content == b"mine"


async def test_bad_names_are_refused(store: ArtifactStore) -> None:
    for name in ["", "../patch", "Patch", "a/b", "x" * 80]:
        with pytest.raises(ValidationFailed):
            await store.put(uuid.uuid4(), new_id(), name, "text/plain", b"")
