"""A service's background loop: one named task, started once, stopped for good."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


class Background:
    def __init__(self, name: str, body: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._name = name
        self._body = body
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop (again after a stop); starting a running loop does nothing."""
        if self._task is None:
            self._task = asyncio.create_task(self._body(), name=self._name)

    async def stop(self) -> None:
        """Cancel the loop and wait until it has ended; idempotent."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
