"""Run artifacts: what a run delivered (a patch, a report), readable from any process.

Contract: `put` stores (or replaces) the artifact `name` of a run; `get` returns it or
raises NotFound; `list` returns a run's artifacts without their content. Reads are
tenant-scoped. Names are short slugs chosen by the runtime ("patch").
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Final, Protocol

from msgspec import Struct

from codeforge.domain.errors import ValidationFailed

__all__ = ["MAX_ARTIFACT_BYTES", "Artifact", "ArtifactInfo", "ArtifactStore", "check_artifact"]

MAX_ARTIFACT_BYTES: Final = 64 * 1024 * 1024
"""The largest artifact stored; a bigger patch is a sign of a run gone wrong."""

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


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


def check_artifact(name: str, media_type: str, content: bytes) -> None:
    if not _NAME.fullmatch(name):
        raise ValidationFailed(f"artifact name {name!r} is not a short slug", field="name")
    if not media_type or len(media_type) > 100:
        raise ValidationFailed("an artifact needs a media type", field="media_type")
    if len(content) > MAX_ARTIFACT_BYTES:
        raise ValidationFailed(
            f"an artifact of {len(content)} bytes is over the {MAX_ARTIFACT_BYTES}-byte cap",
            field="content",
        )


class ArtifactStore(Protocol):
    async def put(
        self, tenant_id: uuid.UUID, run_id: uuid.UUID, name: str, media_type: str, content: bytes
    ) -> ArtifactInfo: ...

    async def get(self, tenant_id: uuid.UUID, run_id: uuid.UUID, name: str) -> Artifact: ...

    async def list(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> list[ArtifactInfo]: ...
