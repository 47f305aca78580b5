"""Code graphs in PostgreSQL (migration 0020): symbols and edges, queried in SQL.

Implements `codeforge.ports.code_graph.CodeGraphStore` (its docstring is the contract).
How each promise is kept:

- `replace` runs in one transaction under a per-project advisory lock: the old graph
  is deleted (symbols and edges cascade) and the new one copied in with COPY, so
  readers see one graph or the other and two replaces never interleave.
- Callers/callees are one join and GROUP BY; the neighbourhood is a recursive CTE
  over the edges in both directions, bounded by `hops`, with each symbol's nearest
  distance kept.
- Driver errors become port errors: out of reach `DependencyUnavailable`, anything
  else `PortError`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from adapters.postgres.errors import describe
from codeforge.domain.code_graph import MODULE, GraphData, GraphHit
from codeforge.ports.code_graph import check_graph_limit
from codeforge.ports.errors import DependencyUnavailable, PortError

_HIT = "s.path, s.name, s.kind, s.line, s.end_line"
_EDGES = (
    f"SELECT {_HIT}, sum(e.uses)::int AS uses"  # noqa: S608 - constant columns
    " FROM code_edges e JOIN code_symbols s ON s.project_id = e.project_id AND s.id = e.{other}"
    " WHERE e.project_id = %s AND e.kind = 'calls' AND e.{this} = ANY(%s)"
    " GROUP BY s.id, s.path, s.name, s.kind, s.line, s.end_line"
    " ORDER BY uses DESC, s.path, s.line, s.name LIMIT %s"
)
_NEIGHBOURHOOD = f"""
WITH RECURSIVE
  adjacent AS (
    SELECT src AS a, dst AS b FROM code_edges WHERE project_id = %(p)s
    UNION ALL
    SELECT dst, src FROM code_edges WHERE project_id = %(p)s
  ),
  walk (id, hops) AS (
    SELECT unnest(%(start)s::int[]), 0
    UNION
    SELECT adjacent.b, walk.hops + 1 FROM walk JOIN adjacent ON adjacent.a = walk.id
    WHERE walk.hops < %(hops)s
  ),
  nearest AS (SELECT id, min(hops) AS hops FROM walk GROUP BY id)
