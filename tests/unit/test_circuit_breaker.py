"""The circuit breaker: closed, open, half-open, on an injected clock."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from codeforge.domain.errors import ValidationFailed
from codeforge.ports.errors import DependencyUnavailable
from codeforge.services.circuit_breaker import BreakerState, CircuitBreaker, CircuitOpen

pytestmark = pytest.mark.unit

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Dependency:
    """A dependency whose next answers are scripted: True succeeds, False is an outage."""

    def __init__(self) -> None:
        self.calls = 0

    async def answer(self, ok: bool = True) -> str:
        self.calls += 1
        if not ok:
            raise DependencyUnavailable("the queue is out of reach")
        return "ok"


def breaker(clock: FakeClock, threshold: int = 3, reset: float = 30.0) -> CircuitBreaker:
    return CircuitBreaker("queue", failure_threshold=threshold, reset_timeout=reset, clock=clock)


async def fail(b: CircuitBreaker, dependency: Dependency, times: int) -> None:
    for _ in range(times):
        with pytest.raises(DependencyUnavailable):
            await b.call(dependency.answer, False)


async def test_a_new_breaker_is_closed_and_passes_calls_and_their_results_through() -> None:
    b, dependency = breaker(FakeClock()), Dependency()

    assert await b.call(dependency.answer) == "ok"

    assert b.snapshot() == BreakerState(
        name="queue",
        state="closed",
        consecutive_failures=0,
        failure_threshold=3,
        reset_timeout_s=30.0,
    )


async def test_the_threshold_of_failures_in_a_row_opens_it_and_then_nothing_is_called() -> None:
    clock, dependency = FakeClock(), Dependency()
    b = breaker(clock)
    await fail(b, dependency, 2)
    assert b.state == "closed"

    await fail(b, dependency, 1)

    assert b.state == "open"
    with pytest.raises(CircuitOpen) as raised:
        await b.call(dependency.answer)
    assert dependency.calls == 3
    assert isinstance(raised.value, DependencyUnavailable)
    assert raised.value.retry_at == START + timedelta(seconds=30)
    assert "the queue is out of reach" in str(raised.value)
    state = b.snapshot()
    assert (state.state, state.consecutive_failures) == ("open", 3)
    assert (state.opened_at, state.retry_at) == (START, START + timedelta(seconds=30))
    assert state.last_error == "DependencyUnavailable: the queue is out of reach"


async def test_a_success_resets_the_count_of_failures_in_a_row() -> None:
    b, dependency = breaker(FakeClock()), Dependency()
    await fail(b, dependency, 2)
    await b.call(dependency.answer)
    await fail(b, dependency, 2)

    assert b.snapshot().consecutive_failures == 2
    assert b.state == "closed"


async def test_after_the_reset_timeout_one_trial_call_goes_through_and_its_success_closes_it() -> (
    None
):
    clock, dependency = FakeClock(), Dependency()
    b = breaker(clock)
    await fail(b, dependency, 3)
    clock.advance(29.9)
    assert b.state == "open"
    clock.advance(0.1)
    assert b.state == "half_open"

    assert await b.call(dependency.answer) == "ok"

    assert b.snapshot().state == "closed"
    assert b.snapshot().consecutive_failures == 0
    assert b.snapshot().opened_at is None


async def test_a_failed_trial_opens_it_again_for_a_whole_reset_timeout() -> None:
    clock, dependency = FakeClock(), Dependency()
    b = breaker(clock)
    await fail(b, dependency, 3)
    clock.advance(30)

    await fail(b, dependency, 1)

    assert b.state == "open"
    assert b.snapshot().retry_at == clock.now + timedelta(seconds=30)
    clock.advance(29)
    with pytest.raises(CircuitOpen):
        await b.call(dependency.answer)
    assert dependency.calls == 4


async def test_while_the_trial_call_runs_every_other_call_is_refused() -> None:
    clock, dependency = FakeClock(), Dependency()
    b = breaker(clock)
    await fail(b, dependency, 3)
    clock.advance(30)
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "slow ok"

    trial = asyncio.create_task(b.call(slow))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpen) as raised:
        await b.call(dependency.answer)
    release.set()

    assert await trial == "slow ok"
    assert raised.value.retry_at is None
    assert b.state == "closed"
    assert dependency.calls == 3


async def test_a_cancelled_trial_counts_as_nothing_and_frees_the_trial() -> None:
    clock, dependency = FakeClock(), Dependency()
    b = breaker(clock)
    await fail(b, dependency, 3)
    clock.advance(30)

    trial = asyncio.create_task(b.call(asyncio.sleep, 60))
    await asyncio.sleep(0)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial

    assert b.state == "half_open"
    assert await b.call(dependency.answer) == "ok"
    assert b.state == "closed"


async def test_errors_that_are_answers_from_the_dependency_pass_through_without_counting() -> None:
    b, dependency = breaker(FakeClock(), threshold=1), Dependency()

    async def rejects() -> None:
        raise ValidationFailed("bad subject", field="subject")

    for _ in range(3):
        with pytest.raises(ValidationFailed):
            await b.call(rejects)

    assert b.state == "closed"
    await fail(b, dependency, 1)
    assert b.state == "open"


async def test_timeouts_count_as_failures_and_a_custom_rule_can_decide_otherwise() -> None:
    clock = FakeClock()

    async def times_out() -> None:
        raise TimeoutError

    default = CircuitBreaker("llm", failure_threshold=1, clock=clock)
    lenient = CircuitBreaker("llm", failure_threshold=1, clock=clock, counts=lambda e: False)
    for b in (default, lenient):
        with pytest.raises(TimeoutError):
            await b.call(times_out)

    assert (default.state, lenient.state) == ("open", "closed")


async def test_a_call_that_began_before_the_circuit_opened_does_not_close_it_by_succeeding() -> (
    None
):
    b, dependency = breaker(FakeClock(), threshold=1), Dependency()
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "late"

    late = asyncio.create_task(b.call(slow))
    await asyncio.sleep(0)
    await fail(b, dependency, 1)
    release.set()

    assert await late == "late"
    assert b.state == "open"


async def test_every_change_of_state_is_logged_with_the_breakers_name() -> None:
    clock, dependency = FakeClock(), Dependency()
    b = breaker(clock, threshold=1)

    with capture_logs() as logs:
        await fail(b, dependency, 1)
        clock.advance(30)
        await b.call(dependency.answer)

    changes = [e for e in logs if e["event"] == "circuit breaker changed state"]
    assert [(e["from_state"], e["to_state"]) for e in changes] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert all(e["breaker"] == "queue" for e in changes)
    assert changes[0]["log_level"] == "warning"
    assert changes[0]["retry_at"] == (START + timedelta(seconds=30)).isoformat()


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker("x", failure_threshold=0)
    with pytest.raises(ValueError, match="reset_timeout"):
        CircuitBreaker("x", reset_timeout=0)


@given(st.lists(st.booleans(), max_size=40), st.integers(min_value=1, max_value=6))
def test_without_time_passing_it_opens_exactly_at_the_first_run_of_threshold_failures(
    outcomes: list[bool], threshold: int
) -> None:
    b, dependency = breaker(FakeClock(), threshold=threshold), Dependency()

    async def play() -> list[bool]:
        called: list[bool] = []
        for ok in outcomes:
            before = dependency.calls
            with contextlib.suppress(DependencyUnavailable):
                await b.call(dependency.answer, ok)
            called.append(dependency.calls > before)
        return called

    called = asyncio.run(play())

    streak, opened_at = 0, None
    for i, ok in enumerate(outcomes):
        streak = 0 if ok else streak + 1
        if streak == threshold:
            opened_at = i
            break
    expected = [opened_at is None or i <= opened_at for i in range(len(outcomes))]
    assert called == expected
    assert b.state == ("closed" if opened_at is None else "open")
