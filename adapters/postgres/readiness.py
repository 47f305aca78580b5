"""Readiness probe: a round trip to PostgreSQL through the pool."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool


class PostgresProbe:
    name = "database"

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def check(self) -> str | None:
        # A short pool timeout: a saturated pool is itself a readiness problem.
        async with self._pool.connection(timeout=2.0) as conn:
            await conn.execute("SELECT 1")
        return None
