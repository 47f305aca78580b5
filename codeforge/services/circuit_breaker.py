"""A circuit breaker: stop calling a dependency that keeps failing, and try again later.

    closed     calls go through; `failure_threshold` failures in a row open the circuit
    open       calls fail at once with `CircuitOpen`, until `reset_timeout` seconds have
               passed since the circuit opened
    half_open  one trial call goes through (calls meanwhile fail at once); if it succeeds
               the circuit closes, if it fails the circuit opens for another `reset_timeout`

Only failures that say something about the dependency count — by default
`DependencyUnavailable` (what adapters raise when a database, queue or model endpoint is out
of reach) and `TimeoutError`. Any other outcome, an exception such as a validation error
included, is an answer from the dependency and counts as a success; the exception still
reaches the caller unchanged. A cancelled call counts as nothing, and neither does a call
that began before the breaker last changed state (its outcome is old news).

It wraps queue publishes now and LLM calls later. `snapshot()` is the state for
`/health/ready`; every change of state is logged ("circuit breaker changed state").
Single event loop, no locks: state only changes between awaits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Literal, ParamSpec, TypeVar

import structlog
from msgspec import Struct

from codeforge.ports.errors import DependencyUnavailable
from codeforge.services.clock import Clock, utc_now

__all__ = ["BreakerState", "CircuitBreaker", "CircuitOpen", "State", "is_outage"]

log = structlog.get_logger("codeforge.circuit_breaker")

State = Literal["closed", "open", "half_open"]
P = ParamSpec("P")
T = TypeVar("T")


def is_outage(error: BaseException) -> bool:
    """The default test of whether an error counts against the dependency."""
    return isinstance(error, DependencyUnavailable | TimeoutError) and not isinstance(
        error, CircuitOpen
    )


class BreakerState(Struct, frozen=True, kw_only=True):
    """What `/health/ready` and the dashboard show of one breaker."""

    name: str
    state: State
    consecutive_failures: int
    failure_threshold: int
    reset_timeout_s: float
    opened_at: datetime | None = None
    retry_at: datetime | None = None
    last_error: str | None = None


class CircuitOpen(DependencyUnavailable):
    """The breaker is open (or half-open with its trial call in flight): nothing was called."""

    def __init__(self, name: str, retry_at: datetime | None, last_error: str | None) -> None:
        self.name = name
        self.retry_at = retry_at
        self.last_error = last_error
        when = f"; next try after {retry_at.isoformat()}" if retry_at else "; a trial call is on"
        cause = f" (last error: {last_error})" if last_error else ""
        super().__init__(f"{name} is unavailable: its circuit breaker is open{cause}{when}")


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Clock = utc_now,
        counts: Callable[[BaseException], bool] = is_outage,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_timeout <= 0:
            raise ValueError("reset_timeout must be positive")
        self.name = name
        self._threshold = failure_threshold
        self._reset = timedelta(seconds=reset_timeout)
        self._clock = clock
        self._counts = counts
        self._state: State = "closed"
        self._failures = 0
        self._opened_at: datetime | None = None
        self._last_error: str | None = None
        self._trial_running = False
        self._generation = 0

    @property
    def state(self) -> State:
        self._advance()
        return self._state

    def snapshot(self) -> BreakerState:
        self._advance()
        return BreakerState(
            name=self.name,
            state=self._state,
            consecutive_failures=self._failures,
            failure_threshold=self._threshold,
            reset_timeout_s=self._reset.total_seconds(),
            opened_at=self._opened_at,
            retry_at=self._retry_at(),
            last_error=self._last_error,
        )

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """`await fn(*args, **kwargs)` unless the circuit is open; then raise CircuitOpen."""
        self._advance()
        trial = False
        if self._state == "open" or (self._state == "half_open" and self._trial_running):
            raise CircuitOpen(self.name, self._retry_at(), self._last_error)
        if self._state == "half_open":
            trial = self._trial_running = True
        generation = self._generation
        try:
            result = await fn(*args, **kwargs)
        except Exception as e:
            # A call that began before the last change of state no longer says anything.
            if generation == self._generation:
                if self._counts(e):
                    self._failed(e)
                else:
                    self._succeeded()
            raise
        except BaseException:
            # Cancelled: says nothing about the dependency.
            raise
        else:
            if generation == self._generation:
                self._succeeded()
            return result
        finally:
            if trial:
                self._trial_running = False

    # -- transitions ------------------------------------------------------------------------

    def _retry_at(self) -> datetime | None:
        if self._state != "open" or self._opened_at is None:
            return None
        return self._opened_at + self._reset

    def _advance(self) -> None:
        retry_at = self._retry_at()
        if retry_at is not None and self._clock() >= retry_at:
            self._move("half_open")

    def _succeeded(self) -> None:
        self._failures = 0
        if self._state != "closed":
            self._opened_at = None
            self._move("closed")

    def _failed(self, error: BaseException) -> None:
        self._failures += 1
        self._last_error = f"{type(error).__name__}: {error}".rstrip(": ")
        if self._state == "half_open" or (
            self._state == "closed" and self._failures >= self._threshold
        ):
            self._opened_at = self._clock()
            self._move("open")

    def _move(self, to: State) -> None:
        before, self._state = self._state, to
        self._generation += 1
        retry_at = self._retry_at()
        level = log.warning if to == "open" else log.info
        level(
            "circuit breaker changed state",
            breaker=self.name,
            from_state=before,
            to_state=to,
            consecutive_failures=self._failures,
            retry_at=retry_at.isoformat() if retry_at else None,
            last_error=self._last_error,
        )
