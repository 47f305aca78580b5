"""The model registry: models added through the API, and models from the config file.

Config models are loaded at start as `source: config` into the default tenant
and are read-only through the API: the config file is where they change.

`import_from_proxy` registers what a LiteLLM proxy serves (its `/model/info`): each chat
model under its proxy name, reached through the proxy, with the proxy's prices (per
token there, per million tokens here) and context window. A model of the same name is
updated — unless it comes from the config file, which is never overwritten.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog
from msgspec import Struct

from codeforge.domain.errors import Forbidden, NotFound, ValidationFailed
from codeforge.domain.ids import DEFAULT_TENANT_ID, new_id
from codeforge.domain.keys import Principal
from codeforge.domain.model_configs import PER_MILLION, ModelConfig, ModelSource
from codeforge.ports.errors import DependencyUnavailable, PortError
from codeforge.ports.llm import (
    LanguageModel,
    LlmBadResponse,
    LlmError,
    LlmModelNotFound,
    ModelEndpoint,
)
from codeforge.ports.stores import ModelConfigStore
from codeforge.services.catalog import Catalog
from codeforge.services.clock import Clock, utc_now
from codeforge.services.secrets import Secrets
from codeforge.settings import LlmSettings, ModelSettings

log = structlog.get_logger("codeforge.models")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
# LiteLLM's model_info.mode for models served on /chat/completions (absent: chat).
CHAT_MODES = {"chat", "completion", "responses", None}


class Skipped(Struct, frozen=True):
    name: str
    reason: str


class ImportReport(Struct, frozen=True, kw_only=True):
    """What an import from a LiteLLM proxy did, by model name."""

    source: str
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    skipped: list[Skipped] = []


class Models(Catalog[ModelConfig]):
    def __init__(
        self,
        store: ModelConfigStore,
        clock: Clock = utc_now,
        *,
        llm: LanguageModel | None = None,
        secrets: Secrets | None = None,
        llm_settings: LlmSettings | None = None,
    ) -> None:
        super().__init__(store, clock)
        self._models = store
        # For imports from a LiteLLM proxy (by default llm.base_url).
        self._llm = llm
        self._secrets = secrets
        self._llm_settings = llm_settings or LlmSettings()

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

    async def all(self, principal: Principal) -> list[ModelConfig]:
        """Every model of the caller's tenant."""
        found: list[ModelConfig] = []
        after = None
        while True:
            page = await self._store.list(principal.tenant_id, limit=200, after=after, filters={})
            found += page.items
            if page.next_cursor is None:
                return found
            after = uuid.UUID(page.next_cursor)

    async def import_from_proxy(
        self,
        principal: Principal,
        *,
        base_url: str | None = None,
        api_key_secret: str | None = None,
    ) -> ImportReport:
        """Register (or update) every chat model a LiteLLM proxy serves, in the caller's
        tenant. Defaults: `llm.base_url` and `llm.api_key_secret`."""
        principal.require_mutation()
        settings = self._llm_settings
        url = (base_url or settings.base_url).rstrip("/")
        secret = settings.api_key_secret if api_key_secret is None else api_key_secret
        if not url:
            raise ValidationFailed(
                "no LiteLLM proxy is configured: set llm.base_url (the proxy's API root, "
                "e.g. http://litellm:4000/v1) and llm.api_key_secret, or send base_url",
                field="base_url",
            )
        if self._llm is None or self._secrets is None:
            raise ValidationFailed("model import is not available in this process")
        _validate({"name": "proxy", "base_url": url})
        try:
            key = self._secrets.require(secret) if secret else ""
            entries = await self._llm.model_info(ModelEndpoint(base_url=url, model="", api_key=key))
        except DependencyUnavailable:
            raise  # 503: the proxy is out of reach, try again later
        except (LlmModelNotFound, LlmBadResponse) as e:
            raise ValidationFailed(
                f"{url} does not answer like a LiteLLM proxy (no model list at "
                f"{url}/model/info): import needs a LiteLLM proxy's API root, e.g. "
                f"http://litellm:4000/v1 ({e.message})",
                field="base_url",
            ) from e
        except (LlmError, PortError) as e:
            message = e.message if isinstance(e, LlmError) else str(e)
            raise ValidationFailed(
                f"cannot read the model list of the LiteLLM proxy at {url}: {message}",
                field="base_url",
            ) from e
        report = ImportReport(source=url)
        seen: set[str] = set()
        for entry in entries:
            name = entry["model_name"]
            if name in seen:  # one name, several deployments: LiteLLM balances them
                continue
            seen.add(name)
            fields, reason = _imported(entry, url, secret)
            if fields is None:
                report.skipped.append(Skipped(name, reason))
                continue
            outcome = await self._upsert(principal, fields)
            if isinstance(outcome, Skipped):
                report.skipped.append(outcome)
            else:
                getattr(report, outcome).append(name)
        log.info(
            "models imported",
            source=url,
            created=len(report.created),
            updated=len(report.updated),
            skipped=len(report.skipped),
        )
        return report

    async def _upsert(self, principal: Principal, fields: dict[str, Any]) -> str | Skipped:
        name = fields["name"]
        try:
            _validate(fields)
        except ValidationFailed as e:
            return Skipped(name, e.message)
        now = self._clock()
        try:
            current = await self._models.get_by_name(principal.tenant_id, name)
        except NotFound:
            await self._store.add(
                ModelConfig(
                    id=new_id(),
                    tenant_id=principal.tenant_id,
                    source=ModelSource.API,
                    created_at=now,
                    updated_at=now,
                    **fields,
                )
            )
            return "created"
        if current.source is ModelSource.CONFIG:
            return Skipped(name, "comes from the configuration file, which is never overwritten")
        if _fields_of(current) == fields:
            return "unchanged"
        await self._store.update(current.evolve(now, **fields))
        return "updated"


def _imported(
    entry: dict[str, Any], base_url: str, secret: str
) -> tuple[dict[str, Any] | None, str]:
    """A proxy deployment as model fields, or (None, why it is skipped)."""
    info = entry.get("model_info")
    info = info if isinstance(info, dict) else {}
    mode = info.get("mode")
    if mode not in CHAT_MODES:
        return None, f"a {mode} model, not a chat model"
    window = info.get("max_input_tokens") or info.get("max_tokens")
    fields: dict[str, Any] = {
        "name": entry["model_name"],
        "base_url": base_url,
        "model": entry["model_name"],  # the proxy routes by its own name
        "api_key_secret": secret,
        "input_price_per_mtok": _per_million(info.get("input_cost_per_token")),
        "output_price_per_mtok": _per_million(info.get("output_cost_per_token")),
        "context_window": window if isinstance(window, int) and window > 0 else 128_000,
    }
    return fields, ""


def _per_million(per_token: Any) -> Decimal | None:
    if per_token is None or isinstance(per_token, bool) or not isinstance(per_token, int | float):
        return None
    try:
        value = Decimal(str(per_token)) * PER_MILLION
    except InvalidOperation:
        return None
    if not value.is_finite() or value < 0:
        return None
    # 2.5e-06 per token is 2.5 per million, not 2.5000000 (nor 1E+1 for 10).
    return value.quantize(Decimal(1)) if value == value.to_integral() else value.normalize()


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
