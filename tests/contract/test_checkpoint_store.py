"""The CheckpointStore contract, against every adapter (memory and PostgreSQL)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime

import pytest
from psycopg_pool import AsyncConnectionPool

from adapters.memory.checkpoints import MemoryCheckpointStore
from adapters.postgres.checkpoints import PostgresCheckpointStore
from codeforge.domain.errors import Conflict, NotFound, ValidationFailed
from codeforge.domain.ids import new_id
from codeforge.ports.checkpoints import Checkpoint, CheckpointStore, FileEntry

pytestmark = pytest.mark.contract


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest) -> CheckpointStore:
    if request.param == "memory":
        return MemoryCheckpointStore()
    pool: AsyncConnectionPool = request.getfixturevalue("pg_pool")
    return PostgresCheckpointStore(pool)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checkpoint(
    tenant: uuid.UUID, run: uuid.UUID, seq: int, files: dict[str, FileEntry]
) -> Checkpoint:
    return Checkpoint(
        id=new_id(),
        tenant_id=tenant,
        run_id=run,
        after_seq=seq,
        base_commit="a" * 40,
        files=files,
        changed=tuple(files),
        created_at=datetime.now(UTC),
    )


async def test_a_checkpoint_round_trips_with_its_blobs(store: CheckpointStore) -> None:
    tenant, run = uuid.uuid4(), new_id()
    content = b"print('hello')\n\x00binary too"
    await store.put_blobs({sha(content): content})
    cp = checkpoint(
        tenant,
        run,
        5,
        {
            "src/app.py": FileEntry(sha256=sha(content), mode=0o755, size=len(content)),
            "gone.txt": FileEntry(sha256=None),
        },
    )
    await store.save(cp)
    assert await store.get(tenant, cp.id) == cp
    assert await store.blob(sha(content)) == content
    assert cp.total_bytes == len(content)


async def test_blobs_are_stored_once_and_checked(store: CheckpointStore) -> None:
    data = b"same content " + uuid.uuid4().bytes
    await asyncio.gather(*(store.put_blobs({sha(data): data}) for _ in range(5)))
    assert await store.blob(sha(data)) == data
    with pytest.raises(ValidationFailed):
        await store.put_blobs({sha(b"other"): data})


async def test_a_manifest_naming_a_missing_blob_is_refused(store: CheckpointStore) -> None:
    cp = checkpoint(uuid.uuid4(), new_id(), 2, {"x": FileEntry(sha256=sha(b"never stored x"))})
    with pytest.raises(ValidationFailed, match="put the blobs first"):
        await store.save(cp)
    with pytest.raises(ValidationFailed):
        await store.save(checkpoint(uuid.uuid4(), new_id(), 2, {"x": FileEntry(sha256="../x")}))


async def test_latest_and_listing_follow_the_seq_and_the_tenant(store: CheckpointStore) -> None:
    tenant, run = uuid.uuid4(), new_id()
    made = [checkpoint(tenant, run, seq, {}) for seq in (7, 3, 12)]
    for cp in made:
        await store.save(cp)
    assert [c.after_seq for c in await store.list_for_run(tenant, run)] == [3, 7, 12]
    latest = await store.latest(tenant, run)
    assert latest is not None
    assert latest.after_seq == 12
    assert await store.latest(tenant, new_id()) is None
    assert await store.list_for_run(uuid.uuid4(), run) == []
    with pytest.raises(NotFound):
        await store.get(uuid.uuid4(), made[0].id)
    with pytest.raises(Conflict):
        await store.save(made[0])
    with pytest.raises(NotFound):
        await store.blob("0" * 64)


async def test_pruning_keeps_the_first_and_the_newest_and_collects_unused_blobs(
    store: CheckpointStore,
) -> None:
    tenant, run = uuid.uuid4(), new_id()
    contents = [f"version {n} {uuid.uuid4()}".encode() for n in range(6)]
    await store.put_blobs({sha(c): c for c in contents})
    shared = contents[0]
    made = []
    for n, content in enumerate(contents):
        files = {"f.txt": FileEntry(sha256=sha(content), size=len(content))}
        if n:
            files["keep.txt"] = FileEntry(sha256=sha(shared), size=len(shared))
        cp = checkpoint(tenant, run, 10 + n, files)
        await store.save(cp)
        made.append(cp)
    assert await store.prune(tenant, run, 2) == 3
    assert [c.after_seq for c in await store.list_for_run(tenant, run)] == [10, 14, 15]
    assert await store.prune(tenant, run, 2) == 0
    await store.collect_garbage()
    # Blobs of pruned checkpoints are gone; those still used (the first's too) remain.
    for n in (1, 2, 3):
        with pytest.raises(NotFound):
            await store.blob(sha(contents[n]))
    for n in (0, 4, 5):
        assert await store.blob(sha(contents[n])) == contents[n]
    assert await store.prune(uuid.uuid4(), run, 0) == 0
