"""Which model serves a run, and how to reach it.

An agent names a model; it is looked up in the run's tenant first, then among the
models from the config file (the default tenant's, `source: config`). The endpoint
carries the API key resolved from the secret store by the model's secret name.
"""

from __future__ import annotations

import uuid

from codeforge.domain.errors import NotFound
from codeforge.domain.ids import DEFAULT_TENANT_ID
from codeforge.domain.model_configs import ModelConfig
from codeforge.ports.llm import ModelEndpoint
from codeforge.ports.stores import ModelConfigStore
from codeforge.services.secrets import Secrets
from codeforge.settings import LlmSettings


async def find_model(store: ModelConfigStore, tenant: uuid.UUID, name: str) -> ModelConfig:
    for scope in dict.fromkeys((tenant, DEFAULT_TENANT_ID)):
        try:
            return await store.get_by_name(scope, name)
        except NotFound:
            continue
    raise NotFound(f"model {name!r} is not registered (POST /api/v1/models)", field="model")


def endpoint_for(model: ModelConfig, secrets: Secrets, settings: LlmSettings) -> ModelEndpoint:
    """Raises the secret store's SecretNotFound when the model's key is missing."""
    return ModelEndpoint(
        base_url=model.base_url,
        model=model.model,
        api_key=secrets.require(model.api_key_secret) if model.api_key_secret else "",
        timeout=settings.timeout,
        max_retries=settings.max_retries,
    )