SELECT {_HIT}, n.hops
FROM nearest n JOIN code_symbols s ON s.project_id = %(p)s AND s.id = n.id
WHERE n.id <> ALL(%(start)s::int[])
ORDER BY n.hops, s.path, s.line, s.name
LIMIT %(limit)s
"""  # noqa: S608 - constant columns


class PostgresCodeGraphStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def fingerprint(self, project_id: uuid.UUID) -> str | None:
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT fingerprint FROM code_graphs WHERE project_id = %s", (project_id,)
            )
            row = await cursor.fetchone()
        return row[0] if row else None

    async def replace(
        self, tenant_id: uuid.UUID, project_id: uuid.UUID, fingerprint: str, data: GraphData
    ) -> None:
        module_of = {s.file: i for i, s in enumerate(data.symbols) if s.index < 0}
        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 20))", (str(project_id),)
            )
            await conn.execute("DELETE FROM code_graphs WHERE project_id = %s", (project_id,))
            await conn.execute(
                "INSERT INTO code_graphs (project_id, tenant_id, fingerprint) VALUES (%s, %s, %s)",
                (project_id, tenant_id, fingerprint),
            )
            cursor = conn.cursor()
            async with cursor.copy(
                "COPY code_symbols (project_id, id, idx, path, name, kind, line, end_line)"
                " FROM STDIN"
            ) as copy:
                for i, s in enumerate(data.symbols):
                    await copy.write_row(
                        (project_id, i, s.index, data.paths[s.file], s.name, s.kind, s.line,
                         s.end_line)
                    )  # fmt: skip
            async with cursor.copy(
                "COPY code_edges (project_id, kind, src, dst, uses) FROM STDIN"
            ) as copy:
                for a, b, uses in data.calls:
                    await copy.write_row((project_id, "calls", a, b, uses))
                for a, b in data.imports:
                    await copy.write_row((project_id, "imports", module_of[a], module_of[b], 1))

    async def callers(self, project_id: uuid.UUID, spec: str, limit: int) -> list[GraphHit]:
        return await self._edges(project_id, spec, limit, this="dst", other="src")

    async def callees(self, project_id: uuid.UUID, spec: str, limit: int) -> list[GraphHit]:
        return await self._edges(project_id, spec, limit, this="src", other="dst")

    async def _edges(
        self, project_id: uuid.UUID, spec: str, limit: int, *, this: str, other: str
    ) -> list[GraphHit]:
        check_graph_limit(limit)
        async with self._connection() as conn:
            start = await _start(conn, project_id, spec)
            if not start:
                return []
            cursor = await conn.execute(
                _EDGES.format(this=this, other=other), (project_id, start, limit)
            )
            rows = await cursor.fetchall()
        return [GraphHit(p, n, k, ln, end, uses) for p, n, k, ln, end, uses in rows]

    async def importers(self, project_id: uuid.UUID, path: str, limit: int) -> list[GraphHit]:
        check_graph_limit(limit)
        async with self._connection() as conn:
            cursor = await conn.execute(
                "SELECT DISTINCT s.path FROM code_symbols t"
                " JOIN code_edges e ON e.project_id = t.project_id AND e.kind = 'imports'"
                "  AND e.dst = t.id"
                " JOIN code_symbols s ON s.project_id = e.project_id AND s.id = e.src"
                " WHERE t.project_id = %s AND t.path = %s AND t.idx = -1"
                " ORDER BY s.path LIMIT %s",
                (project_id, path, limit),
            )
            rows = await cursor.fetchall()
        return [GraphHit(p, "", "file", 1, 1) for (p,) in rows]

    async def neighbourhood(
        self, project_id: uuid.UUID, spec: str, hops: int, limit: int
    ) -> list[GraphHit]:
        check_graph_limit(limit, hops)
        async with self._connection() as conn:
            start = await _start(conn, project_id, spec)
            if not start:
                return []
            cursor = await conn.execute(
                _NEIGHBOURHOOD, {"p": project_id, "start": start, "hops": hops, "limit": limit}
            )
            rows = await cursor.fetchall()
        return [GraphHit(p, n, k, ln, end, 0, h) for p, n, k, ln, end, h in rows]

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError) as e:
            raise DependencyUnavailable(
                f"the code graph store is unavailable: {describe(e)}"
            ) from e
        except psycopg.Error as e:
            raise PortError(f"the code graph store failed: {describe(e)}") from e


async def _start(conn: psycopg.AsyncConnection[Any], project_id: uuid.UUID, spec: str) -> list[int]:
    """The symbols a spec names: a file's path (its top level), `path:name` or `name`."""
    spec = spec.strip()
    cursor = await conn.execute(
        "SELECT id FROM code_symbols WHERE project_id = %s AND path = %s AND idx = -1",
        (project_id, spec),
    )
    rows = await cursor.fetchall()
    if rows:
        return [r[0] for r in rows]
    path, _, name = spec.rpartition(":")
    if path:
        cursor = await conn.execute(
            "SELECT id FROM code_symbols WHERE project_id = %s AND path = %s AND name = %s"
            " AND idx >= 0 ORDER BY id",
            (project_id, path, name),
        )
        rows = await cursor.fetchall()
        if rows:
            return [r[0] for r in rows]
    if spec == MODULE:
        return []
    cursor = await conn.execute(
        "SELECT id FROM code_symbols WHERE project_id = %s AND name = %s AND idx >= 0 ORDER BY id",
        (project_id, spec),
    )
    return [r[0] for r in await cursor.fetchall()]
