"""The psycopg 3 connection pool, opened and closed as a container Resource."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from adapters.postgres.errors import describe
from adapters.postgres.urls import libpq_url
from codeforge.ports.errors import DependencyUnavailable
from codeforge.settings import PoolSettings

log = structlog.get_logger("codeforge.database")


class DatabaseUnavailable(DependencyUnavailable):
    """The database could not be reached; str() says where and why, without secrets."""


async def open_pool(url: str, settings: PoolSettings) -> AsyncIterator[AsyncConnectionPool]:
    """Yield an open pool; close it (waiting for connections in use) on exit.

    Idle connections are checked every `health_check_period` seconds so a
    database restart is noticed early. Connections are not checked on every
    checkout: that round trip would double the database work of a simple GET,
    and the pool discards a connection that breaks in use.
    """
    pool: AsyncConnectionPool = AsyncConnectionPool(
        libpq_url(url),
        min_size=settings.min_size,
        max_size=settings.max_size,
        max_lifetime=settings.max_lifetime,
        max_idle=settings.max_idle,
        timeout=settings.timeout,
        open=False,
        name="codeforge",
        kwargs={"autocommit": True, "application_name": "codeforge"},
    )
    try:
        await pool.open(wait=True, timeout=settings.timeout)
    except (PoolTimeout, psycopg.OperationalError) as e:
        await pool.close()
        raise DatabaseUnavailable(f"cannot connect to {_where(url)}: {describe(e)}") from e
    checker = asyncio.create_task(_check_periodically(pool, settings.health_check_period))
    log.info("database pool opened", min_size=settings.min_size, max_size=settings.max_size)
    try:
        yield pool
    finally:
        checker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await checker
        await pool.close()
        log.info("database pool closed")


async def _check_periodically(pool: AsyncConnectionPool, period: float) -> None:
    while True:
        await asyncio.sleep(period)
        try:
            await pool.check()
        except Exception as e:  # the next period tries again; requests see their own errors
            log.warning("database pool check failed", error=str(e))


def _where(url: str) -> str:
    # host:port/db only — never the credentials.
    return libpq_url(url).split("@")[-1].removeprefix("postgresql://")
