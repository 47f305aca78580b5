"""The run event log in dicts, with the PostgreSQL adapter's invariants.

Implements `codeforge.ports.events.EventStore` for one process (tests, and the
single-process default when no database is wanted). Every write runs without
awaiting until it has committed, so on one event loop each is atomic: of two
appends after the same seq exactly one wins, and a rejected batch leaves
nothing behind. Not thread-safe.

It keeps what PostgreSQL keeps, not Python objects: events are stored as
(type name, schema version, JSON payload) and decoded on every read with
`decode_event`, so an event that would not survive the database does not
survive here either, and old schema versions are upgraded on read alike
(`put_raw` stores a payload as an older writer would have).

Notification: the PostgreSQL store notifies inside its transaction (NOTIFY is
delivered on commit); this one takes an optional `RunEventFeed` and publishes
the same notices after each write — a `run_event` notice with the run's last
seq, and a `status` notice for the run when its status changed.
"""

from __future__ import annotations

import bisect
import itertools
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from msgspec import Struct

from adapters import store_rules as rules
from codeforge.domain.errors import Conflict, NotFound, ValidationFailed
from codeforge.domain.events import (
    EVENT_TYPES,
    Event,
    RunRequested,
    StoredEvent,
    decode_event,
    encode_payload,
    event_type_name,
)
from codeforge.domain.runs import Run, RunStatus
from codeforge.ports.events import EventContext, FeedNotice, OutboxMessage, RunEventFeed
from codeforge.ports.stores import Page

# PostgreSQL refuses NUL in text and JSONB; an escaped backslash before "u0000" is not one.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class _Record(Struct, frozen=True, kw_only=True):
    """One row of `run_events`."""

    position: int
    run_id: uuid.UUID
    seq: int
    type: str
    schema_version: int
    payload: bytes
    tenant_id: uuid.UUID
    task_id: uuid.UUID
    agent_id: uuid.UUID
    request_id: str | None
    created_at: datetime


