"""/api/v1/models — the model registry."""

from __future__ import annotations

import uuid

from litestar import Controller
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from codeforge.domain.keys import Principal
from codeforge.domain.model_configs import ModelConfig, ModelSource
from codeforge.http.api.params import Cursor, IdempotencyKey, Limit, Version, cursor_id, filters
from codeforge.http.api.routes import delete, get, patch, post
from codeforge.http.api.schemas import (
    ListPage,
    ModelCreate,
    ModelHealthList,
    ModelImport,
    ModelUpdate,
)
from codeforge.services.model_health import ModelCheck, ModelHealth
from codeforge.services.models import ImportReport, Models


class ModelController(Controller):
    path = "/models"
    tags = ["models"]

    @post("/", summary="Register a model (an OpenAI-compatible endpoint and its prices)")
    async def create(
        self,
        data: JSONBody[ModelCreate],
        models: NamedDependency[Models],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> ModelConfig:
        fields = data.changes()
        fields["model"] = fields.get("model") or data.name
        return await models.create(principal, **fields)

    @get("/", summary="List models (config-file models are read-only: source=config)")
    async def list_models(
        self,
        models: NamedDependency[Models],
        principal: NamedDependency[Principal],
        limit: Limit = 50,
        cursor: Cursor = None,
        name: FromQuery[str | None] = None,
        source: FromQuery[ModelSource | None] = None,
    ) -> ListPage[ModelConfig]:
        page = await models.list(
            principal,
            limit=limit,
            after=cursor_id(cursor),
            filters=filters(name=name, source=source),
        )
        return ListPage(page.items, page.next_cursor)

    @get("/{model_id:uuid}", summary="Get a model")
    async def get_model(
        self,
        model_id: FromPath[uuid.UUID],
        models: NamedDependency[Models],
        principal: NamedDependency[Principal],
    ) -> ModelConfig:
        return await models.get(principal, model_id)

    @patch("/{model_id:uuid}", summary="Change a model (send the version you read)")
    async def update(
        self,
        model_id: FromPath[uuid.UUID],
        data: JSONBody[ModelUpdate],
        models: NamedDependency[Models],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> ModelConfig:
        return await models.update(principal, model_id, data.version, data.changes())

    @delete("/{model_id:uuid}", summary="Delete a model")
    async def remove(
        self,
        model_id: FromPath[uuid.UUID],
        models: NamedDependency[Models],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
        version: Version = None,
    ) -> None:
        await models.delete(principal, model_id, version)

    @post(
        "/{model_id:uuid}/check",
        summary="Check a model now: a minimal real chat call, its latency or its error",
        status_code=200,
    )
    async def check(
        self,
        model_id: FromPath[uuid.UUID],
        model_health: NamedDependency[ModelHealth],
        principal: NamedDependency[Principal],
    ) -> ModelCheck:
        return await model_health.check(principal, model_id)

    @get("/health", summary="The latest health check of each of the tenant's models")
    async def health(
        self,
        models: NamedDependency[Models],
        model_health: NamedDependency[ModelHealth],
        principal: NamedDependency[Principal],
    ) -> ModelHealthList:
        return ModelHealthList(model_health.latest(await models.all(principal)))

    @post(
        "/import",
        summary="Register the chat models a LiteLLM proxy serves, with its prices",
        status_code=200,
    )
    async def import_models(
        self,
        models: NamedDependency[Models],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
        data: JSONBody[ModelImport | None] = None,
    ) -> ImportReport:
        body = data or ModelImport()
        return await models.import_from_proxy(
            principal, base_url=body.base_url, api_key_secret=body.api_key_secret
        )
