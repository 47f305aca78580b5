"""A pooled connection whose driver errors arrive as port errors.

Every PostgreSQL adapter needs the same translation at its edge: a database out of
reach (or a pool with no free connection) is `DependencyUnavailable`, any other driver
error a `PortError`, each saying which part failed. Domain errors raised inside the
block pass through untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from adapters.postgres.errors import describe
from codeforge.ports.errors import DependencyUnavailable, PortError


@contextlib.asynccontextmanager
async def connection(
    pool: AsyncConnectionPool, what: str
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    try:
        async with pool.connection() as conn:
            yield conn
    except (PoolTimeout, psycopg.OperationalError) as e:
        raise DependencyUnavailable(f"{what} is unavailable: {describe(e)}") from e
    except psycopg.Error as e:
        raise PortError(f"{what} failed: {describe(e)}") from e
