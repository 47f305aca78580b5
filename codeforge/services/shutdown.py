"""Graceful shutdown as an ordered list of phases, each bounded by a timeout.

The order is the contract (ARCHITECTURE.md, "Workers, leases, control"):
stop accepting HTTP -> stop subscribers and suspend running work (recorded,
resumable: a deploy never ends a paid run) -> drain the queue -> close the pool.
Parts of the system register their actions into a phase; a phase runs its
actions in registration order. An action that fails or overruns is logged and
the sequence goes on, because stopping half-way would leave the pool open and
the process hanging.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum

import structlog
from msgspec import Struct

Action = Callable[[], Awaitable[None]]

log = structlog.get_logger("codeforge.shutdown")


class Phase(StrEnum):
    STOP_ACCEPTING_HTTP = "stop_accepting_http"
    SUSPEND_WORK = "suspend_work"
    DRAIN_QUEUE = "drain_queue"
    CLOSE_POOL = "close_pool"


PHASE_ORDER = (Phase.STOP_ACCEPTING_HTTP, Phase.SUSPEND_WORK, Phase.DRAIN_QUEUE, Phase.CLOSE_POOL)


class PhaseOutcome(Struct, frozen=True):
    phase: Phase
    actions: list[str]
    duration_ms: float
    failures: list[str]


class ShutdownSequence:
    """Runs registered shutdown actions phase by phase, exactly once."""

    def __init__(self, timeouts: dict[Phase, float]) -> None:
        self._timeouts = timeouts
        self._actions: dict[Phase, list[tuple[str, Action]]] = {p: [] for p in PHASE_ORDER}
        self._outcomes: list[PhaseOutcome] | None = None
        self._lock = asyncio.Lock()

    def register(self, phase: Phase, name: str, action: Action) -> None:
        self._actions[phase].append((name, action))

    @property
    def done(self) -> bool:
        return self._outcomes is not None

    async def run(self, reason: str = "requested") -> list[PhaseOutcome]:
        """Run every phase in order; later calls return the first run's outcomes."""
        async with self._lock:
            if self._outcomes is None:
                log.info("shutdown started", reason=reason)
                self._outcomes = [await self._run_phase(p) for p in PHASE_ORDER]
                log.info("shutdown finished")
            return self._outcomes

    async def _run_phase(self, phase: Phase) -> PhaseOutcome:
        actions = self._actions[phase]
        timeout = self._timeouts.get(phase, 10.0)
        started = time.perf_counter()
        log.info("shutdown phase started", phase=phase.value, actions=[n for n, _ in actions])
        failures: list[str] = []
        for name, action in actions:
            try:
                await asyncio.wait_for(action(), timeout)
            except TimeoutError:
                failures.append(f"{name}: exceeded {timeout:g}s")
            except Exception as e:  # keep going: the remaining phases still matter
                failures.append(f"{name}: {type(e).__name__}: {e}")
        duration = round((time.perf_counter() - started) * 1000, 1)
        if failures:
            log.error("shutdown phase incomplete", phase=phase.value, failures=failures)
        log.info("shutdown phase finished", phase=phase.value, duration_ms=duration)
        return PhaseOutcome(
            phase=phase, actions=[n for n, _ in actions], duration_ms=duration, failures=failures
        )
