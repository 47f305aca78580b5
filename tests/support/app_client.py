"""`AppClient`: an HTTP client for the app that runs it in the test's own event loop.

Why not Litestar's `AppClient`: despite its name it hands every request to a
blocking portal — a second event loop in another thread — and blocks the test's loop
until the response is complete. Everything else the test started lives in the test's
loop: the in-process run worker, the database pool, the outbox relay. A request that
needs a pool connection while a worker coroutine (frozen with the loop) holds one
mid-transaction then waits for the pool's timeout — two runs of one task stalled
30 s that way, and the API answered 503 meanwhile. It also meant one psycopg pool
used from two event loops. Here the app is called in the same loop, through httpx's
ASGI transport, and its lifespan hooks run on enter and exit like a server's — in a
task of their own, since a fixture's setup and teardown run in different tasks and the
lifespan holds a task group that must be left from the task that entered it.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

import httpx
from litestar import Litestar

BASE_URL = "http://testserver.local"


class AppClient(httpx.AsyncClient):
    def __init__(self, app: Litestar, **kwargs: Any) -> None:
        self.app = app
        self._lifespan: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._stop = asyncio.Event()
        super().__init__(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)),
            base_url=kwargs.pop("base_url", BASE_URL),
            **kwargs,
        )

    async def _live(self) -> None:
        async with self.app.lifespan():
            self._started.set()
            await self._stop.wait()

    async def __aenter__(self) -> AppClient:
        self._lifespan = asyncio.create_task(self._live(), name="app lifespan")
        started = asyncio.create_task(self._started.wait())
        await asyncio.wait({self._lifespan, started}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if self._lifespan.done():
            self._lifespan.result()  # the startup failed: raise its error here
        await super().__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc, tb)
        finally:
            lifespan, self._lifespan = self._lifespan, None
            if lifespan is not None:
                self._stop.set()
                await lifespan
