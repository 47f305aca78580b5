"""Every write to the run event log goes through here, so no secret is ever stored.

Any value registered as secret (API keys, tokens, anything the secret store
handed out) is replaced with a marker in every string of an event before it is
written: stored events live forever and are shown in pages and streams.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import msgspec
import structlog

from codeforge.domain.events import (
    Event,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunRequested,
    RunResumed,
    RunStarted,
    RunSuspended,
    StoredEvent,
)
from codeforge.domain.runs import Run, RunStatus
from codeforge.ports.errors import PortError
from codeforge.ports.events import (
    EventContext,
    EventStore,
    FeedNotice,
    OutboxMessage,
    RunEventFeed,
)

E = TypeVar("E", bound=Event)

log = structlog.get_logger("codeforge.events")

MARKER = "[REDACTED]"
# Shorter values would match ordinary words; the log's redaction uses the same floor.
MIN_SECRET_LENGTH = 6


# The status a run has after each lifecycle event, for the feed's status notices.
_STATUS_AFTER: dict[type[Event], RunStatus] = {
    RunStarted: RunStatus.RUNNING,
    RunResumed: RunStatus.RUNNING,
    RunSuspended: RunStatus.SUSPENDED,
    RunCompleted: RunStatus.SUCCEEDED,
    RunFailed: RunStatus.FAILED,
    RunCancelled: RunStatus.CANCELLED,
}


class EventLog:
    """Writes events; with `announce_to`, also tells that feed about each write.

    The PostgreSQL event store announces on its own (NOTIFY in the transaction); a
    feed that is not the database (NATS) is told here, after the commit.
    """

    def __init__(
        self,
        store: EventStore,
        secrets: Callable[[], Iterable[str]],
        announce_to: RunEventFeed | None = None,
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._feed = announce_to

    async def create_run(
        self, run: Run, requested: RunRequested, outbox: OutboxMessage, context: EventContext
    ) -> StoredEvent:
        stored = await self._store.create_run(run, self.scrub(requested), outbox, context)
        await self._announce(context.tenant_id, run.id, stored.seq, RunStatus.REQUESTED)
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
        stored = await self._store.append(
            run_id,
            [self.scrub(e) for e in events],
            expected_seq=expected_seq,
            context=context,
            outbox=outbox,
        )
        statuses = [_STATUS_AFTER[type(e)] for e in events if type(e) in _STATUS_AFTER]
        await self._announce(
            context.tenant_id, run_id, stored[-1].seq, statuses[-1] if statuses else None
        )
        return stored

    async def _announce(
        self, tenant_id: uuid.UUID, run_id: uuid.UUID, seq: int, status: RunStatus | None
    ) -> None:
        if self._feed is None:
            return
        try:
            await self._feed.publish(
                FeedNotice(tenant_id=tenant_id, kind="run_event", run_id=run_id, seq=seq)
            )
            if status is not None:
                await self._feed.publish(
                    FeedNotice(
                        tenant_id=tenant_id,
                        kind="status",
                        run_id=run_id,
                        seq=seq,
                        entity="run",
                        entity_id=run_id,
                        status=status.value,
                    )
                )
        except PortError as e:
            # The write is committed; streams catch up from the store on their next notice.
            log.warning("feed announcement failed", run_id=str(run_id), error=str(e))

    def scrub(self, event: E) -> E:
        """The event with every registered secret replaced by the marker."""
        secrets = sorted(
            (s for s in self._secrets() if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True
        )
        if not secrets:
            return event
        payload = msgspec.to_builtins(event)
        cleaned = _replace(payload, secrets)
        if cleaned == payload:
            return event
        return msgspec.convert(cleaned, type(event), strict=False)


def _replace(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, MARKER)
        return value
    if isinstance(value, dict):
        return {_replace(k, secrets): _replace(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, secrets) for v in value]
    return value
