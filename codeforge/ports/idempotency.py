"""Idempotency records: a retried unsafe request replays the first response.

Contract (one contract suite checks every adapter):

- `claim(scope, key, fingerprint, now, ttl)` atomically either claims the key
  (returns `Claimed`) or returns the existing record. Of N concurrent claims of
  one key, exactly one gets `Claimed`. `scope` is the tenant plus the caller's
  API key id, so two callers never share a key.
- An existing record with another fingerprint (same key, different method,
  path or body) is returned as is; the caller decides (HTTP: 422).
- `complete` stores the response of a claimed key; `release` forgets a claim
  whose request failed unexpectedly, so a retry can run it again.
- Records expire after their TTL (24 h by default): an expired key can be
  claimed again; `purge_expired` deletes them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, Protocol

from msgspec import Struct


class StoredResponse(Struct, frozen=True):
    status_code: int
    headers: dict[str, str]
    body: bytes


class IdempotencyRecord(Struct, frozen=True, kw_only=True):
    state: Literal["in_progress", "completed"]
    fingerprint: str
    response: StoredResponse | None = None
    expires_at: datetime


class Claimed(Struct, frozen=True):
    """This caller owns the key and must `complete` or `release` it."""


class IdempotencyStore(Protocol):
    async def claim(
        self, scope: str, key: str, fingerprint: str, now: datetime, ttl: timedelta
    ) -> Claimed | IdempotencyRecord: ...

    async def get(self, scope: str, key: str, now: datetime) -> IdempotencyRecord | None: ...

    async def complete(self, scope: str, key: str, response: StoredResponse) -> None: ...

    async def release(self, scope: str, key: str) -> None: ...

    async def purge_expired(self, now: datetime) -> int: ...
