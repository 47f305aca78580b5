"""Advisory readiness probes: shown when down, without making the process unready."""

from __future__ import annotations

from codeforge.services.readiness import Readiness


class Probe:
    def __init__(self, name: str, error: str | None = None) -> None:
        self.name = name
        self.error = error

    async def check(self) -> str:
        if self.error:
            raise ConnectionError(self.error)
        return "fine"


async def test_an_advisory_probe_that_is_down_is_degraded_not_unavailable() -> None:
    readiness = Readiness()
    readiness.register(Probe("database"))
    readiness.register(Probe("models", error="gpt-4o: refused"), critical=False)

    report = await readiness.report()

    assert report.status == "ready"
    assert report.degraded == ["models"]
    assert report.checks["models"].status == "down"
    assert report.checks["models"].error == "ConnectionError: gpt-4o: refused"


async def test_a_critical_probe_down_still_makes_it_unavailable_beside_an_advisory_one() -> None:
    readiness = Readiness()
    readiness.register(Probe("database", error="gone"))
    readiness.register(Probe("models", error="down"), critical=False)

    report = await readiness.report()

    assert report.status == "unavailable"
    assert report.degraded == ["models"]


async def test_registering_again_as_critical_makes_a_probe_count_and_unregister_forgets() -> None:
    readiness = Readiness()
    readiness.register(Probe("models", error="down"), critical=False)
    readiness.register(Probe("models", error="down"))
    assert (await readiness.report()).status == "unavailable"

    readiness.unregister("models")
    readiness.register(Probe("models"), critical=False)
    report = await readiness.report()
    assert (report.status, report.degraded) == ("ready", [])
