"""Where the database lives: a configured URL, or the embedded cluster.

The container chooses one of these with a Selector on whether `database.url`
is set, and runs it as a Resource through `running_database`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

import structlog

from adapters.postgres.embedded import EmbeddedPostgres
from codeforge.settings import Settings

log = structlog.get_logger("codeforge.database")


class DatabaseServer(Protocol):
    async def start(self) -> str: ...

    async def stop(self) -> None: ...


class ExternalDatabase:
    """A database someone else runs: nothing to start or stop."""

    def __init__(self, settings: Settings) -> None:
        self._url = settings.database.url

    async def start(self) -> str:
        return self._url

    async def stop(self) -> None:
        return None


class EmbeddedDatabase:
    """The cluster under the data dir: started (or reused) here, stopped if we started it."""

    def __init__(self, settings: Settings) -> None:
        embedded = settings.database.embedded
        self._dir = settings.embedded_database_path
        self._server = EmbeddedPostgres(
            self._dir, port=embedded.port, start_timeout=embedded.start_timeout
        )

    async def start(self) -> str:
        url = await asyncio.to_thread(self._server.start)
        log.info(
            "embedded database started" if self._server.owns_server else "embedded database reused",
            dir=str(self._dir),
            address=url.split("@")[-1],
        )
        return url

    async def stop(self) -> None:
        if self._server.owns_server:
            await asyncio.to_thread(self._server.stop)
            log.info("embedded database stopped", dir=str(self._dir))


async def running_database(server: DatabaseServer) -> AsyncIterator[str]:
    """Resource: the database URL for as long as the server should run."""
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()
