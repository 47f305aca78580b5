"""The readiness registry: every probe, each under a timeout."""

from __future__ import annotations

import asyncio

from codeforge.services.readiness import Readiness


class Probe:
    def __init__(self, name: str, delay: float = 0.0, error: str | None = None) -> None:
        self.name = name
        self.delay = delay
        self.error = error

    async def check(self) -> None:
        await asyncio.sleep(self.delay)
        if self.error:
            raise ConnectionError(self.error)


async def test_all_probes_up_means_ready() -> None:
    readiness = Readiness()
    readiness.register(Probe("database"))
    readiness.register(Probe("queue"))
    report = await readiness.report()
    assert report.ready
    assert sorted(report.checks) == ["database", "queue"]


async def test_one_failing_probe_makes_the_report_unavailable_with_its_error() -> None:
    readiness = Readiness()
    readiness.register(Probe("database"))
    readiness.register(Probe("queue", error="connection refused"))
    report = await readiness.report()
    assert report.status == "unavailable"
    assert report.checks["database"].status == "up"
    assert report.checks["queue"].error == "ConnectionError: connection refused"


async def test_a_hanging_probe_is_cut_off_at_the_timeout_and_probes_run_concurrently() -> None:
    readiness = Readiness(timeout=0.2)
    readiness.register(Probe("llm", delay=5))
    readiness.register(Probe("slow-but-fine", delay=0.15))
    loop = asyncio.get_running_loop()
    started = loop.time()
    report = await readiness.report()
    assert loop.time() - started < 1.0
    assert report.checks["llm"].status == "down"
    assert report.checks["llm"].error == "no answer within 0.2s"
    assert report.checks["slow-but-fine"].status == "up"


async def test_no_probes_is_ready_and_unregister_removes_one() -> None:
    readiness = Readiness()
    readiness.register(Probe("queue", error="down"))
    readiness.unregister("queue")
    assert (await readiness.report()).ready
