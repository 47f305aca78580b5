"""Tenants in PostgreSQL (table `tenants`, migration 0001).

The table predates the generic shape: no `tenant_id` column (a tenant is its own
scope, so its id is compared instead), limits in columns of their own, and money as
NUMERIC(14, 6). Values that column would round or overflow are refused up front,
so what is read back always equals what was stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters import store_rules as rules
from adapters.postgres.stores.base import PostgresEntityStore, Unique
from codeforge.domain.errors import NotFound
from codeforge.domain.tenants import Tenant


class PostgresTenantStore(PostgresEntityStore[Tenant]):
    """Implements `codeforge.ports.stores.TenantStore`."""

    entity_type = Tenant
    table = "tenants"
    noun = "tenant"
    scope_column = "id"
    filters = {"name": "name"}
    unique = {"tenants_name_key": Unique("name", "a tenant named {value!r} already exists")}

    def columns(self) -> list[str]:
        return [
            "id", "name", "budget_usd", "max_steps", "max_wall_seconds", "max_cost_usd",
            "version", "created_at", "updated_at",
        ]  # fmt: skip

    async def get_by_name(self, name: str) -> Tenant:
        if rules.storable_text(name):
            found = await self._find("name = %(name)s", {"name": name})
            if found is not None:
                return found
        raise NotFound(f"no tenant named {name!r}", field="name")

    def check(self, entity: Tenant) -> Tenant:
        tenant = super().check(entity)
        rules.check_tenant(tenant)
        return tenant

    def to_row(self, entity: Tenant) -> dict[str, Any]:
        return {
            "id": entity.id,
            "name": entity.name,
            "budget_usd": entity.budget_usd,
            "max_steps": entity.limits.max_steps,
            "max_wall_seconds": entity.limits.max_wall_seconds,
            "max_cost_usd": entity.limits.max_cost_usd,
            "version": entity.version,
            "created_at": entity.created_at,
            "updated_at": entity.updated_at,
        }

    def from_row(self, row: Mapping[str, Any]) -> Tenant:
        limits = {k: row[k] for k in ("max_steps", "max_wall_seconds", "max_cost_usd")}
        shaped = {k: v for k, v in row.items() if k not in limits}
        return super().from_row(shaped | {"tenant_id": row["id"], "limits": limits})
