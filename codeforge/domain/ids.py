"""Identifiers: time-ordered UUIDs (version 7), so ids sort by creation.

Cursor pagination and "oldest first" listings order by id alone. The first 48
bits are the creation time in milliseconds; the next 12 are a counter within
the millisecond (RFC 9562, method 1), so ids made in the same millisecond still
sort in the order they were made; the last 62 bits are random.
"""

from __future__ import annotations

import secrets
import time
import uuid

DEFAULT_TENANT_ID = uuid.UUID("00000000-0000-0000-0000-000000000000")

_COUNTER_MAX = 0xFFF


class IdGenerator:
    def __init__(self) -> None:
        self._last_ms = 0
        self._counter = 0

    def __call__(self, now_ms: int | None = None) -> uuid.UUID:
        ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        if ms <= self._last_ms:
            # Same millisecond (or the clock stepped back): count on from the last id.
            ms = self._last_ms
            self._counter += 1
            if self._counter > _COUNTER_MAX:
                ms += 1
                self._counter = 0
        else:
            # A random start leaves room to count and keeps ids hard to guess.
            self._counter = secrets.randbits(10)
        self._last_ms = ms
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76  # version 7
        value |= self._counter << 64
        value |= 0b10 << 62  # RFC 9562 variant
        value |= secrets.randbits(62)
        return uuid.UUID(int=value)


new_id = IdGenerator()
