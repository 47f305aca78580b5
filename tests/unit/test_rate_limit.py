"""The token-bucket rate limiter, driven by a clock the tests move by hand."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeforge.services.rate_limit import RateDecision, RateLimiter

pytestmark = pytest.mark.unit


class FakeClock:
    """Seconds on a monotonic scale that only move when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def take_until_refused(limiter: RateLimiter, key: str) -> int:
    allowed = 0
    while limiter.take(key).allowed:
        allowed += 1
    return allowed


def test_a_new_key_gets_its_burst_at_once_then_is_refused() -> None:
    limiter = RateLimiter(rate_per_minute=60, burst=3, clock=FakeClock())

    decisions = [limiter.take("key-a") for _ in range(4)]

    assert decisions == [
        RateDecision(allowed=True, remaining=2, reset_after=1.0, retry_after=0.0),
        RateDecision(allowed=True, remaining=1, reset_after=2.0, retry_after=0.0),
        RateDecision(allowed=True, remaining=0, reset_after=3.0, retry_after=0.0),
        RateDecision(allowed=False, remaining=0, reset_after=3.0, retry_after=1.0),
    ]


def test_tokens_come_back_at_the_configured_rate_up_to_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_minute=120, burst=4, clock=clock)
    take_until_refused(limiter, "k")

    clock.advance(0.25)
    assert not limiter.take("k").allowed
    clock.advance(0.25)
    assert limiter.take("k").allowed
    assert not limiter.take("k").allowed

    clock.advance(3600)
    assert take_until_refused(limiter, "k") == 4


def test_waiting_exactly_retry_after_is_enough_and_a_little_less_is_not() -> None:
    clock = FakeClock(start=12_345.678)
    # 7 a minute: one token every 8.571428... s, which no float holds exactly.
    limiter = RateLimiter(rate_per_minute=7, burst=2, clock=clock)
    take_until_refused(limiter, "k")
    clock.advance(3.0)

    refused = limiter.take("k")

    assert not refused.allowed
    assert refused.retry_after == pytest.approx(60 / 7 - 3.0)
    clock.advance(refused.retry_after - 0.001)
    assert not limiter.take("k").allowed
    clock.advance(0.001)
    assert limiter.take("k").allowed


def test_refused_takes_spend_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_minute=60, burst=1, clock=clock)
    limiter.take("k")

    for _ in range(100):
        assert not limiter.take("k").allowed
    clock.advance(1.0)

    assert limiter.take("k").allowed


def test_reset_after_is_the_time_until_the_bucket_is_full_again() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_minute=30, burst=5, clock=clock)
    for _ in range(3):
        limiter.take("k")
    clock.advance(2.0)

    decision = limiter.take("k")

    # 5 - 3 + 1 (refilled) - 1 (this take) = 2 left; 3 missing at one per 2 s.
    assert decision == RateDecision(allowed=True, remaining=2, reset_after=6.0, retry_after=0.0)
    clock.advance(6.0)
    assert limiter.take("k").remaining == 4


def test_keys_have_independent_buckets() -> None:
    limiter = RateLimiter(rate_per_minute=60, burst=2, clock=FakeClock())

    assert take_until_refused(limiter, "alice") == 2

    assert limiter.take("bob") == RateDecision(
        allowed=True, remaining=1, reset_after=1.0, retry_after=0.0
    )
    assert not limiter.take("alice").allowed


def test_reconfiguring_to_a_smaller_burst_caps_existing_buckets() -> None:
    limiter = RateLimiter(rate_per_minute=60, burst=10, clock=FakeClock())
    limiter.take("k")

    limiter.reconfigure(rate_per_minute=60, burst=2)

    assert (limiter.rate_per_minute, limiter.burst) == (60, 2)
    assert take_until_refused(limiter, "k") == 2
    assert take_until_refused(limiter, "new") == 2


def test_reconfiguring_to_a_larger_burst_does_not_refill_existing_buckets() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_minute=60, burst=2, clock=clock)
    take_until_refused(limiter, "k")

    limiter.reconfigure(rate_per_minute=60, burst=10)

    assert not limiter.take("k").allowed
    assert take_until_refused(limiter, "new") == 10
    clock.advance(60)
    assert take_until_refused(limiter, "k") == 10


