"""The cost ledger in PostgreSQL (tables `cost_ledger` and `cost_accounts`, migration 0007).

Implements `codeforge.ports.costs.CostLedger` (its docstring is the contract). How
each promise is kept:

- `reserve` runs in one transaction: it makes sure the scope rows exist, locks them
  (`FOR UPDATE`, always in the same order, so concurrent reserves queue instead of
  deadlocking), checks every budget against spent + held, adds the hold and writes the
  ledger row. Two reserves that would pass a limit together are serialised by the
  row locks, and the second sees the first's hold.
- `settle` / `release` lock the ledger row first and act only while it is `held`, so
  a second call (a retry, a reaper racing a worker) changes nothing.
- Totals only grow: no statement subtracts from `spent_usd`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, LiteralString

from psycopg_pool import AsyncConnectionPool

from adapters.postgres.connections import connection
from codeforge.domain.ids import new_id
from codeforge.ports.costs import (
    Budgets,
    CostGroup,
    CostTotal,
    Reservation,
    check_amount,
    check_budgets,
)

_ENSURE = (
    "INSERT INTO cost_accounts (tenant_id, scope, scope_key)"
    " SELECT %(tenant)s, s, k FROM unnest(%(scopes)s::text[], %(keys)s::text[]) AS t(s, k)"
    " ON CONFLICT DO NOTHING"
)
_LOCK = (
    "SELECT scope, spent_usd, held_usd FROM cost_accounts"
    " WHERE tenant_id = %(tenant)s AND (scope, scope_key) IN"
    " (SELECT * FROM unnest(%(scopes)s::text[], %(keys)s::text[]))"
    " ORDER BY scope, scope_key FOR UPDATE"
)
_HOLD = (
    "UPDATE cost_accounts SET held_usd = held_usd + %(amount)s"
    " WHERE tenant_id = %(tenant)s AND (scope, scope_key) IN"
    " (SELECT * FROM unnest(%(scopes)s::text[], %(keys)s::text[]))"
)
_BOOK = (
    "UPDATE cost_accounts SET held_usd = greatest(held_usd - %(held)s, 0),"
    " spent_usd = spent_usd + %(cost)s, input_tokens = input_tokens + %(input)s,"
    " output_tokens = output_tokens + %(output)s, calls = calls + %(calls)s"
    " WHERE tenant_id = %(tenant)s AND (scope, scope_key) IN"
    " (SELECT * FROM unnest(%(scopes)s::text[], %(keys)s::text[]))"
)
_INSERT = (
    "INSERT INTO cost_ledger (id, tenant_id, project_id, run_id, model, reserved_usd)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
# One statement: add the call to every scope's totals (creating them) and write its
# settled ledger row — a booking no budget binds needs no hold and no lock round trips.
_RECORD = (
    "WITH booked AS ("
    " INSERT INTO cost_accounts AS a"
    " (tenant_id, scope, scope_key, spent_usd, input_tokens, output_tokens, calls)"
    " SELECT %(tenant)s, s, k, %(cost)s, %(input)s, %(output)s, 1"
    " FROM unnest(%(scopes)s::text[], %(keys)s::text[]) AS t(s, k)"
    " ON CONFLICT (tenant_id, scope, scope_key) DO UPDATE SET"
    " spent_usd = a.spent_usd + EXCLUDED.spent_usd,"
    " input_tokens = a.input_tokens + EXCLUDED.input_tokens,"
    " output_tokens = a.output_tokens + EXCLUDED.output_tokens, calls = a.calls + 1"
    " RETURNING 1)"
    " INSERT INTO cost_ledger (id, tenant_id, project_id, run_id, model, reserved_usd,"
    " cost_usd, input_tokens, output_tokens, state, settled_at)"
    " SELECT %(id)s, %(tenant)s, %(project)s, %(run)s, %(model)s, 0, %(cost)s, %(input)s,"
    " %(output)s, 'settled', now() WHERE (SELECT count(*) FROM booked) > 0"
)
_LEDGER_COLUMNS = "id, tenant_id, project_id, run_id, model, reserved_usd"
_GROUP_COLUMN: dict[CostGroup, LiteralString] = {
    "tenant": "tenant_id::text",
    "project": "project_id::text",
    "run": "run_id::text",
    "model": "model",
}


def _scopes(tenant: uuid.UUID, project: uuid.UUID, run: uuid.UUID, model: str) -> dict[str, Any]:
    scopes = ["model", "project", "run", "tenant"]
    keys = [model, str(project), str(run), str(tenant)]
    return {"tenant": tenant, "scopes": scopes, "keys": keys}


class PostgresCostLedger:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

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
        params = _scopes(tenant_id, project_id, run_id, model)
        reservation = Reservation(
            id=new_id(),
            tenant_id=tenant_id,
            project_id=project_id,
            run_id=run_id,
            model=model,
            amount_usd=amount_usd,
        )
        async with connection(self._pool, "the cost ledger") as conn, conn.transaction():
            await conn.execute(_ENSURE, params)
            rows = await (await conn.execute(_LOCK, params)).fetchall()
            check_budgets(
                budgets, {scope: (spent, held) for scope, spent, held in rows}, amount_usd
            )
            await conn.execute(_HOLD, params | {"amount": amount_usd})
            await conn.execute(
                _INSERT, (reservation.id, tenant_id, project_id, run_id, model, amount_usd)
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
        await self._close(
            reservation.tenant_id,
            "id = %(id)s",
            {"id": reservation.id},
            state="settled",
            cost=cost_usd,
            tokens=(input_tokens, output_tokens),
        )

    async def release(self, reservation: Reservation) -> None:
        await self._close(
            reservation.tenant_id, "id = %(id)s", {"id": reservation.id}, state="released"
        )

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
        params = _scopes(tenant_id, project_id, run_id, model) | {
            "id": new_id(),
            "project": project_id,
            "run": run_id,
            "model": model,
            "cost": cost_usd,
            "input": input_tokens,
            "output": output_tokens,
        }
        async with connection(self._pool, "the cost ledger") as conn:
            await conn.execute(_RECORD, params)

    async def release_run(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> int:
        return await self._close(tenant_id, "run_id = %(run)s", {"run": run_id}, state="released")

    async def _close(
        self,
        tenant_id: uuid.UUID,
        where: LiteralString,
        params: dict[str, Any],
        *,
        state: str,
        cost: Decimal = Decimal(0),
        tokens: tuple[int, int] = (0, 0),
    ) -> int:
        """Settle or release the held rows matching `where`; how many there were."""
        async with connection(self._pool, "the cost ledger") as conn, conn.transaction():
            held = await (
                await conn.execute(
                    f"SELECT {_LEDGER_COLUMNS} FROM cost_ledger"  # noqa: S608 - constant SQL
                    f" WHERE tenant_id = %(tenant)s AND state = 'held' AND {where}"
                    " ORDER BY id FOR UPDATE",
                    params | {"tenant": tenant_id},
                )
            ).fetchall()
            for _id, _tenant, project, run, model, reserved in held:
                booking = _scopes(tenant_id, project, run, model) | {
                    "held": reserved,
                    "cost": cost,
                    "input": tokens[0],
                    "output": tokens[1],
                    "calls": 1 if state == "settled" else 0,
                }
                await conn.execute(_LOCK, booking)
                await conn.execute(_BOOK, booking)
            if held:
                await conn.execute(
                    "UPDATE cost_ledger SET state = %(state)s, settled_at = now(),"
                    " cost_usd = %(cost)s, input_tokens = %(input)s, output_tokens = %(output)s"
                    " WHERE id = ANY(%(ids)s)",
                    {
                        "state": state,
                        "cost": cost if state == "settled" else None,
                        "input": tokens[0],
                        "output": tokens[1],
                        "ids": [row[0] for row in held],
                    },
                )
        return len(held)

    async def spent(self, tenant_id: uuid.UUID, group: CostGroup, key: str) -> CostTotal:
        async with connection(self._pool, "the cost ledger") as conn:
            row = await (
                await conn.execute(
                    "SELECT spent_usd, held_usd, input_tokens, output_tokens, calls"
                    " FROM cost_accounts WHERE tenant_id = %s AND scope = %s AND scope_key = %s",
                    (tenant_id, group, key),
                )
            ).fetchone()
        if row is None:
            return CostTotal(group=group, key=key, cost_usd=Decimal(0))
        return _total(group, key, row)

    async def totals(
        self,
        tenant_id: uuid.UUID,
        *,
        group: CostGroup,
        since: datetime | None = None,
        project_id: uuid.UUID | None = None,
        limit: int = 100,
    ) -> list[CostTotal]:
        async with connection(self._pool, "the cost ledger") as conn:
            if since is None and project_id is None:
                # The running totals answer without reading the ledger.
                rows = await (
                    await conn.execute(
                        "SELECT scope_key, spent_usd, held_usd, input_tokens, output_tokens,"
                        " calls FROM cost_accounts WHERE tenant_id = %s AND scope = %s"
                        " ORDER BY spent_usd DESC, scope_key LIMIT %s",
                        (tenant_id, group, limit),
                    )
                ).fetchall()
            else:
                column = _GROUP_COLUMN[group]
                rows = await (
                    await conn.execute(
                        f"SELECT {column} AS key,"  # noqa: S608 - the column is a constant
                        " coalesce(sum(cost_usd) FILTER (WHERE state = 'settled'), 0) AS cost,"
                        " coalesce(sum(reserved_usd) FILTER (WHERE state = 'held'), 0),"
                        " coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),"
                        " count(*) FILTER (WHERE state = 'settled')"
                        " FROM cost_ledger WHERE tenant_id = %(tenant)s"
                        " AND (%(since)s::timestamptz IS NULL OR created_at >= %(since)s)"
                        " AND (%(project)s::uuid IS NULL OR project_id = %(project)s)"
                        " GROUP BY 1 ORDER BY cost DESC, key LIMIT %(limit)s",
                        {
                            "tenant": tenant_id,
                            "since": since,
                            "project": project_id,
                            "limit": limit,
                        },
                    )
                ).fetchall()
        return [_total(group, row[0], row[1:]) for row in rows]


def _total(group: CostGroup, key: str, row: Any) -> CostTotal:
    spent, held, input_tokens, output_tokens, calls = row
    return CostTotal(
        group=group,
        key=key,
        cost_usd=Decimal(spent),
        held_usd=Decimal(held),
        input_tokens=int(input_tokens),
        output_tokens=int(output_tokens),
        calls=int(calls),
    )
