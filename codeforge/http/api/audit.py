"""/api/v1/audit — who did what, when, and what was decided."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from codeforge.domain.keys import Principal
from codeforge.http.api.routes import get
from codeforge.services.audit import Audit, AuditPage, Kind


class AuditController(Controller):
    path = "/audit"
    tags = ["audit"]

    @get(
        "/",
        summary="The audit trail: runs requested, policy decisions, approvals, deliveries",
        description=(
            "Oldest first, from the append-only run logs. `who` is the API key that "
            "answered an ask, else the key that requested the run. Page with `after` = the "
            "previous page's `next_after`."
        ),
    )
    async def trail(
        self,
        audit: NamedDependency[Audit],
        principal: NamedDependency[Principal],
        after: Annotated[int, QueryParameter(ge=0)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 200,
        kind: FromQuery[list[Kind] | None] = None,
    ) -> AuditPage:
        return await audit.trail(
            principal, after=after, limit=limit, kinds=set(kind) if kind else None
        )
