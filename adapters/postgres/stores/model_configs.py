"""Model configurations in PostgreSQL (table `model_configs`, migration 0002)."""

from __future__ import annotations

import uuid

from adapters import store_rules as rules
from adapters.postgres.stores.base import PostgresEntityStore, Unique
from codeforge.domain.errors import NotFound
from codeforge.domain.model_configs import ModelConfig


class PostgresModelConfigStore(PostgresEntityStore[ModelConfig]):
    """Implements `codeforge.ports.stores.ModelConfigStore`."""

    entity_type = ModelConfig
    table = "model_configs"
    noun = "model"
    filters = {"name": "name", "source": "source"}
    unique = {
        "model_configs_tenant_name_key": Unique("name", "a model named {value!r} already exists")
    }
    int_fields = ("context_window",)

    async def get_by_name(self, tenant_id: uuid.UUID, name: str) -> ModelConfig:
        if rules.storable_text(name):
            found = await self._find(
                "tenant_id = %(scope)s AND name = %(name)s", {"scope": tenant_id, "name": name}
            )
            if found is not None:
                return found
        raise NotFound(f"no model named {name!r}", field="name")
