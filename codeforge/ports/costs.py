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
- `record` books a call no budget binds in one step (no hold first): the same totals
  and ledger row as a reserve followed by a settle, at half the cost.
- `totals` sums settled spend (held amounts are reported apart) per group, scoped to the
  tenant, optionally since a time.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from msgspec import Struct

from codeforge.domain.errors import BudgetExceeded, ValidationFailed

__all__ = [
    "BUDGET_SCOPES",
    "Budgets",
    "CostGroup",
    "CostLedger",
    "CostTotal",
    "Reservation",
    "check_amount",
    "check_budgets",
    "usd",
]

CostGroup = Literal["tenant", "project", "run", "model"]


class Budgets(Struct, frozen=True, kw_only=True):
    """The limits that apply to one call; None means no limit at that scope."""

    run_usd: Decimal | None = None
    project_usd: Decimal | None = None
    tenant_usd: Decimal | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.run_usd, self.project_usd, self.tenant_usd))

    def limit(self, scope: CostGroup) -> Decimal | None:
        return {"run": self.run_usd, "project": self.project_usd, "tenant": self.tenant_usd}.get(
            scope
        )


# The scopes a budget can bind, narrowest first (the first exceeded one is reported).
BUDGET_SCOPES: tuple[CostGroup, ...] = ("run", "project", "tenant")


def check_amount(amount: Decimal, what: str = "amount_usd") -> None:
    if not amount.is_finite() or amount < 0:
        raise ValidationFailed(f"{what} must be a finite amount >= 0, not {amount}", field=what)


def check_budgets(
    budgets: Budgets, accounts: dict[CostGroup, tuple[Decimal, Decimal]], amount: Decimal
) -> None:
    """Raise BudgetExceeded unless `amount` fits every scope's limit.

    `accounts` maps each scope to (spent, held) as read under the adapter's lock.
    """
    for scope in BUDGET_SCOPES:
        limit = budgets.limit(scope)
        if limit is None:
            continue
        spent, held = accounts.get(scope, (Decimal(0), Decimal(0)))
        if spent + held + amount > limit:
            left = max(limit - spent - held, Decimal(0))
            raise BudgetExceeded(
                f"the {scope} budget of {usd(limit)} would be exceeded: {usd(spent)} spent, "
                f"{usd(held)} held by calls in flight, {usd(left)} left, and the next model "
                f"call may cost up to {usd(amount)}",
                field=f"{scope}_budget",
            )


def usd(amount: Decimal) -> str:
    """ "$0.0125": at most six decimals, no trailing zeros."""
    text = f"{amount:.6f}".rstrip("0").rstrip(".")
    return f"${text}"


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

    async def record(
        self,
        *,
        tenant_id: uuid.UUID,
        project_id: uuid.UUID,
        run_id: uuid.UUID,
        model: str,
        cost_usd: Decimal,
        input_tokens: int,
        output_tokens: int,
    ) -> None: ...

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
