"""What runs cost: totals per tenant, project, run or model, from the cost ledger."""

from __future__ import annotations

import uuid
from datetime import datetime

from msgspec import Struct

from codeforge.domain.keys import Principal
from codeforge.ports.costs import CostGroup, CostLedger, CostTotal


class CostReport(Struct, frozen=True, kw_only=True):
    group: CostGroup
    since: datetime | None = None
    project_id: uuid.UUID | None = None
    totals: list[CostTotal]


class Costs:
    def __init__(self, ledger: CostLedger) -> None:
        self._ledger = ledger

    async def report(
        self,
        principal: Principal,
        *,
        group: CostGroup = "tenant",
        since: datetime | None = None,
        project_id: uuid.UUID | None = None,
        limit: int = 100,
    ) -> CostReport:
        totals = await self._ledger.totals(
            principal.tenant_id, group=group, since=since, project_id=project_id, limit=limit
        )
        return CostReport(group=group, since=since, project_id=project_id, totals=totals)
