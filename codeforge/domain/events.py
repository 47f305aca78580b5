"""The run event catalogue: the log that is the source of truth.

Events are past tense, frozen, tagged msgspec Structs. The tag (`type`) and
`SCHEMA_VERSION` are stored beside the payload. Stored events live forever, so:
a new field always has a default; a change that a default cannot express bumps
`SCHEMA_VERSION` and adds an `upcast` step, and `decode_event` upgrades old
payloads on read. Each issue adds its own types here (ARCHITECTURE.md, "Runs,
events and the feed").
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import msgspec
from msgspec import Struct

from codeforge.domain.limits import Limits


class Event(Struct, frozen=True, kw_only=True, tag_field="type", tag=True):
    SCHEMA_VERSION: ClassVar[int] = 1

    @classmethod
    def upcast(cls, payload: dict[str, Any], version: int) -> dict[str, Any]:
        """Turn a payload stored at `version` into the current shape (override per type)."""
        return payload


class RunRequested(Event, frozen=True, kw_only=True):
    project_id: uuid.UUID
    task_id: uuid.UUID
    agent_id: uuid.UUID
    mode: str
    deliver: str
    # The effective limits: the tightest of tenant, project, agent and request.
    limits: Limits = Limits()
    policy_overrides: dict[str, Any] = {}
    requested_by: uuid.UUID | None = None


class RunStarted(Event, frozen=True, kw_only=True):
    worker: str
    lease_expires_at: datetime


class HeartbeatRecorded(Event, frozen=True, kw_only=True):
    worker: str
    lease_expires_at: datetime


class RunSuspended(Event, frozen=True, kw_only=True):
    reason: str


class RunResumed(Event, frozen=True, kw_only=True):
    worker: str
    lease_expires_at: datetime


class RunCompleted(Event, frozen=True, kw_only=True):
    summary: str = ""
    # What was delivered: a patch, a commit sha, a branch or a pull request URL.
    artifact: dict[str, Any] = {}
    cost_usd: Decimal = Decimal(0)


class RunFailed(Event, frozen=True, kw_only=True):
    reason: str
    detail: str = ""


class RunCancelled(Event, frozen=True, kw_only=True):
    reason: str = "cancelled by user"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        RunRequested,
        RunStarted,
        HeartbeatRecorded,
        RunSuspended,
        RunResumed,
        RunCompleted,
        RunFailed,
        RunCancelled,
    )
}


class UnknownEventType(Exception):
    pass


def register_event_type(cls: type[Event]) -> type[Event]:
    """For event types defined outside this module (later issues)."""
    EVENT_TYPES[cls.__name__] = cls
    return cls


def event_type_name(event: Event) -> str:
    return type(event).__name__


def encode_payload(event: Event) -> dict[str, Any]:
    payload: dict[str, Any] = msgspec.to_builtins(event)
    payload.pop("type", None)
    return payload


def decode_event(type_name: str, version: int, payload: dict[str, Any]) -> Event:
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise UnknownEventType(type_name)
    if version < cls.SCHEMA_VERSION:
        payload = cls.upcast(dict(payload), version)
    body = {k: v for k, v in payload.items() if k != "type"}
    return msgspec.convert(body, cls, strict=False)


class StoredEvent(Struct, frozen=True, kw_only=True):
    """An event as read back from the log, with its envelope."""

    run_id: uuid.UUID
    seq: int
    # The log's global order across runs (for paging events by task or agent).
    position: int = 0
    type: str
    schema_version: int
    event: Event
    tenant_id: uuid.UUID
    task_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    request_id: str | None = None
    created_at: datetime
