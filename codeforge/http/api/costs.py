"""/api/v1/costs — what model calls cost, per tenant, project, run or model."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from litestar import Controller
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from codeforge.domain.keys import Principal
from codeforge.http.api.routes import get
from codeforge.ports.costs import CostGroup
from codeforge.services.costs import CostReport, Costs


class CostController(Controller):
    path = "/costs"
    tags = ["costs"]

    @get(
        "/",
        summary="Spend per tenant, project, run or model",
        description=(
            "Settled cost and tokens, largest first; `held_usd` is what model calls in "
            "flight have reserved. Without `since` or `project_id` the running totals "
            "answer (they never reset); with them, the ledger is summed."
        ),
    )
    async def report(
        self,
        costs: NamedDependency[Costs],
        principal: NamedDependency[Principal],
        group: FromQuery[CostGroup] = "tenant",
        since: FromQuery[datetime | None] = None,
        project_id: FromQuery[uuid.UUID | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> CostReport:
        return await costs.report(
            principal, group=group, since=since, project_id=project_id, limit=limit
        )
