"""The run event log, and the live feed that tells subscribers something was appended.

EventStore contract (one contract suite checks every adapter):

- Per run, `seq` starts at 1 and increases by exactly 1; (run_id, seq) is unique.
- `create_run` stores, in ONE transaction: the `runs` projection row (version 1,
  last_seq 1), the `RunRequested` event at seq 1, and the outbox message — all
  or nothing. A duplicate run id raises `Conflict`.
- `append(run_id, events, expected_seq=N)` appends the batch at N+1, N+2, … only
  if the run's last seq is N, else raises `Conflict` (optimistic concurrency:
  of two writers appending after the same seq, exactly one wins). In the same
  transaction it folds the events into the projection (`Run.apply`), so the row
  and the log never disagree; a fold that rejects an event (an invalid state
  transition) raises `Conflict` and appends nothing. Unknown run → `NotFound`.
  With `outbox`, that message is written in the same transaction too (a run
  suspended and queued to resume is never one without the other).
- Reads return events in seq order; `after` is exclusive; `limit` caps the count.
  Every read is scoped to the tenant: another tenant's run is `NotFound`.
- Events are stored with their type name and schema version and read back through
  `codeforge.domain.events.decode_event`, so old versions stay readable.

RunEventFeed contract: `publish` tells every subscriber — in this process and,
for the PostgreSQL and NATS adapters, in every other process — that something
happened. Notices are small (run id and seq, or a status change): subscribers
read the events themselves from the store, so a slow or reconnecting subscriber
catches up from the log and never silently skips a stored event. Delivery to a
subscriber is best-effort and may coalesce; ordering per run is preserved.
A subscriber that fell behind (or a feed that lost its connection) receives a
*resync notice* — `kind="run_event"` with `run_id=None` — meaning "you may have
missed anything: re-read what you follow from the store".

A *watcher* (`watch`) sees every notice of every tenant synchronously, as the feed
receives it, and is told when the feed may be missing notices (`feed_lost`: its
connection broke, or it was closed) and when notices flow again (`feed_restored`:
anything sent meanwhile is lost). A cache kept fresh by the feed serves nothing
between the two.

Ephemeral deltas (`kind="delta"`: model tokens, command output as it is produced)
are the one kind of notice that carries content, because they are never stored:
live only, best-effort, lost when nobody listens (ARCHITECTURE.md, "Runs, events and
the feed"). A publisher keeps each delta's text under `MAX_DELTA_CHARS`, so the
notice fits a NOTIFY payload; queued deltas of the same run, stream and call are
joined, so a slow subscriber gets fewer, larger pieces in the same order.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from msgspec import Struct

from codeforge.domain.events import Event, RunRequested, StoredEvent
from codeforge.domain.runs import Run
from codeforge.ports.stores import Page


class OutboxMessage(Struct, frozen=True, kw_only=True):
    """A message to publish once the transaction that wrote it commits."""

    id: uuid.UUID
    subject: str
    payload: dict[str, Any]
    headers: dict[str, str] = {}


class EventContext(Struct, frozen=True, kw_only=True):
    """The envelope fields every appended event of one call shares."""

    tenant_id: uuid.UUID
    request_id: str | None = None


class EventStore(Protocol):
    async def create_run(
        self, run: Run, requested: RunRequested, outbox: OutboxMessage, context: EventContext
    ) -> StoredEvent: ...

    async def append(
        self,
        run_id: uuid.UUID,
        events: Sequence[Event],
        *,
        expected_seq: int,
        context: EventContext,
        outbox: OutboxMessage | None = None,
    ) -> list[StoredEvent]: ...

    async def get_run(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Run: ...

    async def list_runs(
        self,
        tenant_id: uuid.UUID,
        *,
        limit: int = 50,
        after: uuid.UUID | None = None,
        filters: dict[str, str] | None = None,
    ) -> Page[Run]:
        """Filters: status, task_id, agent_id, project_id."""
        ...

    async def expired_leases(self, now: datetime, *, limit: int = 100) -> list[Run]:
        """Runs of every tenant that are `running` with `lease_expires_at` before `now`,
        oldest lease first: the reaper's work list (its worker stopped renewing)."""
        ...

    async def load(
        self,
        tenant_id: uuid.UUID,
        run_id: uuid.UUID,
        *,
        after: int = 0,
        limit: int | None = None,
    ) -> list[StoredEvent]: ...

    async def load_by_task(
        self, tenant_id: uuid.UUID, task_id: uuid.UUID, *, after: int = 0, limit: int = 500
    ) -> list[StoredEvent]:
        """Events of every run of the task in the order they were stored.

        `after` is exclusive and refers to `StoredEvent.position`, the log's
        global, increasing position (seq is per run, so it cannot page across runs).
        """
        ...

    async def load_by_agent(
        self, tenant_id: uuid.UUID, agent_id: uuid.UUID, *, after: int = 0, limit: int = 500
    ) -> list[StoredEvent]:
        """As `load_by_task`, for every run of the agent."""
        ...

    async def load_by_types(
        self, tenant_id: uuid.UUID, types: Sequence[str], *, after: int = 0, limit: int = 500
    ) -> list[StoredEvent]:
        """As `load_by_task`, for the tenant's events of the given type names (the audit
        trail reads decisions and deliveries across every run this way)."""
        ...


# Characters of text in one delta notice: JSON-escaped and UTF-8 encoded it stays far
# below PostgreSQL's 8,000-byte NOTIFY cap (at most 6 bytes per character).
MAX_DELTA_CHARS = 1000

DeltaStream = Literal["model", "tool_args", "stdout", "stderr"]


class FeedNotice(Struct, frozen=True, kw_only=True):
    """What the feed carries: never a stored event itself (NOTIFY payloads cap at 8 kB)."""

    tenant_id: uuid.UUID
    kind: Literal["run_event", "status", "delta"]
    run_id: uuid.UUID | None = None
    seq: int | None = None
    # For kind == "status": which entity changed, and to what.
    entity: Literal["run", "task", "agent"] | None = None
    entity_id: uuid.UUID | None = None
    status: str | None = None
    # For kind == "delta": which stream of the run, for which tool call, and the text.
    stream: DeltaStream | None = None
    call_id: str | None = None
    text: str | None = None


class FeedWatcher(Protocol):
    """Told of every notice the feed receives, of every tenant, without a queue.

    The methods are called on the event loop and must not block or raise.
    """

    def noticed(self, notice: FeedNotice) -> None: ...

    def feed_lost(self) -> None:
        """Notices may be missed from now on (until `feed_restored`)."""
        ...

    def feed_restored(self) -> None:
        """Notices flow again; any sent while the feed was lost are gone."""
        ...


class RunEventFeed(Protocol):
    async def publish(self, notice: FeedNotice) -> None: ...

    def subscribe(self, tenant_id: uuid.UUID) -> AsyncIterator[FeedNotice]:
        """Notices of one tenant from now on, until the iterator is closed."""
        ...

    def watch(self, watcher: FeedWatcher) -> None:
        """Tell `watcher` of every notice from now on, and of the feed's losses.

        Before returning, it calls `watcher.feed_restored()` if the feed is receiving
        now and `watcher.feed_lost()` if not, so the watcher starts in a known state.
        """
        ...

    async def close(self) -> None: ...
