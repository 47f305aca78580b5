"""Turning stored events into response bodies."""

from __future__ import annotations

from codeforge.domain.events import StoredEvent, encode_payload
from codeforge.http.api.schemas import EventList, EventView


def event_view(stored: StoredEvent) -> EventView:
    return EventView(
        run_id=stored.run_id,
        seq=stored.seq,
        position=stored.position,
        type=stored.type,
        schema_version=stored.schema_version,
        data=encode_payload(stored.event),
        task_id=stored.task_id,
        agent_id=stored.agent_id,
        request_id=stored.request_id,
        created_at=stored.created_at,
    )


def event_list(stored: list[StoredEvent], *, by_position: bool = False) -> EventList:
    """`last` is what to pass as `after` next: a seq for one run, a position across runs."""
    last = None
    if stored:
        last = stored[-1].position if by_position else stored[-1].seq
    return EventList([event_view(e) for e in stored], last)
