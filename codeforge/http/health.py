"""Liveness and readiness."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from msgspec import Struct

from codeforge.services.readiness import Readiness, ReadinessReport


class Liveness(Struct, frozen=True):
    status: str = "ok"


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/", summary="Liveness: 200 while the process serves")
    async def live(self) -> Liveness:
        return Liveness()

    @get(
        "/ready",
        summary="Readiness: every dependency's status and latency; 503 if a critical one is down",
        response_description="Per-dependency status",
    )
    async def ready(self, readiness: NamedDependency[Readiness]) -> Response[ReadinessReport]:
        report = await readiness.report()
        return Response(report, status_code=200 if report.ready else 503)
