"""The lease reaper: runs whose worker stopped renewing their lease do not hang forever.

Every process runs one. A run whose lease expired is suspended and queued again in
one write (`RunSuspended(reason="worker_lost: …")` with its start job in the outbox):
any worker takes it and resumes it from its log and its latest checkpoint — never a
silent re-run from scratch. A run that has already been started `max_attempts` times
(its worker keeps dying: perhaps the run itself kills it) ends
`RunFailed(reason="worker_lost")` instead, its worktree and checkpoints kept.
Appending at the seq the reaper read means a heartbeat that arrives first wins, and
the run goes on. Cost holds of a reaped run (model calls its dead worker had
reserved) are released, so they do not block a budget for ever.
"""

from __future__ import annotations

import asyncio

import structlog

from codeforge.domain.errors import Conflict
from codeforge.domain.events import Event, RunFailed, RunSuspended
from codeforge.ports.costs import CostLedger
from codeforge.ports.errors import PortError
from codeforge.ports.events import EventContext, EventStore
from codeforge.services.background import Background
from codeforge.services.clock import Clock, utc_now
from codeforge.services.event_log import EventLog
from codeforge.services.subjects import start_job

log = structlog.get_logger("codeforge.reaper")


class LeaseReaper:
    def __init__(
        self,
        events: EventStore,
        event_log: EventLog,
        *,
        ledger: CostLedger | None = None,
        max_attempts: int = 3,
        interval: float = 15.0,
        clock: Clock = utc_now,
    ) -> None:
        self._events = events
        self._log = event_log
        self._ledger = ledger
        self._max_attempts = max_attempts
        self._interval = interval
        self._clock = clock
        self._loop = Background("lease reaper", self._run)

    async def reap_once(self) -> int:
        now = self._clock()
        ended = 0
        for run in await self._events.expired_leases(now):
            why = f"the lease of {run.lease_owner} expired at {run.lease_expires_at}"
            outbox = None
            event: Event
            if run.attempts >= self._max_attempts:
                event = RunFailed(
                    reason="worker_lost",
                    detail=f"{why}; gave up after {run.attempts} attempts",
                )
            else:
                event = RunSuspended(reason=f"worker_lost: {why}")
                outbox = start_job(run.id, run.tenant_id)
            try:
                await self._log.append(
                    run.id,
                    [event],
                    expected_seq=run.last_seq,
                    context=EventContext(tenant_id=run.tenant_id),
                    outbox=outbox,
                )
            except Conflict:
                continue  # its worker renewed the lease meanwhile
            if self._ledger is not None:
                await self._ledger.release_run(run.tenant_id, run.id)
            ended += 1
            log.warning(
                "run lease expired",
                run_id=str(run.id),
                worker=run.lease_owner,
                resumes=outbox is not None,
            )
        return ended

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self.reap_once()
            except PortError as e:
                log.warning("lease reaper pass failed", error=str(e))
            await asyncio.sleep(self._interval)