def test_time_before_a_reconfigure_refills_at_the_old_rate_and_after_it_at_the_new() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_minute=60, burst=1, clock=clock)
    limiter.take("k")
    clock.advance(0.5)  # half a token at one a second

    limiter.reconfigure(rate_per_minute=240, burst=1)
    clock.advance(0.125)  # half a token at four a second

    assert limiter.take("k").allowed


def test_buckets_beyond_max_buckets_are_forgotten_least_recently_used_first() -> None:
    limiter = RateLimiter(rate_per_minute=1, burst=1, clock=FakeClock(), max_buckets=3)
    for key in ("a", "b", "c"):
        limiter.take(key)
    limiter.take("a")  # a is now the most recently used; b the least

    limiter.take("d")

    assert len(limiter) == 3
    assert limiter.take("b").allowed  # forgotten, so full again (and c is now forgotten)
    assert not limiter.take("a").allowed
    assert not limiter.take("d").allowed
    assert len(limiter) == 3


def test_memory_stays_bounded_whatever_keys_arrive() -> None:
    limiter = RateLimiter(rate_per_minute=60, burst=5, clock=FakeClock(), max_buckets=100)

    for i in range(10_000):
        limiter.take(f"client-{i}")

    assert len(limiter) == 100


@pytest.mark.parametrize(
    ("rate_per_minute", "burst", "max_buckets"), [(0, 1, 1), (1, 0, 1), (1, 1, 0), (-5, 3, 10)]
)
def test_limits_below_one_are_refused(rate_per_minute: int, burst: int, max_buckets: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(rate_per_minute, burst, max_buckets=max_buckets)


def test_reconfigure_refuses_bad_limits_and_keeps_the_old_ones() -> None:
    limiter = RateLimiter(rate_per_minute=60, burst=3, clock=FakeClock())

    with pytest.raises(ValueError, match="burst"):
        limiter.reconfigure(rate_per_minute=60, burst=0)

    assert (limiter.rate_per_minute, limiter.burst) == (60, 3)
    assert take_until_refused(limiter, "k") == 3


def test_a_clock_that_steps_back_refills_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_minute=60, burst=1, clock=clock)
    limiter.take("k")

    clock.advance(-30)
    assert not limiter.take("k").allowed
    clock.advance(30.5)
    assert not limiter.take("k").allowed
    clock.advance(0.5)
    assert limiter.take("k").allowed


STEPS = st.lists(
    st.tuples(
        st.one_of(st.just(0.0), st.floats(min_value=0, max_value=5, allow_nan=False)),
        st.integers(min_value=0, max_value=4),
    ),
    max_size=60,
)


@given(
    rate_per_minute=st.integers(min_value=1, max_value=600),
    burst=st.integers(min_value=1, max_value=10),
    steps=STEPS,
)
def test_no_window_ever_lets_more_than_burst_plus_rate_times_its_length_through(
    rate_per_minute: int, burst: int, steps: list[tuple[float, int]]
) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_minute, burst, clock=clock)
    allowed_at: list[float] = []
    for advance, takes in steps:
        clock.advance(advance)
        for _ in range(takes):
            decision = limiter.take("k")
            assert 0 <= decision.remaining <= burst
            assert (decision.retry_after == 0) == decision.allowed
            if decision.allowed:
                allowed_at.append(clock.now)

    # The busiest windows start and end at an allowed take.
    for first in range(len(allowed_at)):
        for last in range(first, len(allowed_at)):
            window = allowed_at[last] - allowed_at[first]
            assert last - first + 1 <= burst + rate_per_minute * window / 60 + 1e-6


@given(
    rate_per_minute=st.integers(min_value=1, max_value=600),
    burst=st.integers(min_value=1, max_value=10),
    waits=st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), max_size=30),
)
def test_a_client_that_honours_retry_after_is_always_let_through_next(
    rate_per_minute: int, burst: int, waits: list[float]
) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_minute, burst, clock=clock)
    for wait in waits:
        clock.advance(wait)
        decision = limiter.take("k")
        if not decision.allowed:
            clock.advance(decision.retry_after)
            assert limiter.take("k").allowed
