"""The run event log in PostgreSQL: `run_events`, the `runs` projection and the outbox.

Implements `codeforge.ports.events.EventStore` (its module docstring is the
contract). How each promise is kept:

- One transaction per write. `append` locks the run row (`SELECT … FOR
  UPDATE`), so of two appends after the same seq the second waits, then sees
  the new seq and raises `Conflict`; UNIQUE (run_id, seq) is the backstop.
  The batch is folded with `Run.apply` before anything is written (a rejected
  event aborts it all), inserted in one statement (`unnest` of arrays), and
  the projection row is updated with `version + 1` in the same transaction.
- Positions (the log's global order, for paging by task or agent) come from
  an identity column, which hands out numbers at insert, not at commit: a
  reader paging by position could pass a smaller number that commits later
  and never see it. So every write takes transaction-scoped advisory locks on
  its task and its agent (always task first, after the run row: no deadlock)
  before it inserts; events of one task, or of one agent, then commit in
  position order, and a page never skips one.
- Notification: inside the same transaction, `pg_notify('codeforge_events', …)`
  with the payload of `adapters.postgres.event_feed.encode_notice` — a
  `run_event` notice carrying the run's last seq, plus a `status` notice when
  the run's status changed (creating a run counts). PostgreSQL delivers them on
  commit only, so a rolled-back write is never announced.
- Reads decode every event with `decode_event`, upgrading old schema versions.
- Driver errors become domain or port errors here: duplicates `Conflict`,
  unstorable values (NUL characters, broken checks) `ValidationFailed`, a
  database out of reach `DependencyUnavailable`, anything else `PortError`.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from adapters import store_rules as rules
from adapters.postgres.errors import describe
from adapters.postgres.event_feed import CHANNEL, encode_notice
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
from codeforge.ports.errors import DependencyUnavailable, PortError
from codeforge.ports.events import EventContext, FeedNotice, OutboxMessage
from codeforge.ports.stores import Page

# PostgreSQL refuses NUL in JSONB; an escaped backslash before "u0000" is not one.
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
# Advisory lock spaces (first key of the two-key form) that order writes per task and agent.
TASK_LOCK_SPACE = 7301
AGENT_LOCK_SPACE = 7302

_RUN_COLUMNS = (
    "id, tenant_id, project_id, task_id, agent_id, status, mode, deliver, limits,"
    " policy_overrides, result, cost_usd, steps, attempts, last_seq, lease_owner,"
    " lease_expires_at, started_at, finished_at, version, created_at, updated_at"
)
_INSERT_RUN = (
    f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ("  # noqa: S608 - column names are constants
    "%(id)s, %(tenant_id)s, %(project_id)s, %(task_id)s, %(agent_id)s, %(status)s, %(mode)s,"
    " %(deliver)s, %(limits)s, %(policy_overrides)s, %(result)s, %(cost_usd)s, %(steps)s,"
    " %(attempts)s, %(last_seq)s, %(lease_owner)s, %(lease_expires_at)s, %(started_at)s,"
    " %(finished_at)s,"
    " %(version)s, %(created_at)s, %(updated_at)s)"
)
_UPDATE_RUN = (
    "UPDATE runs SET status = %(status)s, limits = %(limits)s,"
    " policy_overrides = %(policy_overrides)s, result = %(result)s, cost_usd = %(cost_usd)s,"
    " steps = %(steps)s, attempts = %(attempts)s, last_seq = %(last_seq)s,"
    " lease_owner = %(lease_owner)s,"
    " lease_expires_at = %(lease_expires_at)s, started_at = %(started_at)s,"
    " finished_at = %(finished_at)s, updated_at = %(updated_at)s, version = version + 1"
    " WHERE id = %(id)s AND version = %(version)s"
)
_LOCK_TASK_AND_AGENT = (
    "SELECT pg_advisory_xact_lock(%s, hashtext(%s::text)),"
    " pg_advisory_xact_lock(%s, hashtext(%s::text))"
)
# One statement for the whole batch: arrays in, one row per event out.
_INSERT_EVENTS = (
    "INSERT INTO run_events"
    " (run_id, seq, type, schema_version, payload, tenant_id, task_id, agent_id,"
    " request_id, created_at)"
    " SELECT %(run_id)s, e.seq, e.type, e.version, e.payload::jsonb, %(tenant_id)s,"
    " %(task_id)s, %(agent_id)s, %(request_id)s, %(created_at)s"
    " FROM unnest(%(seqs)s::int[], %(types)s::text[], %(versions)s::int[],"
    " %(payloads)s::text[]) WITH ORDINALITY AS e(seq, type, version, payload, n)"
    " ORDER BY e.n"
    " RETURNING position, seq"
)
_NOTIFY = "SELECT pg_notify(%s, p) FROM unnest(%s::text[]) WITH ORDINALITY AS n(p, i) ORDER BY i"
_EVENT_COLUMNS = (
    "position, run_id, seq, type, schema_version, payload::text, tenant_id, task_id,"
    " agent_id, request_id, created_at"
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PostgresEventStore:
    """`EventStore` on the application's pool (autocommit connections)."""

    def __init__(
        self, pool: AsyncConnectionPool, *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._pool = pool
        self._clock = clock

    # -- writes ----------------------------------------------------------------------

    async def create_run(
        self, run: Run, requested: RunRequested, outbox: OutboxMessage, context: EventContext
    ) -> StoredEvent:
        if run.tenant_id != context.tenant_id:
            raise ValidationFailed(
                f"run {run.id} belongs to tenant {run.tenant_id}, not {context.tenant_id}",
                field="tenant_id",
            )
        run = msgspec.structs.replace(run, version=1, last_seq=1)
        batch = _Batch.of([requested], first_seq=1)
        duplicates = {
            "runs_pkey": (f"a run with id {run.id} already exists", "id"),
            "outbox_pkey": (f"an outbox message with id {outbox.id} already exists", "id"),
        }
        async with self._transaction(duplicates) as conn:
            await conn.execute(_INSERT_RUN, _run_params(run))
            inserted = await self._insert(conn, run, batch, context, run.created_at)
            await self._insert_outbox(conn, outbox, run.tenant_id, run.created_at)
            await _notify(conn, _notices(None, run))
            positions = await _positions(inserted, batch)
        return batch.stored(run, positions, context, run.created_at)[0]

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
        # Encoded before the run row is locked: the lock is held only for the write.
        batch = _Batch.of(events, first_seq=expected_seq + 1)
        duplicates = {"run_events_run_seq_key": (f"run {run_id} was appended to meanwhile", None)}
        if outbox is not None:
            duplicates["outbox_pkey"] = (
                f"an outbox message with id {outbox.id} already exists",
                "id",
            )
        async with self._transaction(duplicates) as conn:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs"  # noqa: S608 - constant column names
                " WHERE tenant_id = %s AND id = %s FOR UPDATE",
                (context.tenant_id, run_id),
            )
            row = await cursor.fetchone()
            if row is None:
                raise NotFound(f"run {run_id} does not exist", field="run_id")
            before = _run_from_row(row)
            if before.last_seq != expected_seq:
                raise Conflict(f"run {run_id} is at seq {before.last_seq}, not {expected_seq}")
            at = self._clock()
            after = before
            for seq, event in enumerate(events, start=expected_seq + 1):
                after = after.apply(event, seq, at)
            inserted = await self._insert(conn, after, batch, context, at)
            await conn.execute(_UPDATE_RUN, _run_params(after))
            if outbox is not None:
                await self._insert_outbox(conn, outbox, after.tenant_id, at)
            await _notify(conn, _notices(before, after))
            positions = await _positions(inserted, batch)
        return batch.stored(after, positions, context, at)

    @staticmethod
    async def _insert_outbox(
        conn: psycopg.AsyncConnection[Any],
        outbox: OutboxMessage,
        tenant_id: uuid.UUID,
        at: datetime,
    ) -> None:
        await conn.execute(
            "INSERT INTO outbox (id, tenant_id, subject, payload, headers, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (
                outbox.id,
                tenant_id,
                outbox.subject,
                _jsonb("the outbox payload", outbox.payload),
                _jsonb("the outbox headers", outbox.headers),
                at,
            ),
        )

    async def _insert(
        self,
        conn: psycopg.AsyncConnection[Any],
        run: Run,
        batch: _Batch,
        context: EventContext,
        at: datetime,
    ) -> psycopg.AsyncCursor[Any]:
        """Queue the batch's insert (after the locks); `_positions` reads what it returned."""
        await conn.execute(
            _LOCK_TASK_AND_AGENT, (TASK_LOCK_SPACE, run.task_id, AGENT_LOCK_SPACE, run.agent_id)
        )
        return await conn.execute(
            _INSERT_EVENTS,
            {
                "run_id": run.id,
                "tenant_id": context.tenant_id,
                "task_id": run.task_id,
                "agent_id": run.agent_id,
                "request_id": context.request_id,
                "created_at": at,
                "seqs": batch.seqs,
                "types": batch.types,
                "versions": batch.versions,
                "payloads": batch.payloads,
            },
        )

    # -- reads -----------------------------------------------------------------------

    async def get_run(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Run:
        async with self._connection() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs"  # noqa: S608 - constant column names
                " WHERE tenant_id = %s AND id = %s",
                (tenant_id, run_id),
            )
            row = await cursor.fetchone()
        if row is None:
            raise NotFound(f"run {run_id} does not exist", field="run_id")
        return _run_from_row(row)

    async def expired_leases(self, now: datetime, *, limit: int = 100) -> list[Run]:
        rules.check_aware(now)
        async with self._connection() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs"  # noqa: S608 - constant column names
                " WHERE status = 'running' AND lease_expires_at < %s"
                " ORDER BY lease_expires_at LIMIT %s",
                (now, rules.run_page_size(limit)),
            )
            rows = await cursor.fetchall()
        return [_run_from_row(row) for row in rows]

    async def list_runs(
        self,
        tenant_id: uuid.UUID,
        *,
        limit: int = 50,
        after: uuid.UUID | None = None,
        filters: dict[str, str] | None = None,
    ) -> Page[Run]:
        limit = rules.run_page_size(limit)
        conditions = ["tenant_id = %s"]
        params: list[object] = [tenant_id]
        if after is not None:
            conditions.append("id > %s")
            params.append(after)
        for name, value in rules.run_filters(filters).items():
            conditions.append(f"{name} = %s")  # names come from rules.RUN_FILTERS only
            params.append(value.value if isinstance(value, RunStatus) else value)
        params.append(limit + 1)
        async with self._connection() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE {' AND '.join(conditions)}"  # noqa: S608
                " ORDER BY id LIMIT %s",
                params,
            )
            rows = await cursor.fetchall()
        items = [_run_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items=items, next_cursor=str(items[-1].id) if more else None)

    async def load(
        self,
        tenant_id: uuid.UUID,
        run_id: uuid.UUID,
        *,
        after: int = 0,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        rules.event_limit(limit)
        async with self._connection() as conn:
            cursor = conn.cursor(binary=True)
            await cursor.execute(
                "SELECT task_id, agent_id FROM runs WHERE tenant_id = %s AND id = %s",
                (tenant_id, run_id),
            )
            found = await cursor.fetchone()
            if found is None:
                raise NotFound(f"run {run_id} does not exist", field="run_id")
            # The ids are the run's: read them once, not once per event (a 10,000-event
            # log spends more time parsing UUIDs than decoding payloads).
            await cursor.execute(
                "SELECT position, seq, type, schema_version, payload::text, request_id,"
                " created_at FROM run_events"
                " WHERE tenant_id = %s AND run_id = %s AND seq > %s ORDER BY seq LIMIT %s",
                (tenant_id, run_id, after, limit),
            )
            rows = await cursor.fetchall()
        task_id, agent_id = found
        return [
            StoredEvent(
                run_id=run_id,
                seq=seq,
                position=position,
                type=type_name,
                schema_version=version,
                event=decode_event(type_name, version, msgspec.json.decode(payload)),
                tenant_id=tenant_id,
                task_id=task_id,
                agent_id=agent_id,
                request_id=request_id,
                created_at=at,
            )
            for position, seq, type_name, version, payload, request_id, at in rows
        ]

    async def load_by_task(
        self, tenant_id: uuid.UUID, task_id: uuid.UUID, *, after: int = 0, limit: int = 500
    ) -> list[StoredEvent]:
        return await self._load_by("task_id", tenant_id, task_id, after, limit)

    async def load_by_agent(
        self, tenant_id: uuid.UUID, agent_id: uuid.UUID, *, after: int = 0, limit: int = 500
    ) -> list[StoredEvent]:
        return await self._load_by("agent_id", tenant_id, agent_id, after, limit)

    async def load_by_types(
        self, tenant_id: uuid.UUID, types: Sequence[str], *, after: int = 0, limit: int = 500
    ) -> list[StoredEvent]:
        rules.event_limit(limit)
        async with self._connection() as conn:
            cursor = conn.cursor(binary=True)
            await cursor.execute(
                f"SELECT {_EVENT_COLUMNS} FROM run_events"  # noqa: S608 - constant columns
                " WHERE tenant_id = %s AND type = ANY(%s) AND position > %s"
                " ORDER BY position LIMIT %s",
                (tenant_id, list(types), after, limit),
            )
            rows = await cursor.fetchall()
        return [_stored(row) for row in rows]

    async def _load_by(
        self, column: str, tenant_id: uuid.UUID, value: uuid.UUID, after: int, limit: int
    ) -> list[StoredEvent]:
        rules.event_limit(limit)
        async with self._connection() as conn:
            cursor = conn.cursor(binary=True)
            await cursor.execute(
                f"SELECT {_EVENT_COLUMNS} FROM run_events"  # noqa: S608 - constant columns
                f" WHERE tenant_id = %s AND {column} = %s AND position > %s"
                " ORDER BY position LIMIT %s",
                (tenant_id, value, after, limit),
            )
            rows = await cursor.fetchall()
        return [_stored(row) for row in rows]

    # -- the edge --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except pg_errors.TransactionRollback as e:
            # A deadlock or serialization failure: the write did not happen; retrying may.
            raise Conflict(f"a concurrent write interfered; retry: {describe(e)}") from e
        except (PoolTimeout, psycopg.OperationalError) as e:
            raise DependencyUnavailable(f"the event store is unavailable: {describe(e)}") from e
        except psycopg.Error as e:
            raise PortError(f"the event store failed: {describe(e)}") from e

    @contextlib.asynccontextmanager
    async def _transaction(
        self, duplicates: Mapping[str, tuple[str, str | None]]
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A transaction; a unique violation becomes the `Conflict` named for its constraint."""
        try:
            # Pipeline mode: statements whose results are not needed yet travel together.
            async with self._connection() as conn, conn.pipeline(), conn.transaction():
                yield conn
        except PortError as e:
            cause = e.__cause__
            if isinstance(cause, pg_errors.UniqueViolation):
                message, field = duplicates.get(
                    cause.diag.constraint_name or "", (describe(cause), None)
                )
                raise Conflict(message, field=field) from cause
            if isinstance(cause, pg_errors.DataError | pg_errors.CheckViolation):
                raise ValidationFailed(f"cannot store this: {describe(cause)}") from cause
            raise


class _Batch(msgspec.Struct, frozen=True):
    """Events encoded for one insert, in seq order."""

    events: Sequence[Event]
    seqs: list[int]
    types: list[str]
    versions: list[int]
    payloads: list[str]

    @classmethod
    def of(cls, events: Sequence[Event], *, first_seq: int) -> _Batch:
        types = []
        for event in events:
            name = event_type_name(event)
            if EVENT_TYPES.get(name) is not type(event):
                raise ValidationFailed(
                    f"event type {name} is not registered, so it could not be read back",
                    field="events",
                )
            types.append(name)
        payloads = [
            _storable(f"event {name}", encode_payload(event))
            for name, event in zip(types, events, strict=True)
        ]
        return cls(
            events=events,
            seqs=list(range(first_seq, first_seq + len(events))),
            types=types,
            versions=[type(event).SCHEMA_VERSION for event in events],
            payloads=payloads,
        )

    def stored(
        self, run: Run, positions: list[int], context: EventContext, at: datetime
    ) -> list[StoredEvent]:
        return [
            StoredEvent(
                run_id=run.id,
                seq=seq,
                position=position,
                type=type_name,
                schema_version=version,
                event=event,
                tenant_id=context.tenant_id,
                task_id=run.task_id,
                agent_id=run.agent_id,
                request_id=context.request_id,
                created_at=at,
            )
            for seq, position, type_name, version, event in zip(
                self.seqs, positions, self.types, self.versions, self.events, strict=True
            )
        ]


def _storable(what: str, value: object) -> str:
    """`value` as JSON that PostgreSQL accepts, or `ValidationFailed` saying why not."""
    try:
        encoded = msgspec.json.encode(value).decode()
    except (TypeError, ValueError) as e:  # lone surrogates raise UnicodeEncodeError
        raise ValidationFailed(f"{what} cannot be stored: {e}") from e
    if _JSON_NUL.search(encoded):
        raise ValidationFailed(f"{what} contains a NUL character, which cannot be stored")
    return encoded


def _jsonb(what: str, value: object) -> Jsonb:
    # Encoded now, not when psycopg sends it, so that a bad value fails as ValidationFailed.
    encoded = _storable(what, value)
    return Jsonb(value, dumps=lambda _: encoded)


def _run_params(run: Run) -> dict[str, object]:
    return {
        "id": run.id,
        "tenant_id": run.tenant_id,
        "project_id": run.project_id,
        "task_id": run.task_id,
        "agent_id": run.agent_id,
        "status": run.status.value,
        "mode": run.mode.value,
        "deliver": run.deliver.value,
        "limits": _jsonb("the run's limits", run.limits),
        "policy_overrides": _jsonb("the run's policy overrides", run.policy_overrides),
        "result": None if run.result is None else _jsonb("the run's result", run.result),
        "cost_usd": run.cost_usd,
        "steps": run.steps,
        "attempts": run.attempts,
        "last_seq": run.last_seq,
        "lease_owner": run.lease_owner,
        "lease_expires_at": run.lease_expires_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        # The version read; the UPDATE bumps it.
        "version": run.version,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
    }


def _run_from_row(row: dict[str, Any]) -> Run:
    return msgspec.convert(row, Run, strict=False)


def _stored(row: tuple[Any, ...]) -> StoredEvent:
    (position, run_id, seq, type_name, version, payload, tenant, task, agent, request, at) = row
    return StoredEvent(
        run_id=run_id,
        seq=seq,
        position=position,
        type=type_name,
        schema_version=version,
        event=decode_event(type_name, version, msgspec.json.decode(payload)),
        tenant_id=tenant,
        task_id=task,
        agent_id=agent,
        request_id=request,
        created_at=at,
    )


def _notices(before: Run | None, after: Run) -> list[FeedNotice]:
    notices = [
        FeedNotice(tenant_id=after.tenant_id, kind="run_event", run_id=after.id, seq=after.last_seq)
    ]
    if before is None or before.status != after.status:
        notices.append(
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
    return notices


async def _positions(inserted: psycopg.AsyncCursor[Any], batch: _Batch) -> list[int]:
    by_seq = {seq: position for position, seq in await inserted.fetchall()}
    return [by_seq[seq] for seq in batch.seqs]


async def _notify(conn: psycopg.AsyncConnection[Any], notices: list[FeedNotice]) -> None:
    await conn.execute(_NOTIFY, (CHANNEL, [encode_notice(n) for n in notices]))
