"""The cost ledger in memory: the same promises as PostgreSQL, for tests and `codeforge run`.

One lock serialises every operation, which is what the PostgreSQL adapter's row
locks amount to for the scopes a call touches.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from codeforge.domain.ids import new_id
from codeforge.ports.costs import (
    Budgets,
    CostGroup,
    CostTotal,
    Reservation,
    check_amount,
    check_budgets,
)


class _Entry(msgspec.Struct, kw_only=True):
    reservation: Reservation
    state: str = "held"
    cost: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    created_at: datetime


class _Account(msgspec.Struct, kw_only=True):
    spent: Decimal = Decimal(0)
    held: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0


def _keys(r: Reservation) -> list[tuple[CostGroup, str]]:
    return [
        ("tenant", str(r.tenant_id)),
        ("project", str(r.project_id)),
        ("run", str(r.run_id)),
        ("model", r.model),
    ]


class MemoryCostLedger:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._entries: dict[uuid.UUID, _Entry] = {}
        self._accounts: dict[tuple[uuid.UUID, CostGroup, str], _Account] = {}

    async def reserve(
        self,
        *,
        tenant_id: uuid.UUID,
        project_id: uuid.UUID,
        run_id: uuid.UUID,
        model: str,
        amount_usd: Decimal,
        budgets: Budgets,
    ) -> Reservation:
        check_amount(amount_usd)
        reservation = Reservation(
            id=new_id(),
            tenant_id=tenant_id,
            project_id=project_id,
            run_id=run_id,
            model=model,
            amount_usd=amount_usd,
        )
        async with self._lock:
            accounts = {
                scope: self._account(tenant_id, scope, key) for scope, key in _keys(reservation)
            }
            check_budgets(
                budgets, {scope: (a.spent, a.held) for scope, a in accounts.items()}, amount_usd
            )
            for account in accounts.values():
                account.held += amount_usd
            self._entries[reservation.id] = _Entry(
                reservation=reservation, created_at=datetime.now(UTC)
            )
        return reservation

    async def settle(
        self,
        reservation: Reservation,
        *,
        cost_usd: Decimal,
        input_tokens: int,
        output_tokens: int,
    ) -> None:
        check_amount(cost_usd, "cost_usd")
        async with self._lock:
            self._close(reservation.id, "settled", cost_usd, input_tokens, output_tokens)

    async def release(self, reservation: Reservation) -> None:
        async with self._lock:
            self._close(reservation.id, "released")

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
    ) -> None:
        check_amount(cost_usd, "cost_usd")
        reservation = await self.reserve(
            tenant_id=tenant_id,
            project_id=project_id,
            run_id=run_id,
            model=model,
            amount_usd=Decimal(0),
            budgets=Budgets(),
        )
        await self.settle(
            reservation, cost_usd=cost_usd, input_tokens=input_tokens, output_tokens=output_tokens
        )

    async def release_run(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> int:
        async with self._lock:
            held = [
                e.reservation.id
                for e in self._entries.values()
                if e.state == "held"
                and e.reservation.run_id == run_id
                and e.reservation.tenant_id == tenant_id
            ]
            for entry_id in held:
                self._close(entry_id, "released")
        return len(held)

    async def spent(self, tenant_id: uuid.UUID, group: CostGroup, key: str) -> CostTotal:
        account = self._accounts.get((tenant_id, group, key), _Account())
        return _total(group, key, account)

    async def totals(
        self,
        tenant_id: uuid.UUID,
        *,
        group: CostGroup,
        since: datetime | None = None,
        project_id: uuid.UUID | None = None,
        limit: int = 100,
    ) -> list[CostTotal]:
        if since is None and project_id is None:
            found = [
                _total(group, key, account)
                for (tenant, scope, key), account in self._accounts.items()
                if tenant == tenant_id and scope == group
            ]
        else:
            sums: dict[str, _Account] = {}
            for entry in self._entries.values():
                r = entry.reservation
                if r.tenant_id != tenant_id or (since is not None and entry.created_at < since):
                    continue
                if project_id is not None and r.project_id != project_id:
                    continue
                key = dict(_keys(r))[group]
                account = sums.setdefault(key, _Account())
                if entry.state == "settled":
                    account.spent += entry.cost
                    account.calls += 1
                elif entry.state == "held":
                    account.held += r.amount_usd
                account.input_tokens += entry.input_tokens
                account.output_tokens += entry.output_tokens
            found = [_total(group, key, account) for key, account in sums.items()]
        found.sort(key=lambda t: (-t.cost_usd, t.key))
        return found[:limit]

    def _account(self, tenant_id: uuid.UUID, scope: CostGroup, key: str) -> _Account:
        return self._accounts.setdefault((tenant_id, scope, key), _Account())

    def _close(
        self,
        entry_id: uuid.UUID,
        state: str,
        cost: Decimal = Decimal(0),
        input_tokens: int = 0,
        output_tokens: int = 0,
    ) -> None:
        entry = self._entries.get(entry_id)
        if entry is None or entry.state != "held":
            return
        r = entry.reservation
        for scope, key in _keys(r):
            account = self._account(r.tenant_id, scope, key)
            account.held = max(account.held - r.amount_usd, Decimal(0))
            account.spent += cost
            account.input_tokens += input_tokens
            account.output_tokens += output_tokens
            account.calls += 1 if state == "settled" else 0
        entry.state = state
        entry.cost = cost
        entry.input_tokens = input_tokens
        entry.output_tokens = output_tokens


def _total(group: CostGroup, key: str, account: _Account) -> CostTotal:
    return CostTotal(
        group=group,
        key=key,
        cost_usd=account.spent,
        held_usd=account.held,
        input_tokens=account.input_tokens,
        output_tokens=account.output_tokens,
        calls=account.calls,
    )
