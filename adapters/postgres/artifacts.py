"""Run artifacts in PostgreSQL (table `run_artifacts`, migration 0007)."""

from __future__ import annotations

import hashlib
import uuid

from psycopg_pool import AsyncConnectionPool

from adapters.postgres.connections import connection
from codeforge.domain.errors import NotFound
from codeforge.ports.artifacts import Artifact, ArtifactInfo, check_artifact

_INFO = "run_id, name, media_type, size, sha256, created_at"


class PostgresArtifactStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def put(
        self, tenant_id: uuid.UUID, run_id: uuid.UUID, name: str, media_type: str, content: bytes
    ) -> ArtifactInfo:
        check_artifact(name, media_type, content)
        sha = hashlib.sha256(content).hexdigest()
        async with connection(self._pool, "the artifact store") as conn:
            row = await (
                await conn.execute(
                    "INSERT INTO run_artifacts (run_id, name, tenant_id, media_type, size, sha256,"
                    " content) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (run_id, name) DO UPDATE SET media_type = EXCLUDED.media_type,"
                    " size = EXCLUDED.size, sha256 = EXCLUDED.sha256, content = EXCLUDED.content,"
                    " created_at = now()"
                    " WHERE run_artifacts.tenant_id = EXCLUDED.tenant_id"
                    " RETURNING run_id, name, media_type, size, sha256, created_at",
                    (run_id, name, tenant_id, media_type, len(content), sha, content),
                )
            ).fetchone()
        if row is None:  # the run belongs to another tenant
            raise NotFound(f"run {run_id} not found", field="run_id")
        return _info(row)

    async def get(self, tenant_id: uuid.UUID, run_id: uuid.UUID, name: str) -> Artifact:
        async with connection(self._pool, "the artifact store") as conn:
            row = await (
                await conn.execute(
                    f"SELECT {_INFO}, content FROM run_artifacts"  # noqa: S608 - constant
                    " WHERE tenant_id = %s AND run_id = %s AND name = %s",
                    (tenant_id, run_id, name),
                )
            ).fetchone()
        if row is None:
            raise NotFound(f"run {run_id} has no artifact {name!r}", field="name")
        return Artifact(info=_info(row[:6]), content=bytes(row[6]))

    async def list(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> list[ArtifactInfo]:
        async with connection(self._pool, "the artifact store") as conn:
            rows = await (
                await conn.execute(
                    f"SELECT {_INFO} FROM run_artifacts"  # noqa: S608 - constant
                    " WHERE tenant_id = %s AND run_id = %s ORDER BY name",
                    (tenant_id, run_id),
                )
            ).fetchall()
        return [_info(row) for row in rows]


def _info(row: tuple[object, ...]) -> ArtifactInfo:
    run_id, name, media_type, size, sha, created_at = row
    return ArtifactInfo(
        run_id=run_id,  # type: ignore[arg-type]
        name=name,  # type: ignore[arg-type]
        media_type=media_type,  # type: ignore[arg-type]
        size=size,  # type: ignore[arg-type]
        sha256=sha,  # type: ignore[arg-type]
        created_at=created_at,  # type: ignore[arg-type]
    )