class OutboxRow(Struct, frozen=True, kw_only=True):
    """One row of `outbox`; the relay's columns belong to `adapters.memory.outbox`."""

    tenant_id: uuid.UUID
    message: OutboxMessage
    created_at: datetime
    published_at: datetime | None = None
    # Not claimable before this instant (a claim's lease, a release's retry time).
    claimed_until: datetime | None = None
    attempts: int = 0
    last_error: str | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MemoryEventStore:
    """`EventStore` in memory; `feed`, when given, hears of every committed write."""

    def __init__(
        self,
        *,
        feed: RunEventFeed | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._feed = feed
        self._clock = clock
        self._runs: dict[uuid.UUID, Run] = {}
        self._logs: dict[uuid.UUID, list[_Record]] = {}
        self._by_task: dict[tuple[uuid.UUID, uuid.UUID], list[_Record]] = {}
        self._by_agent: dict[tuple[uuid.UUID, uuid.UUID], list[_Record]] = {}
        self._outbox: dict[uuid.UUID, OutboxRow] = {}
        self._positions = itertools.count(1)

    # -- writes ----------------------------------------------------------------------

    async def create_run(
        self, run: Run, requested: RunRequested, outbox: OutboxMessage, context: EventContext
    ) -> StoredEvent:
        if run.tenant_id != context.tenant_id:
            raise ValidationFailed(
                f"run {run.id} belongs to tenant {run.tenant_id}, not {context.tenant_id}",
                field="tenant_id",
            )
        if run.id in self._runs:
            raise Conflict(f"a run with id {run.id} already exists", field="id")
        if outbox.id in self._outbox:
            raise Conflict(f"an outbox message with id {outbox.id} already exists", field="id")
        run = msgspec.structs.replace(run, version=1, last_seq=1)
        _storable("the run", run)
        _storable("the outbox message", outbox)
        record = self._record(run, 1, requested, context, run.created_at)
        # Everything is checked: commit.
        self._runs[run.id] = run
        self._logs[run.id] = []
        [record] = self._commit([record])
        self._outbox[outbox.id] = OutboxRow(
            tenant_id=run.tenant_id, message=outbox, created_at=run.created_at
        )
        stored = _stored(record)
        await self._notify(None, run)
        return stored

    async def append(
        self,
        run_id: uuid.UUID,
        events: Sequence[Event],
        *,
        expected_seq: int,
        context: EventContext,
        outbox: OutboxMessage | None = None,
    ) -> list[StoredEvent]:
        if not events:
            raise ValidationFailed("append needs at least one event", field="events")
        if outbox is not None:
            if outbox.id in self._outbox:
                raise Conflict(f"an outbox message with id {outbox.id} already exists", field="id")
            _storable("the outbox message", outbox)
        before = self._visible_run(context.tenant_id, run_id)
        if before.last_seq != expected_seq:
            raise Conflict(f"run {run_id} is at seq {before.last_seq}, not {expected_seq}")
        at = self._clock()
        after = before
        records = []
        for seq, event in enumerate(events, start=expected_seq + 1):
            after = after.apply(event, seq, at)
            records.append(self._record(after, seq, event, context, at))
        after = msgspec.structs.replace(after, version=before.version + 1)
        _storable("the run", after)
        self._runs[run_id] = after
        stored = [_stored(r) for r in self._commit(records)]
        if outbox is not None:
            self._outbox[outbox.id] = OutboxRow(
                tenant_id=after.tenant_id, message=outbox, created_at=at
            )
        await self._notify(before, after)
        return stored

    def put_raw(
        self,
        tenant_id: uuid.UUID,
        run_id: uuid.UUID,
        type_name: str,
        schema_version: int,
        payload: dict[str, Any],
    ) -> int:
        """Store `payload` at the run's next seq exactly as given, as an older writer did.

        Bypasses encoding and the fold (only the seq advances); for tests of
        reading old schema versions. Returns the seq.
        """
        run = self._visible_run(tenant_id, run_id)
        seq = run.last_seq + 1
        self._runs[run_id] = msgspec.structs.replace(run, last_seq=seq, version=run.version + 1)
        record = _Record(
            position=0,
            run_id=run_id,
            seq=seq,
            type=type_name,
            schema_version=schema_version,
            payload=msgspec.json.encode(payload),
            tenant_id=tenant_id,
            task_id=run.task_id,
            agent_id=run.agent_id,
            request_id=None,
            created_at=self._clock(),
        )
        self._commit([record])
        return seq

    def pending_outbox(self, tenant_id: uuid.UUID | None = None) -> list[OutboxMessage]:
        """Outbox messages not yet published, oldest first (what a relay would send)."""
        return [
            o.message
            for o in self._outbox.values()
            if o.published_at is None and (tenant_id is None or o.tenant_id == tenant_id)
        ]

    def outbox_rows(self) -> dict[uuid.UUID, OutboxRow]:
        """The outbox table itself, by message id, for `adapters.memory.outbox.MemoryOutbox`.

        The caller may replace rows (they are frozen) but must never add or remove a
        key except to purge published rows: messages enter only with their run.
        """
        return self._outbox

    # -- reads -----------------------------------------------------------------------

    async def get_run(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Run:
        return self._visible_run(tenant_id, run_id)

    async def expired_leases(self, now: datetime, *, limit: int = 100) -> list[Run]:
        rules.check_aware(now)
        expired = [
            run
            for run in self._runs.values()
            if run.status is RunStatus.RUNNING
            and run.lease_expires_at is not None
            and run.lease_expires_at < now
        ]
        expired.sort(key=lambda run: run.lease_expires_at or now)
        return expired[: rules.run_page_size(limit)]

    async def list_runs(
        self,
        tenant_id: uuid.UUID,
        *,
        limit: int = 50,
        after: uuid.UUID | None = None,
        filters: dict[str, str] | None = None,
    ) -> Page[Run]:
        limit = rules.run_page_size(limit)
        wanted = rules.run_filters(filters)
        matching = sorted(
            (
                run
                for run in self._runs.values()
                if run.tenant_id == tenant_id
                and (after is None or run.id > after)
                and all(getattr(run, name) == value for name, value in wanted.items())
            ),
            key=lambda run: run.id,
        )
        items = matching[:limit]
        more = len(matching) > limit
        return Page(items=items, next_cursor=str(items[-1].id) if more else None)

    async def load(
        self,
        tenant_id: uuid.UUID,
        run_id: uuid.UUID,
        *,
        after: int = 0,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        self._visible_run(tenant_id, run_id)
        rules.event_limit(limit)
        log = self._logs[run_id]
        start = bisect.bisect_right(log, after, key=lambda r: r.seq)
        end = len(log) if limit is None else start + limit
        return [_stored(r) for r in log[start:end]]

    async def load_by_task(
        self, tenant_id: uuid.UUID, task_id: uuid.UUID, *, after: int = 0, limit: int = 500
    ) -> list[StoredEvent]:
        return _page_by_position(self._by_task.get((tenant_id, task_id), []), after, limit)

    async def load_by_agent(
        self, tenant_id: uuid.UUID, agent_id: uuid.UUID, *, after: int = 0, limit: int = 500
    ) -> list[StoredEvent]:
        return _page_by_position(self._by_agent.get((tenant_id, agent_id), []), after, limit)

    async def load_by_types(
        self, tenant_id: uuid.UUID, types: Sequence[str], *, after: int = 0, limit: int = 500
    ) -> list[StoredEvent]:
        wanted = set(types)
        records = sorted(
            (
                r
                for log in self._logs.values()
                for r in log
                if r.tenant_id == tenant_id and r.type in wanted
            ),
            key=lambda r: r.position,
        )
        return _page_by_position(records, after, limit)

    # -- the rest --------------------------------------------------------------------

    def _visible_run(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Run:
        run = self._runs.get(run_id)
        if run is None or run.tenant_id != tenant_id:
            raise NotFound(f"run {run_id} does not exist", field="run_id")
        return run

    @staticmethod
    def _record(run: Run, seq: int, event: Event, context: EventContext, at: datetime) -> _Record:
        type_name = event_type_name(event)
        if EVENT_TYPES.get(type_name) is not type(event):
            raise ValidationFailed(
                f"event type {type_name} is not registered, so it could not be read back",
                field="events",
            )
        payload = _storable(f"event {type_name}", encode_payload(event))
        if context.request_id is not None and "\x00" in context.request_id:
            raise ValidationFailed("the request id contains a NUL character", field="request_id")
        return _Record(
            position=0,
            run_id=run.id,
            seq=seq,
            type=type_name,
            schema_version=type(event).SCHEMA_VERSION,
            payload=payload,
            tenant_id=context.tenant_id,
            task_id=run.task_id,
            agent_id=run.agent_id,
            request_id=context.request_id,
            created_at=at,
        )

    def _commit(self, records: list[_Record]) -> list[_Record]:
        """Number the records in log order and index them; returns the numbered ones."""
        numbered = []
        for unnumbered in records:
            record = msgspec.structs.replace(unnumbered, position=next(self._positions))
            self._logs[record.run_id].append(record)
            self._by_task.setdefault((record.tenant_id, record.task_id), []).append(record)
            self._by_agent.setdefault((record.tenant_id, record.agent_id), []).append(record)
            numbered.append(record)
        return numbered

    async def _notify(self, before: Run | None, after: Run) -> None:
        if self._feed is None:
            return
        await self._feed.publish(
            FeedNotice(
                tenant_id=after.tenant_id, kind="run_event", run_id=after.id, seq=after.last_seq
            )
        )
        if before is None or before.status != after.status:
            await self._feed.publish(
                FeedNotice(
                    tenant_id=after.tenant_id,
                    kind="status",
                    run_id=after.id,
                    seq=after.last_seq,
                    entity="run",
                    entity_id=after.id,
                    status=after.status.value,
                )
            )


def _stored(record: _Record) -> StoredEvent:
    return StoredEvent(
        run_id=record.run_id,
        seq=record.seq,
        position=record.position,
        type=record.type,
        schema_version=record.schema_version,
        event=decode_event(record.type, record.schema_version, msgspec.json.decode(record.payload)),
        tenant_id=record.tenant_id,
        task_id=record.task_id,
        agent_id=record.agent_id,
        request_id=record.request_id,
        created_at=record.created_at,
    )


def _page_by_position(records: list[_Record], after: int, limit: int) -> list[StoredEvent]:
    rules.event_limit(limit)
    start = bisect.bisect_right(records, after, key=lambda r: r.position)
    return [_stored(r) for r in records[start : start + limit]]


def _storable(what: str, value: object) -> bytes:
    """`value` as the JSON PostgreSQL would store, or `ValidationFailed` saying why not."""
    try:
        encoded = msgspec.json.encode(value)
    except (TypeError, ValueError) as e:  # lone surrogates raise UnicodeEncodeError
        raise ValidationFailed(f"{what} cannot be stored: {e}") from e
    if _JSON_NUL.search(encoded):
        raise ValidationFailed(f"{what} contains a NUL character, which cannot be stored")
    return encoded
