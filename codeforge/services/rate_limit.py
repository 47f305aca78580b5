"""Rate limiting: one token bucket per key (an API key, a client address), in process.

Each key's bucket holds up to `burst` tokens and refills at `rate_per_minute`; a
request takes one token or is refused. Over any window of `w` seconds a key gets at
most `burst + rate_per_minute * w / 60` requests through.

The limit is per process: with several API processes each enforces it on its own.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from msgspec import Struct

# Refill is float arithmetic: a client that waits exactly `retry_after` may find its
# bucket at 0.9999999999 tokens. Granting that request costs at most this much of a
# token over the bucket's whole life, since the shortfall stays in the bucket as debt.
_EPSILON = 1e-9


class RateDecision(Struct, frozen=True, kw_only=True):
    """What one `take` decided, with what an HTTP layer needs for its headers."""

    allowed: bool
    # Whole tokens left after this request.
    remaining: int
    # Seconds until the bucket is full again.
    reset_after: float
    # Seconds until one token is available; 0 when allowed.
    retry_after: float


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class RateLimiter:
    """Token buckets by key, refilled continuously.

    - A new (or evicted) key starts with a full bucket of `burst` tokens.
    - `take` spends one token when at least one is available; a refused take spends
      nothing.
    - `reconfigure` changes the limits live: time already elapsed refills at the old
      rate, later time at the new one, and no bucket keeps more than the new `burst`.
    - At most `max_buckets` buckets are kept; beyond that the least recently used one
      is forgotten, so memory stays bounded whatever keys clients send. A forgotten key
      starts full again, so `max_buckets` should exceed the number of keys active within
      `burst / rate_per_minute` minutes.
    - `clock` returns seconds on a monotonic scale (a clock that steps back is treated as
      standing still).

    Not thread-safe: meant for one asyncio event loop, where `take` (which never awaits)
    is atomic.
    """

    def __init__(
        self,
        rate_per_minute: int,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = 100_000,
    ) -> None:
        if max_buckets < 1:
            raise ValueError(f"max_buckets must be at least 1, not {max_buckets}")
        self._check(rate_per_minute, burst)
        self._rate_per_minute = rate_per_minute
        self._burst = burst
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def rate_per_minute(self) -> int:
        return self._rate_per_minute

    @property
    def burst(self) -> int:
        return self._burst

    def __len__(self) -> int:
        """How many buckets are kept."""
        return len(self._buckets)

    def take(self, key: str) -> RateDecision:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self._burst), now)
            if len(self._buckets) > self._max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            self._refill(bucket, now)
        per_second = self._rate_per_minute / 60
        allowed = bucket.tokens >= 1 - _EPSILON
        if allowed:
            bucket.tokens -= 1
        return RateDecision(
            allowed=allowed,
            remaining=max(0, math.floor(bucket.tokens + _EPSILON)),
            reset_after=max(0.0, (self._burst - bucket.tokens) / per_second),
            retry_after=0.0 if allowed else (1 - bucket.tokens) / per_second,
        )

    def reconfigure(self, rate_per_minute: int, burst: int) -> None:
        """Apply new limits to every key from now on (e.g. on SIGHUP)."""
        self._check(rate_per_minute, burst)
        now = self._clock()
        for bucket in self._buckets.values():
            self._refill(bucket, now)
            bucket.tokens = min(bucket.tokens, float(burst))
        self._rate_per_minute = rate_per_minute
        self._burst = burst

    def _refill(self, bucket: _Bucket, now: float) -> None:
        elapsed = max(0.0, now - bucket.stamp)
        bucket.tokens = min(
            float(self._burst), bucket.tokens + elapsed * self._rate_per_minute / 60
        )
        bucket.stamp = max(bucket.stamp, now)

    @staticmethod
    def _check(rate_per_minute: int, burst: int) -> None:
        if rate_per_minute < 1:
            raise ValueError(f"rate_per_minute must be at least 1, not {rate_per_minute}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
