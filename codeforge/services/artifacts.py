"""Reading what runs delivered: their artifacts, scoped to the caller's tenant."""

from __future__ import annotations

import uuid

from codeforge.domain.keys import Principal
from codeforge.ports.artifacts import Artifact, ArtifactInfo, ArtifactStore
from codeforge.ports.events import EventStore


class Artifacts:
    def __init__(self, store: ArtifactStore, events: EventStore) -> None:
        self._store = store
        self._events = events

    async def list(self, principal: Principal, run_id: uuid.UUID) -> list[ArtifactInfo]:
        await self._events.get_run(principal.tenant_id, run_id)  # 404 for a missing run
        return await self._store.list(principal.tenant_id, run_id)

    async def get(self, principal: Principal, run_id: uuid.UUID, name: str) -> Artifact:
        await self._events.get_run(principal.tenant_id, run_id)
        return await self._store.get(principal.tenant_id, run_id, name)
