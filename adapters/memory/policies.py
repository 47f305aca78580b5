"""Stored policies in memory, with the PostgreSQL store's invariants (one contract suite)."""

from __future__ import annotations

import uuid

from adapters.memory.stores import MemoryEntityStore
from codeforge.domain.errors import Conflict, NotFound
from codeforge.domain.policy.stored import Policy


class MemoryPolicyStore(MemoryEntityStore[Policy]):
    """Implements `codeforge.ports.policy.PolicyStore`."""

    entity_type = Policy
    noun = "policy"
    filters = ("scope", "project_id", "name")

    def check(self, entity: Policy) -> Policy:
        policy = super().check(entity)
        policy.check_place()
        return policy

    async def get_by_name(
        self, tenant_id: uuid.UUID, name: str, project_id: uuid.UUID | None
    ) -> Policy:
        found = self._find(tenant_id=tenant_id, name=name, project_id=project_id)
        if found is None:
            raise NotFound(f"no policy named {name!r}", field="name")
        return found

    def _check_unique(self, entity: Policy) -> None:
        other = self._find(
            tenant_id=entity.tenant_id, name=entity.name, project_id=entity.project_id
        )
        if other is not None and other.id != entity.id:
            raise Conflict(_duplicate(entity), field="name")


def _duplicate(policy: Policy) -> str:
    where = "for this project" if policy.project_id else "in this tenant"
    return f"a policy named {policy.name!r} already exists {where}"
