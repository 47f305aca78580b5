"""The running application: what `codeforge serve` starts and stops.

Start opens the database (embedded or configured), applies migrations, and
registers readiness probes and shutdown actions. Stop runs the shutdown
sequence. Both are idempotent, so the CLI and tests can share them.
"""

from __future__ import annotations

import asyncio

import structlog

from codeforge.container import Container
from codeforge.services.readiness import Readiness
from codeforge.services.shutdown import Phase, PhaseOutcome, ShutdownSequence
from codeforge.settings import Settings

log = structlog.get_logger("codeforge.runtime")


class Runtime:
    def __init__(self, container: Container) -> None:
        self.container = container
        self._started = False
        self._start_lock = asyncio.Lock()

    @property
    def settings(self) -> Settings:
        settings: Settings = self.container.settings()
        return settings

    @property
    def readiness(self) -> Readiness:
        readiness: Readiness = self.container.readiness()
        return readiness

    @property
    def shutdown(self) -> ShutdownSequence:
        shutdown: ShutdownSequence = self.container.shutdown()
        return shutdown

    async def start(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            # Registered first so a start that fails half-way still closes what it opened.
            self.shutdown.register(Phase.CLOSE_POOL, "database", self._close_resources)
            self._started = True
            await self.container.db_pool()
            if self.settings.database.migrate_on_start:
                migrator = await self.container.migrator()
                applied = await asyncio.to_thread(migrator.apply)
                if applied:
                    log.info("migrations applied", migrations=applied)
            self.readiness.register(await self.container.database_probe())

    async def stop(self, reason: str = "requested") -> list[PhaseOutcome]:
        return await self.shutdown.run(reason)

    async def _close_resources(self) -> None:
        result = self.container.shutdown_resources()
        if result is not None:
            await result
