"""The CostLedger contract, run against every adapter (memory and PostgreSQL).

Each test works in a tenant of its own, so the PostgreSQL adapter can share the
session's database.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from adapters.memory.costs import MemoryCostLedger
from adapters.postgres.costs import PostgresCostLedger
from codeforge.domain.errors import BudgetExceeded, ValidationFailed
from codeforge.domain.ids import new_id
from codeforge.ports.costs import Budgets, CostLedger

pytestmark = pytest.mark.contract

D = Decimal


@pytest.fixture(params=["memory", "postgres"])
def ledger(request: pytest.FixtureRequest) -> CostLedger:
    if request.param == "memory":
        return MemoryCostLedger()
    pool: AsyncConnectionPool = request.getfixturevalue("pg_pool")
    return PostgresCostLedger(pool)


class Ids:
    def __init__(self) -> None:
        self.tenant = uuid.uuid4()
        self.project = new_id()
        self.run = new_id()

    def call(self, amount: str, budgets: Budgets | None = None, model: str = "m1") -> dict:
        return {
            "tenant_id": self.tenant,
            "project_id": self.project,
            "run_id": self.run,
            "model": model,
            "amount_usd": D(amount),
            "budgets": budgets or Budgets(),
        }


async def test_a_settled_call_is_spent_at_every_scope_and_the_hold_is_gone(
    ledger: CostLedger,
) -> None:
    ids = Ids()
    reservation = await ledger.reserve(**ids.call("0.50"))
    held = await ledger.spent(ids.tenant, "run", str(ids.run))
    assert (held.cost_usd, held.held_usd) == (D(0), D("0.50"))

    await ledger.settle(reservation, cost_usd=D("0.125"), input_tokens=1000, output_tokens=50)

    for group, key in [
        ("run", str(ids.run)),
        ("project", str(ids.project)),
        ("tenant", str(ids.tenant)),
        ("model", "m1"),
    ]:
        total = await ledger.spent(ids.tenant, group, key)
        assert total.cost_usd == D("0.125"), group
        assert total.held_usd == D(0), group
        assert (total.input_tokens, total.output_tokens, total.calls) == (1000, 50, 1)


async def test_a_reserve_that_would_pass_a_budget_holds_nothing_and_says_which(
    ledger: CostLedger,
) -> None:
    ids = Ids()
    first = await ledger.reserve(**ids.call("0.60", Budgets(run_usd=D(1))))
    with pytest.raises(BudgetExceeded) as caught:
        await ledger.reserve(**ids.call("0.50", Budgets(run_usd=D(1))))
    assert caught.value.field == "run_budget"
    assert "$1" in caught.value.message
    assert "$0.4 left" in caught.value.message
    assert (await ledger.spent(ids.tenant, "run", str(ids.run))).held_usd == D("0.60")
    # Settling below the hold frees room: what counts is spent + held.
    await ledger.settle(first, cost_usd=D("0.10"), input_tokens=1, output_tokens=1)
    await ledger.reserve(**ids.call("0.50", Budgets(run_usd=D(1))))


async def test_the_narrowest_exceeded_scope_is_named(ledger: CostLedger) -> None:
    ids = Ids()
    budgets = Budgets(run_usd=D("0.1"), project_usd=D("0.05"), tenant_usd=D("0.01"))
    with pytest.raises(BudgetExceeded) as caught:
        await ledger.reserve(**ids.call("0.2", budgets))
    assert caught.value.field == "run_budget"
    with pytest.raises(BudgetExceeded) as caught:
        await ledger.reserve(**ids.call("0.07", budgets))
    assert caught.value.field == "project_budget"


async def test_project_and_tenant_budgets_span_runs(ledger: CostLedger) -> None:
    ids = Ids()
    budgets = Budgets(project_usd=D("1.00"))
    r = await ledger.reserve(**ids.call("0.70", budgets))
    await ledger.settle(r, cost_usd=D("0.70"), input_tokens=0, output_tokens=0)
    other_run = Ids()
    other_run.tenant, other_run.project = ids.tenant, ids.project
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(**other_run.call("0.40", budgets))
    # Another project of the tenant is not bound by this one's budget.
    elsewhere = Ids()
    elsewhere.tenant = ids.tenant
    await ledger.reserve(**elsewhere.call("0.40", budgets))


async def test_settle_and_release_happen_once(ledger: CostLedger) -> None:
    ids = Ids()
    r = await ledger.reserve(**ids.call("0.30"))
    await ledger.settle(r, cost_usd=D("0.20"), input_tokens=10, output_tokens=5)
    await ledger.settle(r, cost_usd=D("0.20"), input_tokens=10, output_tokens=5)
    await ledger.release(r)
    total = await ledger.spent(ids.tenant, "run", str(ids.run))
    assert (total.cost_usd, total.held_usd, total.calls) == (D("0.20"), D(0), 1)


async def test_release_run_gives_back_every_hold_of_that_run_only(ledger: CostLedger) -> None:
    ids = Ids()
    await ledger.reserve(**ids.call("0.30"))
    await ledger.reserve(**ids.call("0.20", model="m2"))
    other = Ids()
    other.tenant = ids.tenant
    await ledger.reserve(**other.call("0.10"))
    assert await ledger.release_run(ids.tenant, ids.run) == 2
    assert await ledger.release_run(ids.tenant, ids.run) == 0
    assert (await ledger.spent(ids.tenant, "run", str(ids.run))).held_usd == D(0)
    assert (await ledger.spent(ids.tenant, "tenant", str(ids.tenant))).held_usd == D("0.10")


async def test_concurrent_reserves_never_pass_a_budget_together(ledger: CostLedger) -> None:
    ids = Ids()
    budgets = Budgets(tenant_usd=D("1.00"))
    results = await asyncio.gather(
        *(ledger.reserve(**ids.call("0.15", budgets)) for _ in range(20)),
        return_exceptions=True,
    )
    granted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert (len(granted), len(refused)) == (6, 14)
    total = await ledger.spent(ids.tenant, "tenant", str(ids.tenant))
    assert total.held_usd == D("0.90")


async def test_totals_group_by_model_and_filter_by_time_and_project(ledger: CostLedger) -> None:
    ids = Ids()
    for model, cost in [("a", "0.3"), ("b", "0.5"), ("a", "0.1")]:
        r = await ledger.reserve(**ids.call("1", model=model))
        await ledger.settle(r, cost_usd=D(cost), input_tokens=100, output_tokens=10)
    by_model = await ledger.totals(ids.tenant, group="model")
    assert [(t.key, t.cost_usd, t.calls) for t in by_model] == [
        ("b", D("0.5"), 1),
        ("a", D("0.4"), 2),
    ]
    since = await ledger.totals(
        ids.tenant, group="project", since=datetime.now(UTC) - timedelta(hours=1)
    )
    assert [(t.key, t.cost_usd, t.input_tokens) for t in since] == [
        (str(ids.project), D("0.9"), 300)
    ]
    assert (
        await ledger.totals(ids.tenant, group="run", since=datetime.now(UTC) + timedelta(1)) == []
    )
    assert await ledger.totals(ids.tenant, group="run", project_id=new_id()) == []
    assert await ledger.totals(uuid.uuid4(), group="model") == []


async def test_a_negative_or_infinite_amount_is_refused(ledger: CostLedger) -> None:
    ids = Ids()
    for amount in ["-0.01", "Infinity", "NaN"]:
        with pytest.raises(ValidationFailed):
            await ledger.reserve(**ids.call(amount))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    calls=st.lists(
        st.tuples(
            st.decimals(min_value=0, max_value=1, places=4),
            st.decimals(min_value=0, max_value=1, places=4),
        ),
        max_size=8,
    ),
    limit=st.decimals(min_value=0, max_value=3, places=2),
)
async def test_spent_never_exceeds_a_budget_when_costs_stay_within_their_holds(
    ledger: CostLedger, calls: list[tuple[Decimal, Decimal]], limit: Decimal
) -> None:
    ids = Ids()
    budgets = Budgets(run_usd=limit)
    for hold, cost in calls:
        try:
            r = await ledger.reserve(**ids.call(str(hold), budgets))
        except BudgetExceeded:
            continue
        await ledger.settle(r, cost_usd=min(cost, hold), input_tokens=1, output_tokens=1)
    assert (await ledger.spent(ids.tenant, "run", str(ids.run))).cost_usd <= limit


async def test_a_recorded_call_counts_like_a_settled_one(ledger: CostLedger) -> None:
    ids = Ids()
    r = await ledger.reserve(**ids.call("0.5"))
    await ledger.settle(r, cost_usd=D("0.25"), input_tokens=100, output_tokens=10)
    await ledger.record(
        tenant_id=ids.tenant, project_id=ids.project, run_id=ids.run, model="m1",
        cost_usd=D("0.125"), input_tokens=50, output_tokens=5,
    )  # fmt: skip
    for group, key in [("run", str(ids.run)), ("model", "m1"), ("tenant", str(ids.tenant))]:
        total = await ledger.spent(ids.tenant, group, key)
        assert (total.cost_usd, total.held_usd, total.calls) == (D("0.375"), D(0), 2)
        assert (total.input_tokens, total.output_tokens) == (150, 15)
    [by_time] = await ledger.totals(
        ids.tenant, group="run", since=datetime.now(UTC) - timedelta(minutes=1)
    )
    assert (by_time.cost_usd, by_time.calls) == (D("0.375"), 2)
    # A recorded call counts against later budgets too.
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(**ids.call("0.2", Budgets(run_usd=D("0.5"))))
