"""/api/v1/policies — stored policies, the presets, and previews of decisions."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from codeforge.domain.keys import Principal
from codeforge.domain.policy.stored import Policy, PolicyScope
from codeforge.http.api.params import Cursor, IdempotencyKey, Limit, Version, cursor_id, filters
from codeforge.http.api.routes import delete, get, patch, post
from codeforge.http.api.schemas import (
    ListPage,
    PolicyCreate,
    PolicyFromPreset,
    PolicyPreviewRequest,
    PolicyUpdate,
    PresetView,
)
from codeforge.services.policies import Policies, PolicyPreview, PreviewCall
from codeforge.services.policy_presets import Preset


def _view(preset: Preset) -> PresetView:
    return PresetView(
        name=preset.name,
        description=preset.description,
        mode=preset.profile.mode.value,
        document=preset.document,
    )


class PolicyController(Controller):
    path = "/policies"
    tags = ["policies"]

    @post("/", summary="Store a policy (a profile, or a global policy: admins only)")
    async def create(
        self,
        data: JSONBody[PolicyCreate],
        policies: NamedDependency[Policies],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Policy:
        return await policies.create(principal, **data.changes())

    @post("/from-preset", summary="Save a preset as a new profile to edit")
    async def from_preset(
        self,
        data: JSONBody[PolicyFromPreset],
        policies: NamedDependency[Policies],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Policy:
        return await policies.from_preset(principal, **data.changes())

    @get("/", summary="List stored policies")
    async def list_policies(
        self,
        policies: NamedDependency[Policies],
        principal: NamedDependency[Principal],
        limit: Limit = 50,
        cursor: Cursor = None,
        # `scope` is a name Litestar reserves for the ASGI scope.
        policy_scope: Annotated[PolicyScope | None, QueryParameter(name="scope")] = None,
        project_id: FromQuery[uuid.UUID | None] = None,
        name: FromQuery[str | None] = None,
    ) -> ListPage[Policy]:
        page = await policies.list(
            principal,
            limit=limit,
            after=cursor_id(cursor),
            filters=filters(scope=policy_scope, project_id=project_id, name=name),
        )
        return ListPage(page.items, page.next_cursor)

    @get("/presets", summary="The preset profiles (config/policies)")
    async def list_presets(
        self, policies: NamedDependency[Policies], principal: NamedDependency[Principal]
    ) -> list[PresetView]:
        return [_view(p) for p in policies.presets()]

    @get("/presets/{name:str}", summary="One preset profile, with its YAML")
    async def get_preset(
        self,
        name: FromPath[str],
        policies: NamedDependency[Policies],
        principal: NamedDependency[Principal],
    ) -> PresetView:
        return _view(policies.preset(name))

    @post("/preview", summary="What the policy decides on one tool call, and why", status_code=200)
    async def preview(
        self,
        data: JSONBody[PolicyPreviewRequest],
        policies: NamedDependency[Policies],
        principal: NamedDependency[Principal],
    ) -> PolicyPreview:
        return await policies.preview(principal, PreviewCall(**data.changes()))

    @get("/{policy_id:uuid}", summary="Get a stored policy")
    async def get_policy(
        self,
        policy_id: FromPath[uuid.UUID],
        policies: NamedDependency[Policies],
        principal: NamedDependency[Principal],
    ) -> Policy:
        return await policies.get(principal, policy_id)

    @patch("/{policy_id:uuid}", summary="Change a policy (send the version you read)")
    async def update(
        self,
        policy_id: FromPath[uuid.UUID],
        data: JSONBody[PolicyUpdate],
        policies: NamedDependency[Policies],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Policy:
        return await policies.update(principal, policy_id, data.version, data.changes())

    @delete("/{policy_id:uuid}", summary="Remove a stored policy")
    async def remove(
        self,
        policy_id: FromPath[uuid.UUID],
        policies: NamedDependency[Policies],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
        version: Version = None,
    ) -> None:
        await policies.delete(principal, policy_id, version)
