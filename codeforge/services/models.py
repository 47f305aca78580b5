"""The model registry: models added through the API, and models from the config file.

Config models are loaded at start as `source: config` into the default tenant
and are read-only through the API: the config file is where they change.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

import structlog

from codeforge.domain.errors import Forbidden, NotFound, ValidationFailed
from codeforge.domain.ids import DEFAULT_TENANT_ID, new_id
from codeforge.domain.keys import Principal
from codeforge.domain.model_configs import ModelConfig, ModelSource
from codeforge.ports.stores import ModelConfigStore
from codeforge.services.catalog import Catalog
from codeforge.services.clock import Clock, utc_now
from codeforge.settings import ModelSettings

log = structlog.get_logger("codeforge.models")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


class Models(Catalog[ModelConfig]):
    def __init__(self, store: ModelConfigStore, clock: Clock = utc_now) -> None:
        super().__init__(store, clock)
        self._models = store

    async def create(self, principal: Principal, **fields: Any) -> ModelConfig:
        principal.require_mutation()
        _validate(fields)
        now = self._clock()
        return await self._store.add(
            ModelConfig(
                id=new_id(),
                tenant_id=principal.tenant_id,
                source=ModelSource.API,
                created_at=now,
                updated_at=now,
                **fields,
            )
        )

    def check_update(self, current: ModelConfig, changes: dict[str, Any]) -> None:
        _require_editable(current)
        _validate({**_fields_of(current), **changes})

    async def delete(self, principal: Principal, model_id: uuid.UUID, version: int | None) -> None:
        principal.require_mutation()
        _require_editable(await self._store.get(principal.tenant_id, model_id))
        await super().delete(principal, model_id, version)

    async def load_from_config(self, entries: list[ModelSettings]) -> list[str]:
        """Make the config's models exist as `source: config` (added or brought up to date)."""
        loaded = []
        for entry in entries:
            fields: dict[str, Any] = {
                "name": entry.name,
                "base_url": entry.base_url,
                "model": entry.model or entry.name,
                "api_key_secret": entry.api_key_secret,
                "input_price_per_mtok": _decimal(entry.input_price_per_mtok),
                "output_price_per_mtok": _decimal(entry.output_price_per_mtok),
                "context_window": entry.context_window,
            }
            now = self._clock()
            try:
                current = await self._models.get_by_name(DEFAULT_TENANT_ID, entry.name)
            except NotFound:
                await self._store.add(
                    ModelConfig(
                        id=new_id(),
                        source=ModelSource.CONFIG,
                        created_at=now,
                        updated_at=now,
                        **fields,
                    )
                )
            else:
                if _fields_of(current) != fields or current.source is not ModelSource.CONFIG:
                    await self._store.update(
                        current.evolve(now, source=ModelSource.CONFIG, **fields)
                    )
            loaded.append(entry.name)
        if loaded:
            log.info("models loaded from config", models=loaded)
        return loaded


def _fields_of(model: ModelConfig) -> dict[str, Any]:
    return {
        "name": model.name,
        "base_url": model.base_url,
        "model": model.model,
        "api_key_secret": model.api_key_secret,
        "input_price_per_mtok": model.input_price_per_mtok,
        "output_price_per_mtok": model.output_price_per_mtok,
        "context_window": model.context_window,
    }


def _require_editable(model: ModelConfig) -> None:
    if model.source is ModelSource.CONFIG:
        raise Forbidden(
            f"model {model.name!r} comes from the configuration file and is read-only here; "
            "change it in the config and restart"
        )


def _validate(fields: dict[str, Any]) -> None:
    if not _NAME.match(str(fields.get("name", ""))):
        raise ValidationFailed(
            "a model name is 1-128 letters, digits or . _ : / -, starting with a letter or digit",
            field="name",
        )
    if not str(fields.get("base_url", "")).startswith(("http://", "https://")):
        raise ValidationFailed("base_url must be an http(s) URL", field="base_url")
    for price in ("input_price_per_mtok", "output_price_per_mtok"):
        value = fields.get(price)
        if value is not None and Decimal(value) < 0:
            raise ValidationFailed("prices cannot be negative", field=price)
    window = fields.get("context_window", 1)
    if not isinstance(window, int) or window < 1:
        raise ValidationFailed("context_window must be a positive integer", field="context_window")


def _decimal(value: float | str | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))
