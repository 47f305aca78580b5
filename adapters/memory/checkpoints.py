"""Checkpoints in memory: the same rules as PostgreSQL, for tests and `codeforge run`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from codeforge.domain.errors import Conflict, NotFound
from codeforge.ports.checkpoints import Checkpoint, blobs_of, check_blobs, check_manifest


class MemoryCheckpointStore:
    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._checkpoints: dict[uuid.UUID, Checkpoint] = {}

    async def put_blobs(self, blobs: Mapping[str, bytes]) -> None:
        check_blobs(blobs)
        for sha, data in blobs.items():
            self._blobs.setdefault(sha, bytes(data))

    async def save(self, checkpoint: Checkpoint) -> None:
        check_manifest(checkpoint, present=set(self._blobs))
        if checkpoint.id in self._checkpoints:
            raise Conflict(f"checkpoint {checkpoint.id} already exists")
        self._checkpoints[checkpoint.id] = checkpoint

    async def get(self, tenant_id: uuid.UUID, checkpoint_id: uuid.UUID) -> Checkpoint:
        found = self._checkpoints.get(checkpoint_id)
        if found is None or found.tenant_id != tenant_id:
            raise NotFound(f"checkpoint {checkpoint_id} not found", field="checkpoint_id")
        return found

    async def latest(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Checkpoint | None:
        found = await self.list_for_run(tenant_id, run_id)
        return found[-1] if found else None

    async def list_for_run(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> list[Checkpoint]:
        found = [
            c for c in self._checkpoints.values() if c.tenant_id == tenant_id and c.run_id == run_id
        ]
        return sorted(found, key=lambda c: (c.after_seq, c.created_at))

    async def prune(self, tenant_id: uuid.UUID, run_id: uuid.UUID, keep: int) -> int:
        ordered = await self.list_for_run(tenant_id, run_id)
        newest = ordered[len(ordered) - keep :] if keep > 0 else []
        kept = {ordered[0].id} | {c.id for c in newest} if ordered else set()
        gone = [c.id for c in ordered if c.id not in kept]
        for checkpoint_id in gone:
            del self._checkpoints[checkpoint_id]
        return len(gone)

    async def collect_garbage(self, limit: int = 10_000) -> int:
        used = set().union(*(blobs_of(c) for c in self._checkpoints.values()))
        unused = [sha for sha in self._blobs if sha not in used][:limit]
        for sha in unused:
            del self._blobs[sha]
        return len(unused)

    async def blob(self, sha256: str) -> bytes:
        try:
            return self._blobs[sha256]
        except KeyError:
            raise NotFound(f"no checkpoint blob {sha256}", field="sha256") from None
