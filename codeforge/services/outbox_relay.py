"""The outbox relay: publishes what transactions wrote to the outbox, then marks it sent.

Starting a run writes its job into the outbox in the same transaction as the run
(ARCHITECTURE.md, "Runs, events and the feed"); this relay moves it to the queue.
A queue outage delays jobs, never loses them: a failed publish releases the entry
for a later pass (with back-off), and the circuit breaker makes an outage cheap.
Every relay in every process may run at once: claims are leases, so each entry
is published by one relay at a time, and the queue's de-duplication on the entry
id absorbs the rare double publish after a relay dies between publish and mark.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import msgspec
import structlog

from codeforge.ports.errors import PortError
from codeforge.ports.outbox import OutboxEntry, OutboxStore
from codeforge.ports.queue import Queue, SubjectRegistry
from codeforge.services.background import Background
from codeforge.services.circuit_breaker import CircuitBreaker
from codeforge.services.clock import Clock, utc_now

log = structlog.get_logger("codeforge.outbox")

BATCH = 100
LEASE_SECONDS = 30.0
MAX_BACKOFF = 60.0
# A row that cannot become its subject's payload will not get better by retrying soon.
MALFORMED_RETRY = timedelta(hours=1)


class OutboxRelay:
    def __init__(
        self,
        outbox: OutboxStore,
        queue: Queue,
        registry: SubjectRegistry,
        breaker: CircuitBreaker,
        *,
        interval: float = 1.0,
        clock: Clock = utc_now,
    ) -> None:
        self._outbox = outbox
        self._queue = queue
        self._registry = registry
        self._breaker = breaker
        self._interval = interval
        self._clock = clock
        self._wake = asyncio.Event()
        self._loop = Background("outbox relay", self._run)

    def wake(self) -> None:
        """Something was just written: publish it now rather than at the next pass."""
        self._wake.set()

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def relay_once(self) -> int:
        """One pass: publish what can be claimed now; the number published."""
        now = self._clock()
        entries = await self._outbox.claim(limit=BATCH, lease_seconds=LEASE_SECONDS, now=now)
        published = []
        for entry in entries:
            if await self._publish(entry):
                published.append(entry.id)
            else:
                # The queue is failing: leave the rest to their leases and the next pass.
                break
        if published:
            await self._outbox.mark_published(published, now=self._clock())
        return len(published)

    async def _publish(self, entry: OutboxEntry) -> bool:
        try:
            payload_type = self._registry.spec(entry.subject).payload_type
            payload = msgspec.convert(entry.payload, payload_type)
        except (PortError, msgspec.ValidationError) as e:
            log.error("outbox entry is malformed", entry_id=str(entry.id), error=str(e))
            await self._outbox.release(
                entry.id, error=str(e), retry_at=self._clock() + MALFORMED_RETRY
            )
            return True
        try:
            await self._breaker.call(
                self._queue.publish,
                entry.subject,
                payload,
                dict(entry.headers),
                message_id=str(entry.id),
            )
        except PortError as e:
            backoff = min(MAX_BACKOFF, 2.0 ** min(entry.attempts, 6))
            await self._outbox.release(
                entry.id, error=str(e), retry_at=self._clock() + timedelta(seconds=backoff)
            )
            log.warning("outbox publish failed", subject=entry.subject, error=str(e))
            return False
        return True

    async def _run(self) -> None:
        while True:
            try:
                published = await self.relay_once()
            except PortError as e:
                log.warning("outbox relay pass failed", error=str(e))
                published = 0
            if published >= BATCH:
                continue  # more may be waiting
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
