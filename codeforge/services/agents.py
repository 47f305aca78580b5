"""Agents: a backend, a registered model, a policy profile and limits."""

from __future__ import annotations

import re
import uuid
from typing import Any

from codeforge.domain.agents import Agent, Backend
from codeforge.domain.errors import NotFound, ValidationFailed
from codeforge.domain.ids import new_id
from codeforge.domain.keys import Principal
from codeforge.domain.limits import Limits
from codeforge.ports.stores import AgentStore, ModelConfigStore
from codeforge.services.catalog import Catalog
from codeforge.services.clock import Clock, utc_now
from codeforge.services.profile_check import ProfileCheck

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$")


class Agents(Catalog[Agent]):
    def __init__(
        self,
        store: AgentStore,
        models: ModelConfigStore,
        clock: Clock = utc_now,
        *,
        check_profile: ProfileCheck | None = None,
    ) -> None:
        super().__init__(store, clock)
        self._models = models
        self._check_profile = check_profile

    async def create(
        self,
        principal: Principal,
        *,
        name: str,
        model: str,
        backend: Backend = Backend.NATIVE,
        policy_profile: str = "default",
        limits: Limits | None = None,
        instructions: str = "",
    ) -> Agent:
        principal.require_mutation()
        _validate_name(name)
        await self._require_model(principal, model)
        await self._require_profile(principal, policy_profile)
        now = self._clock()
        return await self._store.add(
            Agent(
                id=new_id(),
                tenant_id=principal.tenant_id,
                name=name,
                model=model,
                backend=backend,
                policy_profile=policy_profile,
                limits=limits or Limits(),
                instructions=instructions,
                created_at=now,
                updated_at=now,
            )
        )

    async def update(
        self, principal: Principal, agent_id: uuid.UUID, version: int, changes: dict[str, Any]
    ) -> Agent:
        if "name" in changes:
            _validate_name(changes["name"])
        if "model" in changes:
            await self._require_model(principal, changes["model"])
        if "policy_profile" in changes:
            await self._require_profile(principal, changes["policy_profile"])
        return await super().update(principal, agent_id, version, changes)

    async def _require_profile(self, principal: Principal, name: str) -> None:
        if self._check_profile is not None:
            await self._check_profile(principal.tenant_id, name, project_id=None, whose="agent")

    async def _require_model(self, principal: Principal, model: str) -> None:
        try:
            await self._models.get_by_name(principal.tenant_id, model)
        except NotFound:
            raise ValidationFailed(
                f"no model named {model!r} is registered; add it under /api/v1/models first",
                field="model",
            ) from None


def _validate_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValidationFailed(
            "an agent name is 1-63 letters, digits, spaces, '.', '_' or '-'", field="name"
        )
