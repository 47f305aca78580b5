"""Live event streams: stored events first, then new ones as the feed announces them.

The feed only says "run R has something up to seq S"; the events themselves
are always read from the store. So a subscriber that connects late, reconnects
(`after` = its Last-Event-ID) or falls behind (a resync notice) catches up from
the log and never silently skips a stored event.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any, TypeVar

from msgspec import Struct

from codeforge.domain.events import StoredEvent
from codeforge.domain.keys import Principal
from codeforge.ports.events import FeedNotice, RunEventFeed
from codeforge.services.runs import Runs

BATCH = 500
T = TypeVar("T")


class Heartbeat(Struct, frozen=True):
    """Nothing happened for a while; the connection is alive."""


class LiveDelta(Struct, frozen=True, kw_only=True):
    """Ephemeral output as it is produced (model tokens, command output): never stored."""

    stream: str
    text: str
    call_id: str | None = None


class StatusChange(Struct, frozen=True, kw_only=True):
    entity: str
    entity_id: uuid.UUID | None
    status: str | None
    run_id: uuid.UUID | None = None


class SingleFlight:
    """Concurrent callers asking the same question share one answer.

    When an event is appended, every stream following that run wakes at once and
    asks the store the same thing; one query answers them all. A caller that is
    cancelled does not cancel the shared query.
    """

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[Any]] = {}

    async def run(self, key: Hashable, query: Callable[[], Awaitable[T]]) -> T:
        future = self._running.get(key)
        if future is None:
            future = asyncio.ensure_future(query())
            self._running[key] = future
            future.add_done_callback(lambda _: self._running.pop(key, None))
        result: T = await asyncio.shield(future)
        return result


class EventStreams:
    def __init__(self, runs: Runs, feed: RunEventFeed, heartbeat_seconds: float = 15.0) -> None:
        self._runs = runs
        self._feed = feed
        self._heartbeat = heartbeat_seconds
        self._shared = SingleFlight()

    async def run_events(
        self, principal: Principal, run_id: uuid.UUID, after: int = 0
    ) -> AsyncIterator[StoredEvent | LiveDelta | Heartbeat]:
        """Every event of the run after seq `after`, live, until the run has ended.

        Live deltas (model tokens, command output) arrive between the stored events
        while the run works; they are never replayed (a reconnect gets stored events).

        Call `Runs.get` first if a missing run must be a 404 before streaming starts.
        """
        # Subscribe before reading the backlog, so nothing appended in between is missed.
        subscription = self._feed.subscribe(principal.tenant_id)
        last = after
        try:
            while True:
                async for event in self._read_after(principal, run_id, last):
                    last = event.seq
                    yield event
                run = await self._shared.run(
                    ("run", principal.tenant_id, run_id), lambda: self._runs.get(principal, run_id)
                )
                if run.status.terminal and run.last_seq <= last:
                    return
                while True:
                    notice = await self._next(subscription, run_id)
                    if notice is None:
                        yield Heartbeat()
                    elif notice.kind == "delta":
                        yield LiveDelta(
                            stream=notice.stream or "", text=notice.text or "",
                            call_id=notice.call_id,
                        )  # fmt: skip
                        continue  # nothing was stored: keep listening
                    break
        finally:
            await _close(subscription)

    async def tenant_changes(self, principal: Principal) -> AsyncIterator[StatusChange | Heartbeat]:
        """Status changes of the tenant's runs, tasks and agents, for dashboards."""
        subscription = self._feed.subscribe(principal.tenant_id)
        try:
            while True:
                try:
                    notice = await asyncio.wait_for(anext(subscription), self._heartbeat)
                except TimeoutError:
                    yield Heartbeat()
                    continue
                except StopAsyncIteration:
                    return
                if notice.kind == "status":
                    yield StatusChange(
                        entity=notice.entity or "run",
                        entity_id=notice.entity_id or notice.run_id,
                        status=notice.status,
                        run_id=notice.run_id,
                    )
        finally:
            await _close(subscription)

    async def _read_after(
        self, principal: Principal, run_id: uuid.UUID, after: int
    ) -> AsyncIterator[StoredEvent]:
        while True:
            batch = await self._shared.run(
                ("events", principal.tenant_id, run_id, after),
                functools.partial(self._runs.events, principal, run_id, after=after, limit=BATCH),
            )
            for event in batch:
                yield event
            if len(batch) < BATCH:
                return
            after = batch[-1].seq

    async def _next(
        self, subscription: AsyncIterator[FeedNotice], run_id: uuid.UUID
    ) -> FeedNotice | None:
        """Wait for a notice about this run (or a resync); None after a quiet heartbeat period."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._heartbeat
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                notice = await asyncio.wait_for(anext(subscription), remaining)
            except TimeoutError:
                return None
            except StopAsyncIteration:
                # The feed closed (shutdown): poll the store at the heartbeat pace.
                await asyncio.sleep(remaining)
                return None
            if notice.run_id in (None, run_id):
                return notice


async def _close(subscription: AsyncIterator[FeedNotice]) -> None:
    close = getattr(subscription, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


__all__ = ["EventStreams", "Heartbeat", "LiveDelta", "StatusChange"]
