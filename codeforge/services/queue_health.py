"""Readiness of the queue: connected, and its publish breaker not open."""

from __future__ import annotations

from codeforge.ports.queue import Queue
from codeforge.services.circuit_breaker import CircuitBreaker


class QueueProbe:
    name = "queue"

    def __init__(self, queue: Queue, breaker: CircuitBreaker) -> None:
        self._queue = queue
        self._breaker = breaker

    async def check(self) -> str:
        if not self._queue.is_connected():
            raise ConnectionError("the queue is not connected")
        state = self._breaker.snapshot()
        if state.state == "open":
            raise ConnectionError(
                f"publishing is paused by the circuit breaker until {state.retry_at} "
                f"(last error: {state.last_error})"
            )
        failures = (
            f", {state.consecutive_failures} recent failures" if state.consecutive_failures else ""
        )
        return f"connected; publish breaker {state.state}{failures}"
