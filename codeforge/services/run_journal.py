"""Appending to one run's log on behalf of whoever acts for the run.

The log takes an append only at the seq the writer read (optimistic concurrency), so
a worker keeps the run's last seq and serialises its own appends (heartbeats, the
agent's steps, the end). Others may append to the same run meanwhile — the LLM proxy
recording a model call made from inside the sandbox, possibly from another process —
so a refused append is not yet a lost lease: the journal reads the run again and, if
the run is still its owner's and still going, appends at the new seq. Only when
someone else ended the run or took its lease does it raise `LeaseLost`.
"""

from __future__ import annotations

import asyncio
import uuid

from codeforge.domain.errors import Conflict
from codeforge.domain.events import Event, StoredEvent
from codeforge.domain.runs import Run
from codeforge.ports.events import EventContext, EventStore, OutboxMessage
from codeforge.services.event_log import EventLog

# Appends retried after others' writes before giving up (each retry reads the run).
MAX_RETRIES = 20


class LeaseLost(Conflict):
    """The run ended, or another worker holds it: this journal may not write to it."""


class RunJournal:
    def __init__(
        self,
        log: EventLog,
        store: EventStore,
        run: Run,
        *,
        owner: str | None,
        request_id: str | None = None,
    ) -> None:
        """`owner` is the worker holding the lease; None writes for any live run."""
        self.run_id: uuid.UUID = run.id
        self.tenant_id: uuid.UUID = run.tenant_id
        self._log = log
        self._store = store
        self._owner = owner
        self._seq = run.last_seq
        self._lock = asyncio.Lock()
        self._context = EventContext(tenant_id=run.tenant_id, request_id=request_id)

    @property
    def seq(self) -> int:
        """The last seq this journal knows of (its own last append, or what it read)."""
        return self._seq

    async def append(
        self, *events: Event, outbox: OutboxMessage | None = None
    ) -> list[StoredEvent]:
        async with self._lock:
            for _ in range(MAX_RETRIES):
                try:
                    stored = await self._log.append(
                        self.run_id,
                        list(events),
                        expected_seq=self._seq,
                        context=self._context,
                        outbox=outbox,
                    )
                except Conflict as e:
                    current = await self._store.get_run(self.tenant_id, self.run_id)
                    if current.last_seq == self._seq or not self._may_write(current):
                        # Not someone's interleaved write: the run refused the events.
                        raise LeaseLost(str(e)) from e
                    self._seq = current.last_seq
                    continue
                self._seq = stored[-1].seq
                return stored
        raise LeaseLost("the run's log kept changing; giving up on this append")

    async def refresh(self) -> Run:
        """Read the run again (and its last seq)."""
        async with self._lock:
            run = await self._store.get_run(self.tenant_id, self.run_id)
            self._seq = run.last_seq
            return run

    def _may_write(self, run: Run) -> bool:
        if run.status.terminal:
            return False
        return self._owner is None or run.lease_owner == self._owner


__all__ = ["LeaseLost", "RunJournal"]
