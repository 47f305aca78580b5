"""The cost ledger: money is reserved before every model call and settled after it.

Hard and cumulative (ARCHITECTURE.md, "Limits"): a budget is checked against what was
already spent plus what other calls hold right now, so concurrent runs cannot overspend
together; nothing ever resets a total. Budgets apply at three scopes — the run (its
effective `max_cost_usd`), the project (`Project.budget_usd`) and the tenant
(`Tenant.budget_usd`) — and spend is also totalled per model.

Contract (one suite runs against every adapter):
- `reserve` holds `amount` against every scope that has a limit, atomically: if any
  scope's spent + held + amount would exceed its limit, nothing is held and
  `BudgetExceeded` names the scope, its limit and what is left. Concurrent reserves
  never together pass a limit.
- `settle` turns a held reservation into spend (the real cost, which may differ from
  the amount held) with the tokens used; `release` gives the hold back unspent. Each
  may happen once per reservation; a second call is a no-op. `release_run` releases
  every reservation of a run still held (the run ended, or its worker died).
- `totals` sums settled spend (held amounts are reported apart) per group, scoped to the
  tenant, optionally since a time.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from msgspec import Struct

__all__ = ["Budgets", "CostGroup", "CostLedger", "CostTotal", "Reservation"]

CostGroup = Literal["tenant", "project", "run", "model"]


class Budgets(Struct, frozen=True, kw_only=True):
    """The limits that apply to one call; None means no limit at that scope."""

    run_usd: Decimal | None = None
    project_usd: Decimal | None = None
    tenant_usd: Decimal | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.run_usd, self.project_usd, self.tenant_usd))


class Reservation(Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    project_id: uuid.UUID
    run_id: uuid.UUID
    model: str
    amount_usd: Decimal


class CostTotal(Struct, frozen=True, kw_only=True):
    group: CostGroup
    # The run, project or tenant id, or the model's name.
    key: str
    cost_usd: Decimal
    held_usd: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0


class CostLedger(Protocol):
    async def reserve(
        self,
        *,
        tenant_id: uuid.UUID,
        project_id: uuid.UUID,
        run_id: uuid.UUID,
        model: str,
        amount_usd: Decimal,
        budgets: Budgets,
    ) -> Reservation: ...

    async def settle(
        self,
        reservation: Reservation,
        *,
        cost_usd: Decimal,
        input_tokens: int,
        output_tokens: int,
    ) -> None: ...

    async def release(self, reservation: Reservation) -> None: ...

    async def release_run(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> int:
        """Release every hold of the run; returns how many there were."""
        ...

    async def spent(self, tenant_id: uuid.UUID, group: CostGroup, key: str) -> CostTotal:
        """One scope's total (zero when nothing was spent)."""
        ...

    async def totals(
        self,
        tenant_id: uuid.UUID,
        *,
        group: CostGroup,
        since: datetime | None = None,
        project_id: uuid.UUID | None = None,
        limit: int = 100,
    ) -> list[CostTotal]:
        """Totals per `group` key, largest cost first."""
        ...
