"""Workers take `runs.start` jobs, hold the run's lease while it executes, and let go.

The lease lives in PostgreSQL, on the run's projection (ARCHITECTURE.md,
"Workers, leases, control"): taking a job appends `RunStarted` with the lease
at the seq the worker read, so of two workers handed the same job (delivery is
at least once) exactly one wins and the other drops it. The job message is
acknowledged once the lease is taken. Heartbeats renew the lease; a worker that
finds its heartbeat refused has lost the run (the reaper ended it) and stops.
Cancel and approval decisions arrive on the run's fan-out control subject.
Shutdown suspends running runs (`RunSuspended`, lease released) and queues them
again in the same write, so a deploy never ends a paid run; a worker handed a
suspended run resumes it (`RunResumed`) and the executor continues from its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

import msgspec
import structlog

from codeforge.domain.commands import ControlRun, StartRun
from codeforge.domain.errors import Conflict, NotFound
from codeforge.domain.events import (
    Event,
    HeartbeatRecorded,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunResumed,
    RunStarted,
    RunSuspended,
)
from codeforge.domain.runs import Run, RunStatus
from codeforge.ports.events import EventContext, EventStore, OutboxMessage
from codeforge.ports.executor import ApprovalAnswer, Outcome, RunExecutor
from codeforge.ports.queue import Message, Queue, Subscription
from codeforge.services.clock import Clock, utc_now
from codeforge.services.event_log import EventLog
from codeforge.services.run_journal import LeaseLost, RunJournal
from codeforge.services.subjects import START_RUN, control_subject, start_job

log = structlog.get_logger("codeforge.worker")

WORKERS_CONSUMER = "run-workers"


class Controls:
    """What reaches a held run from outside: cancel, and approvers' answers.

    An answer may arrive before the executor waits for it (the API accepts it as soon
    as `ApprovalRequested` is stored); it is kept until asked for.
    """

    def __init__(self) -> None:
        self._cancel = asyncio.Event()
        self._answers: dict[str, asyncio.Future[ApprovalAnswer]] = {}

    def is_set(self) -> bool:
        return self._cancel.is_set()

    async def wait(self) -> bool:
        return await self._cancel.wait()

    def set(self) -> None:
        self._cancel.set()

    async def answer(self, approval_id: str) -> ApprovalAnswer:
        return await self._future(approval_id)

    def deliver(self, approval_id: str, answer: ApprovalAnswer) -> None:
        future = self._future(approval_id)
        if not future.done():
            future.set_result(answer)

    def _future(self, approval_id: str) -> asyncio.Future[ApprovalAnswer]:
        if approval_id not in self._answers:
            self._answers[approval_id] = asyncio.get_running_loop().create_future()
        return self._answers[approval_id]


class _Held:
    """One run this worker holds: its journal (appends are serialised) and stop signals."""

    def __init__(self, run: Run, journal: RunJournal) -> None:
        self.run = run
        self.journal = journal
        self.cancel = Controls()
        # Set when a user paused the run: it is suspended without being queued again.
        self.paused = ""
        self.cancel_reason = ""
        self.task: asyncio.Task[None] | None = None


class RunWorker:
    def __init__(
        self,
        queue: Queue,
        events: EventStore,
        event_log: EventLog,
        executor: RunExecutor,
        *,
        worker_id: str,
        lease_seconds: float = 120.0,
        heartbeat_seconds: float = 30.0,
        clock: Clock = utc_now,
    ) -> None:
        self._queue = queue
        self._events = events
        self._log = event_log
        self._executor = executor
        self.worker_id = worker_id
        self._lease = timedelta(seconds=lease_seconds)
        self._heartbeat = heartbeat_seconds
        self._clock = clock
        self._held: dict[uuid.UUID, _Held] = {}
        self._subscription: Subscription | None = None

    @property
    def running(self) -> list[uuid.UUID]:
        return list(self._held)

    async def start(self) -> None:
        self._subscription = await self._queue.subscribe(
            START_RUN, self._take, durable=WORKERS_CONSUMER, mode="work_queue"
        )
        log.info("worker started", worker=self.worker_id)

    async def stop_taking(self) -> None:
        """No new jobs; running ones go on (shutdown's first step)."""
        if self._subscription is not None:
            await self._subscription.stop()
            self._subscription = None

    async def suspend_all(self) -> None:
        """Suspend every run held here: recorded, lease released, resumable."""
        await self.stop_taking()
        tasks = [held.task for held in self._held.values() if held.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- taking a job ----------------------------------------------------------------

    async def _take(self, message: Message[StartRun]) -> None:
        job = message.payload
        try:
            run = await self._events.get_run(job.tenant_id, job.run_id)
        except NotFound:
            log.warning("job for an unknown run dropped", run_id=str(job.run_id))
            return
        lease = self._clock() + self._lease
        if run.status is RunStatus.REQUESTED:
            started: Event = RunStarted(worker=self.worker_id, lease_expires_at=lease)
        elif run.status is RunStatus.SUSPENDED:
            # Suspended by a shutdown or a lost worker: it continues here, from its log.
            started = RunResumed(worker=self.worker_id, lease_expires_at=lease)
        else:
            return  # taken by another worker, cancelled, or already done
        context = EventContext(tenant_id=run.tenant_id, request_id=message.request_id)
        try:
            stored = await self._log.append(
                run.id, [started], expected_seq=run.last_seq, context=context
            )
        except Conflict:
            return  # another worker took the lease first
        run = msgspec.structs.replace(run, last_seq=stored[-1].seq)
        journal = RunJournal(
            self._log, self._events, run, owner=self.worker_id, request_id=message.request_id
        )
        held = _Held(run, journal)
        self._held[run.id] = held
        held.task = asyncio.create_task(self._execute(held), name=f"run {run.id}")
        log.info("run taken", run_id=str(run.id), worker=self.worker_id)

    # -- running it ------------------------------------------------------------------

    async def _execute(self, held: _Held) -> None:
        run = held.run
        control = await self._queue.subscribe(
            control_subject(run.id),
            lambda message: self._control(held, message),
            mode="fan_out",
        )
        heartbeats = asyncio.create_task(self._heartbeats(held))
        try:
            try:
                outcome = await self._executor.execute(run, held.cancel, held.journal)
            except asyncio.CancelledError:
                if held.paused:
                    # Paused by a user: it waits until someone resumes it.
                    await self._finish(held, RunSuspended(reason=held.paused))
                    raise
                # Queued again in the same write: another worker (or this one, restarted)
                # resumes it — a deploy never ends a paid run.
                await self._finish(
                    held,
                    RunSuspended(reason="worker shutting down"),
                    outbox=start_job(run.id, run.tenant_id),
                )
                raise
            except Exception as e:
                log.exception("run executor failed", run_id=str(run.id))
                outcome = Outcome(status="failed", reason="executor_error", summary=str(e))
            await self._finish(held, _terminal_event(outcome, held.cancel_reason))
        finally:
            heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeats
            await control.stop()
            self._held.pop(run.id, None)

    async def _control(self, held: _Held, message: Message[ControlRun]) -> None:
        command = message.payload
        if command.action == "cancel" and not held.cancel.is_set():
            held.cancel_reason = command.reason or "cancelled by user"
            held.cancel.set()
            log.info("run cancel received", run_id=str(held.run.id))
        elif command.action == "suspend" and held.task is not None and not held.paused:
            held.paused = command.reason or "paused by user"
            held.task.cancel()
            log.info("run pause received", run_id=str(held.run.id))
        elif command.action in ("approve", "deny") and command.approval_id:
            held.cancel.deliver(
                command.approval_id,
                ApprovalAnswer(
                    allow=command.action == "approve",
                    scope=command.scope,
                    decided_by=command.decided_by,
                    reason=command.reason,
                ),
            )
            log.info("approval answer received", run_id=str(held.run.id), action=command.action)

    async def _heartbeats(self, held: _Held) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            beat = HeartbeatRecorded(
                worker=self.worker_id, lease_expires_at=self._clock() + self._lease
            )
            try:
                await self._append(held, beat)
            except LeaseLost:
                log.warning("run lease lost; stopping it", run_id=str(held.run.id))
                held.cancel_reason = "lease lost"
                held.cancel.set()
                return

    async def _finish(self, held: _Held, event: Event, outbox: OutboxMessage | None = None) -> None:
        try:
            await held.journal.append(event, outbox=outbox)
        except LeaseLost:
            log.warning("run ended elsewhere before this worker finished", run_id=str(held.run.id))

    async def _append(self, held: _Held, event: Event) -> None:
        await held.journal.append(event)


def _terminal_event(outcome: Outcome, cancel_reason: str) -> Event:
    if outcome.status == "succeeded":
        return RunCompleted(summary=outcome.summary, artifact=outcome.artifact)
    if outcome.status == "cancelled":
        return RunCancelled(reason=cancel_reason or outcome.summary or "cancelled")
    return RunFailed(reason=outcome.reason or "failed", detail=outcome.summary)
