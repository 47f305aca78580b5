"""Run artifacts in memory: the same rules as PostgreSQL."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from codeforge.domain.errors import NotFound
from codeforge.ports.artifacts import Artifact, ArtifactInfo, check_artifact


class MemoryArtifactStore:
    def __init__(self) -> None:
        self._items: dict[tuple[uuid.UUID, str], tuple[uuid.UUID, Artifact]] = {}

    async def put(
        self, tenant_id: uuid.UUID, run_id: uuid.UUID, name: str, media_type: str, content: bytes
    ) -> ArtifactInfo:
        check_artifact(name, media_type, content)
        owner = next((t for (r, _), (t, _a) in self._items.items() if r == run_id), tenant_id)
        if owner != tenant_id:
            raise NotFound(f"run {run_id} not found", field="run_id")
        info = ArtifactInfo(
            run_id=run_id,
            name=name,
            media_type=media_type,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            created_at=datetime.now(UTC),
        )
        self._items[(run_id, name)] = (tenant_id, Artifact(info=info, content=bytes(content)))
        return info

    async def get(self, tenant_id: uuid.UUID, run_id: uuid.UUID, name: str) -> Artifact:
        found = self._items.get((run_id, name))
        if found is None or found[0] != tenant_id:
            raise NotFound(f"run {run_id} has no artifact {name!r}", field="name")
        return found[1]

    async def list(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> list[ArtifactInfo]:
        return sorted(
            (a.info for (r, _), (t, a) in self._items.items() if r == run_id and t == tenant_id),
            key=lambda info: info.name,
        )
