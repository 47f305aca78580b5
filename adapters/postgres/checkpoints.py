"""Checkpoints in PostgreSQL (tables `checkpoints`, `checkpoint_blobs`; migration 0007).

Implements `codeforge.ports.checkpoints.CheckpointStore`. Blobs are inserted with
`ON CONFLICT DO NOTHING`, so the same content stored by many checkpoints (or runs, or
two workers at once) is kept once. A manifest is checked against the blobs in the
same transaction that inserts it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool

from adapters.postgres.connections import connection
from codeforge.domain.errors import Conflict, NotFound
from codeforge.ports.checkpoints import Checkpoint, FileEntry, check_blobs, check_manifest

_COLUMNS = "id, tenant_id, run_id, after_seq, base_commit, files::text, changed::text, created_at"
_files = msgspec.json.Decoder(dict[str, FileEntry])
_changed = msgspec.json.Decoder(tuple[str, ...])


class PostgresCheckpointStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def put_blobs(self, blobs: Mapping[str, bytes]) -> None:
        check_blobs(blobs)
        if not blobs:
            return
        async with (
            connection(self._pool, "the checkpoint store") as conn,
            conn.cursor() as cursor,
        ):
            await cursor.executemany(
                "INSERT INTO checkpoint_blobs (sha256, size, content) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [(sha, len(data), data) for sha, data in blobs.items()],
            )

    async def save(self, checkpoint: Checkpoint) -> None:
        needed = check_manifest(checkpoint)
        async with connection(self._pool, "the checkpoint store") as conn, conn.transaction():
            if needed:
                rows = await (
                    await conn.execute(
                        "SELECT sha256 FROM checkpoint_blobs WHERE sha256 = ANY(%s)", (needed,)
                    )
                ).fetchall()
                check_manifest(checkpoint, present={row[0] for row in rows})
            try:
                await conn.execute(
                    "INSERT INTO checkpoints (id, tenant_id, run_id, after_seq, base_commit,"
                    " files, changed, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        checkpoint.id,
                        checkpoint.tenant_id,
                        checkpoint.run_id,
                        checkpoint.after_seq,
                        checkpoint.base_commit,
                        msgspec.json.encode(checkpoint.files).decode(),
                        msgspec.json.encode(checkpoint.changed).decode(),
                        checkpoint.created_at,
                    ),
                )
            except psycopg.errors.UniqueViolation as e:
                raise Conflict(f"checkpoint {checkpoint.id} already exists") from e
            if needed:
                await conn.execute(
                    "INSERT INTO checkpoint_blob_refs (checkpoint_id, sha256)"
                    " SELECT %s, unnest(%s::text[])",
                    (checkpoint.id, needed),
                )

    async def get(self, tenant_id: uuid.UUID, checkpoint_id: uuid.UUID) -> Checkpoint:
        rows = await self._select("tenant_id = %s AND id = %s", (tenant_id, checkpoint_id))
        if not rows:
            raise NotFound(f"checkpoint {checkpoint_id} not found", field="checkpoint_id")
        return rows[0]

    async def latest(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Checkpoint | None:
        rows = await self._select(
            "tenant_id = %s AND run_id = %s ORDER BY after_seq DESC, created_at DESC LIMIT 1",
            (tenant_id, run_id),
        )
        return rows[0] if rows else None

    async def list_for_run(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> list[Checkpoint]:
        return await self._select(
            "tenant_id = %s AND run_id = %s ORDER BY after_seq, created_at", (tenant_id, run_id)
        )

    async def blob(self, sha256: str) -> bytes:
        async with connection(self._pool, "the checkpoint store") as conn:
            row = await (
                await conn.execute(
                    "SELECT content FROM checkpoint_blobs WHERE sha256 = %s", (sha256,)
                )
            ).fetchone()
        if row is None:
            raise NotFound(f"no checkpoint blob {sha256}", field="sha256")
        return bytes(row[0])

    async def prune(self, tenant_id: uuid.UUID, run_id: uuid.UUID, keep: int) -> int:
        async with connection(self._pool, "the checkpoint store") as conn:
            cursor = await conn.execute(
                "DELETE FROM checkpoints WHERE tenant_id = %(tenant)s AND run_id = %(run)s"
                " AND id NOT IN (SELECT id FROM checkpoints"
                "  WHERE tenant_id = %(tenant)s AND run_id = %(run)s"
                "  ORDER BY after_seq DESC, created_at DESC LIMIT %(keep)s)"
                " AND id <> (SELECT id FROM checkpoints"
                "  WHERE tenant_id = %(tenant)s AND run_id = %(run)s"
                "  ORDER BY after_seq, created_at LIMIT 1)",
                {"tenant": tenant_id, "run": run_id, "keep": keep},
            )
            return cursor.rowcount

    async def collect_garbage(self, limit: int = 10_000) -> int:
        async with connection(self._pool, "the checkpoint store") as conn:
            cursor = await conn.execute(
                "DELETE FROM checkpoint_blobs WHERE sha256 IN (SELECT b.sha256"
                " FROM checkpoint_blobs b WHERE NOT EXISTS"
                " (SELECT 1 FROM checkpoint_blob_refs r WHERE r.sha256 = b.sha256) LIMIT %s)",
                (limit,),
            )
            return cursor.rowcount

    async def _select(self, where: str, params: tuple[Any, ...]) -> list[Checkpoint]:
        query = f"SELECT {_COLUMNS} FROM checkpoints WHERE {where}"  # noqa: S608 - constants
        async with connection(self._pool, "the checkpoint store") as conn:
            rows = await (await conn.execute(query, params)).fetchall()  # type: ignore[arg-type]
        return [
            Checkpoint(
                id=row[0],
                tenant_id=row[1],
                run_id=row[2],
                after_seq=row[3],
                base_commit=row[4],
                files=_files.decode(row[5]),
                changed=_changed.decode(row[6]),
                created_at=row[7],
            )
            for row in rows
        ]
