"""What every tenant-scoped catalogue (projects, tasks, agents, models) does alike."""

from __future__ import annotations

import uuid
from typing import Any, Generic, TypeVar

from codeforge.domain.entity import Entity
from codeforge.domain.keys import Principal
from codeforge.ports.stores import EntityStore, Page
from codeforge.services.clock import Clock, utc_now

E = TypeVar("E", bound=Entity)


class Catalog(Generic[E]):
    """Reads for every role of the tenant; writes need a key that may mutate.

    `update` applies `changes` on top of the stored entity at the `version` the
    caller read, so a concurrent edit makes the store answer Conflict.
    """

    def __init__(self, store: EntityStore[E], clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock

    async def get(self, principal: Principal, entity_id: uuid.UUID) -> E:
        return await self._store.get(principal.tenant_id, entity_id)

    async def list(
        self,
        principal: Principal,
        *,
        limit: int,
        after: uuid.UUID | None,
        filters: dict[str, str],
    ) -> Page[E]:
        return await self._store.list(
            principal.tenant_id, limit=limit, after=after, filters=filters
        )

    async def update(
        self, principal: Principal, entity_id: uuid.UUID, version: int, changes: dict[str, Any]
    ) -> E:
        principal.require_mutation()
        current = await self._store.get(principal.tenant_id, entity_id)
        self.check_update(current, changes)
        updated = await self._store.update(
            current.evolve(self._clock(), version=version, **changes)
        )
        await self.after_update(current, updated)
        return updated

    async def delete(self, principal: Principal, entity_id: uuid.UUID, version: int | None) -> None:
        principal.require_mutation()
        await self._store.delete(principal.tenant_id, entity_id, version)

    def check_update(self, current: E, changes: dict[str, Any]) -> None:
        """Refuse changes that break a rule (override per catalogue); raise domain errors."""

    async def after_update(self, before: E, after: E) -> None:
        """React to a stored change (override per catalogue)."""
