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

from codeforge.domain.events import Event, RunRequested, StoredEvent
from codeforge.domain.runs import Run
from codeforge.ports.events import EventContext, EventStore, OutboxMessage

E = TypeVar("E", bound=Event)

MARKER = "[REDACTED]"
# Shorter values would match ordinary words; the log's redaction uses the same floor.
MIN_SECRET_LENGTH = 6


class EventLog:
    def __init__(self, store: EventStore, secrets: Callable[[], Iterable[str]]) -> None:
        self._store = store
        self._secrets = secrets

    async def create_run(
        self, run: Run, requested: RunRequested, outbox: OutboxMessage, context: EventContext
    ) -> StoredEvent:
        return await self._store.create_run(run, self.scrub(requested), outbox, context)

    async def append(
        self,
        run_id: uuid.UUID,
        events: Sequence[Event],
        *,
        expected_seq: int,
        context: EventContext,
    ) -> list[StoredEvent]:
        return await self._store.append(
            run_id, [self.scrub(e) for e in events], expected_seq=expected_seq, context=context
        )

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
