"""Identifiers: time-ordered UUIDs (version 7), so ids sort by creation.

Cursor pagination and "newest first" listings order by id alone; a v7 UUID's
first 48 bits are the creation time in milliseconds.
"""

from __future__ import annotations

import secrets
import time
import uuid

DEFAULT_TENANT_ID = uuid.UUID("00000000-0000-0000-0000-000000000000")


def new_id(now_ms: int | None = None) -> uuid.UUID:
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= secrets.randbits(12) << 64
    value |= 0b10 << 62  # RFC 4122 variant
    value |= secrets.randbits(62)
    return uuid.UUID(int=value)
