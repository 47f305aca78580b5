"""Paying for model calls: reserve before, settle after, never past a budget.

Before each call the loop reserves what the call may cost at most: the prompt's
estimated tokens at the input price plus `max_tokens` at the output price. When the
budget left cannot cover the usual `max_tokens`, the call is made with fewer (down
to `MIN_OUTPUT_TOKENS`), so a run uses its last cents instead of stopping early, and
the provider's own cap on output keeps the real cost within the hold. After the call
the hold is settled with the real usage.

A model with no price cannot be held against a budget: a run with any budget refuses
it unless unpriced models were explicitly allowed (then its calls cost "unknown").
"""

from __future__ import annotations

import math
import uuid
from decimal import Decimal

from msgspec import Struct

from codeforge.domain.errors import BudgetExceeded, NotFound
from codeforge.domain.model_configs import PER_MILLION, ModelConfig
from codeforge.domain.projects import Project
from codeforge.domain.runs import Run
from codeforge.ports.costs import BUDGET_SCOPES, Budgets, CostLedger, Reservation, usd
from codeforge.ports.llm import Usage
from codeforge.ports.stores import TenantStore

MIN_OUTPUT_TOKENS = 256
# The prompt's token count is an estimate; hold a margin above it.
INPUT_MARGIN = Decimal("1.15")


async def budgets_for(run: Run, project: Project, tenants: TenantStore) -> Budgets:
    """The budgets a run's calls are held against: its own, its project's, its tenant's."""
    try:
        tenant_budget = (await tenants.get(run.tenant_id, run.tenant_id)).budget_usd
    except NotFound:
        tenant_budget = None  # tenants without a row have no budget
    return Budgets(
        run_usd=run.limits.max_cost_usd, project_usd=project.budget_usd, tenant_usd=tenant_budget
    )


class Hold(Struct, frozen=True, kw_only=True):
    reservation: Reservation | None
    max_tokens: int


class Spending:
    def __init__(
        self,
        ledger: CostLedger,
        model: ModelConfig,
        *,
        tenant_id: uuid.UUID,
        project_id: uuid.UUID,
        run_id: uuid.UUID,
        budgets: Budgets,
        allow_unpriced: bool,
        max_output_tokens: int,
    ) -> None:
        self._ledger = ledger
        self._model = model
        self._tenant = tenant_id
        self._project = project_id
        self._run = run_id
        self._budgets = budgets
        self._allow_unpriced = allow_unpriced
        self._max_output = max_output_tokens

    def check_model(self) -> None:
        """Refuse an unpriced model for a budgeted run (before the run spends anything)."""
        if self._budgets.any and not self._model.priced and not self._allow_unpriced:
            raise BudgetExceeded(
                f"model {self._model.name!r} has no price, so a budgeted run cannot hold its "
                "calls against the budget: set its input and output prices per million "
                "tokens, or allow unpriced models (llm.allow_unpriced_models)",
                field="model",
            )

    def cost(self, usage: Usage) -> Decimal | None:
        return self._model.cost(usage.input_tokens, usage.output_tokens)

    async def reserve(self, prompt_tokens: int) -> Hold:
        model = self._model
        if model.input_price_per_mtok is None or model.output_price_per_mtok is None:
            self.check_model()
            return Hold(reservation=None, max_tokens=self._max_output)
        if not self._budgets.any:
            # Nothing to hold against: the cost is booked once, when it is known.
            return Hold(reservation=None, max_tokens=self._max_output)
        in_price, out_price = model.input_price_per_mtok, model.output_price_per_mtok
        input_cost = in_price * prompt_tokens * INPUT_MARGIN / PER_MILLION
        max_tokens = self._max_output
        left = await self._left()
        if left is not None and out_price > 0:
            affordable = math.floor((left - input_cost) * PER_MILLION / out_price)
            if affordable < MIN_OUTPUT_TOKENS:
                raise BudgetExceeded(
                    f"the budget has {usd(max(left, Decimal(0)))} left, less than one more "
                    f"call to {model.name} costs ({usd(input_cost)} for the prompt and "
                    f"{MIN_OUTPUT_TOKENS} reply tokens)",
                    field="budget",
                )
            max_tokens = min(max_tokens, affordable)
        amount = input_cost + out_price * max_tokens / PER_MILLION
        reservation = await self._ledger.reserve(
            tenant_id=self._tenant,
            project_id=self._project,
            run_id=self._run,
            model=model.name,
            amount_usd=amount,
            budgets=self._budgets,
        )
        return Hold(reservation=reservation, max_tokens=max_tokens)

    async def settle(self, hold: Hold, usage: Usage) -> Decimal | None:
        cost = self.cost(usage)
        if hold.reservation is not None:
            await self._ledger.settle(
                hold.reservation,
                cost_usd=cost or Decimal(0),
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
            )
        else:
            await self._ledger.record(
                tenant_id=self._tenant,
                project_id=self._project,
                run_id=self._run,
                model=self._model.name,
                cost_usd=cost or Decimal(0),
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
            )
        return cost

    async def release(self, hold: Hold) -> None:
        if hold.reservation is not None:
            await self._ledger.release(hold.reservation)

    async def _left(self) -> Decimal | None:
        """The least that any budget has left (None: no budget applies)."""
        keys = {"run": str(self._run), "project": str(self._project), "tenant": str(self._tenant)}
        left: Decimal | None = None
        for scope in BUDGET_SCOPES:
            limit = self._budgets.limit(scope)
            if limit is None:
                continue
            total = await self._ledger.spent(self._tenant, scope, keys[scope])
            remaining = limit - total.cost_usd - total.held_usd
            left = remaining if left is None else min(left, remaining)
        return left
