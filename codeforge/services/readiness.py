"""Readiness: every registered probe, run at once, each under a timeout."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from msgspec import Struct

from codeforge.ports.readiness import ReadinessProbe

Status = Literal["up", "down"]


class ProbeResult(Struct, frozen=True):
    status: Status
    latency_ms: float
    error: str | None = None
    detail: str | None = None


class ReadinessReport(Struct, frozen=True):
    status: Literal["ready", "unavailable"]
    checks: dict[str, ProbeResult]
    # Advisory checks that are down: shown, but they do not make the process unready
    # (a model endpoint that is down stops the runs that use it, not the service).
    degraded: list[str] = []

    @property
    def ready(self) -> bool:
        return self.status == "ready"


class Readiness:
    """The registry behind `/health/ready`.

    Later parts of the system (queue, LLM endpoint, sandbox) register their own
    probes at start. A probe that raises or overruns `timeout` is reported `down`
    with its error; one down probe makes the whole report `unavailable` — unless it
    was registered as advisory (`critical=False`): then it is listed in `degraded`
    and the report stays `ready`.
    """

    def __init__(self, timeout: float = 2.0) -> None:
        self._probes: dict[str, ReadinessProbe] = {}
        self._advisory: set[str] = set()
        self._timeout = timeout

    def register(self, probe: ReadinessProbe, *, critical: bool = True) -> None:
        self._probes[probe.name] = probe
        if critical:
            self._advisory.discard(probe.name)
        else:
            self._advisory.add(probe.name)

    def unregister(self, name: str) -> None:
        self._probes.pop(name, None)
        self._advisory.discard(name)

    @property
    def names(self) -> list[str]:
        return sorted(self._probes)

    async def report(self) -> ReadinessReport:
        names = self.names
        results = await asyncio.gather(*(self._run(self._probes[n]) for n in names))
        checks = dict(zip(names, results, strict=True))
        down = [n for n, r in checks.items() if r.status != "up"]
        ready = all(n in self._advisory for n in down)
        return ReadinessReport(
            status="ready" if ready else "unavailable",
            checks=checks,
            degraded=[n for n in down if n in self._advisory],
        )

    async def _run(self, probe: ReadinessProbe) -> ProbeResult:
        started = time.perf_counter()
        detail = None
        try:
            detail = await asyncio.wait_for(probe.check(), self._timeout)
        except TimeoutError:
            error: str | None = f"no answer within {self._timeout:g}s"
        except Exception as e:  # a probe's failure is data for the report, not a crash
            error = f"{type(e).__name__}: {e}".strip().rstrip(":")
        else:
            error = None
        latency = round((time.perf_counter() - started) * 1000, 2)
        return ProbeResult(
            status="down" if error else "up",
            latency_ms=latency,
            error=error,
            detail=detail if isinstance(detail, str) else None,
        )
