"""Idempotency records in a dict, with the PostgreSQL adapter's invariants.

Implements `codeforge.ports.idempotency.IdempotencyStore` for one process: every method
runs without awaiting, so on one event loop each is atomic, and of N concurrent claims
exactly one wins. Not thread-safe. The extra rules of `adapters.postgres.idempotency`
hold here too: `complete` raises `NotFound` without a claim in progress and `Conflict`
on a completed key; `release` only forgets an in-progress claim; NUL characters are
refused (`ValidationFailed`); times must be timezone-aware (`ValueError`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from codeforge.domain.errors import Conflict, NotFound, ValidationFailed
from codeforge.ports.idempotency import Claimed, IdempotencyRecord, StoredResponse


class MemoryIdempotencyStore:
    def __init__(self) -> None:
        self._records: dict[tuple[str, str], IdempotencyRecord] = {}

    async def claim(
        self, scope: str, key: str, fingerprint: str, now: datetime, ttl: timedelta
    ) -> Claimed | IdempotencyRecord:
        _check_text(scope=scope, key=key, fingerprint=fingerprint)
        _check_aware(now)
        existing = self._records.get((scope, key))
        if existing is not None and existing.expires_at > now:
            return _detached(existing)
        self._records[scope, key] = IdempotencyRecord(
            state="in_progress", fingerprint=fingerprint, expires_at=now + ttl
        )
        return Claimed()

    async def get(self, scope: str, key: str, now: datetime) -> IdempotencyRecord | None:
        _check_aware(now)
        _check_text(scope=scope, key=key)
        record = self._records.get((scope, key))
        return _detached(record) if record is not None and record.expires_at > now else None

    async def complete(self, scope: str, key: str, response: StoredResponse) -> None:
        _check_text(scope=scope, key=key)
        record = self._records.get((scope, key))
        if record is None:
            raise NotFound(f"idempotency key {key!r} has no claim in progress", field="key")
        if record.state == "completed":
            raise Conflict(f"idempotency key {key!r} is already completed", field="key")
        self._records[scope, key] = _detached(
            msgspec.structs.replace(record, state="completed", response=response)
        )

    async def release(self, scope: str, key: str) -> None:
        _check_text(scope=scope, key=key)
        record = self._records.get((scope, key))
        if record is not None and record.state == "in_progress":
            del self._records[scope, key]

    async def purge_expired(self, now: datetime) -> int:
        _check_aware(now)
        expired = [k for k, record in self._records.items() if record.expires_at <= now]
        for k in expired:
            del self._records[k]
        return len(expired)


def _detached(record: IdempotencyRecord) -> IdempotencyRecord:
    # Headers are a dict: hand out a copy, as a database read would, so no caller
    # can change what is stored.
    if record.response is None:
        return record
    response = record.response
    copy = StoredResponse(response.status_code, dict(response.headers), response.body)
    return msgspec.structs.replace(record, response=copy)


def _check_text(**values: str) -> None:
    # PostgreSQL text holds neither NUL nor lone surrogates; both adapters refuse them alike.
    for field, value in values.items():
        if "\x00" in value:
            raise ValidationFailed(f"{field} may not contain NUL characters", field=field)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationFailed(f"{field} is not valid Unicode text", field=field) from None


def _check_aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise ValueError("times given to the idempotency store must be timezone-aware")
