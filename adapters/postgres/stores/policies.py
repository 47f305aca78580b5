"""Stored policies in PostgreSQL (table `policies`, migration 0008)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from adapters import store_rules as rules
from adapters.postgres.stores.base import PostgresEntityStore, Unique
from codeforge.domain.errors import NotFound
from codeforge.domain.policy.stored import Policy

# The base store names the tenant's placeholder `scope`; the column is `policy_scope`.
_COLUMN = {"scope": "policy_scope"}
_FIELD = {column: field for field, column in _COLUMN.items()}


class PostgresPolicyStore(PostgresEntityStore[Policy]):
    """Implements `codeforge.ports.policy.PolicyStore`."""

    entity_type = Policy
    table = "policies"
    noun = "policy"
    filters = {"scope": "policy_scope", "project_id": "project_id", "name": "name"}
    unique = {
        "policies_tenant_place_name_key": Unique(
            "name", "a policy named {value!r} already exists in its place"
        )
    }

    def columns(self) -> list[str]:
        return [_COLUMN.get(name, name) for name in super().columns()]

    def to_row(self, entity: Policy) -> dict[str, Any]:
        return {_COLUMN.get(k, k): v for k, v in super().to_row(entity).items()}

    def from_row(self, row: Mapping[str, Any]) -> Policy:
        return super().from_row({_FIELD.get(k, k): v for k, v in row.items()})

    def check(self, entity: Policy) -> Policy:
        policy = super().check(entity)
        policy.check_place()
        return policy

    async def get_by_name(
        self, tenant_id: uuid.UUID, name: str, project_id: uuid.UUID | None
    ) -> Policy:
        if rules.storable_text(name):
            found = await self._find(
                "tenant_id = %(scope)s AND name = %(name)s "
                "AND project_id IS NOT DISTINCT FROM %(project)s",
                {"scope": tenant_id, "name": name, "project": project_id},
            )
            if found is not None:
                return found
        raise NotFound(f"no policy named {name!r}", field="name")
