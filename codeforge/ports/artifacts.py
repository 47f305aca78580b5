"""Run artifacts: what a run delivered (a patch, a report), readable from any process.

Contract: `put` stores (or replaces) the artifact `name` of a run; `get` returns it or
raises NotFound; `list` returns a run's artifacts without their content. Reads are
tenant-scoped. Names are short slugs chosen by the runtime ("patch").
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from msgspec import Struct

__all__ = ["Artifact", "ArtifactInfo", "ArtifactStore"]


class ArtifactInfo(Struct, frozen=True, kw_only=True):
    run_id: uuid.UUID
    name: str
    media_type: str
    size: int
    sha256: str
    created_at: datetime


class Artifact(Struct, frozen=True, kw_only=True):
    info: ArtifactInfo
    content: bytes


class ArtifactStore(Protocol):
    async def put(
        self, tenant_id: uuid.UUID, run_id: uuid.UUID, name: str, media_type: str, content: bytes
    ) -> ArtifactInfo: ...

    async def get(self, tenant_id: uuid.UUID, run_id: uuid.UUID, name: str) -> Artifact: ...

    async def list(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> list[ArtifactInfo]: ...
