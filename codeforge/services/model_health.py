"""Model health: is each model reachable, and how fast does it answer.

Two kinds of check, through the `LanguageModel` port:

- **On demand** (`POST /api/v1/models/{id}/check`): a real, minimal chat call — one
  short user message, `max_tokens` 1, no retries, `llm.health_timeout` — that proves the
  endpoint, the key and the model id together, with its latency. It costs a few tokens
  and is not booked to any budget (no run made it).
- **In the background** (every `llm.health_interval` seconds, 0: never): the config
  file's models, with one free `GET /models` per endpoint (base URL and key): reachable,
  key accepted, model listed. A model the endpoint does not list stays "up", with a note
  (some servers list aliases, not every id they answer to).

Results are kept in memory per process, latest per model (`latest`), and feed the
advisory readiness probe `models`: a model that is down is reported under `degraded` in
`/health/ready` — runs using it will fail, but the service itself is ready, so a load
balancer does not take every API and every other model's runs down with it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import structlog
from msgspec import Struct

from codeforge.domain.ids import DEFAULT_TENANT_ID
from codeforge.domain.keys import Principal
from codeforge.domain.model_configs import ModelConfig, ModelSource
from codeforge.ports.errors import PortError
from codeforge.ports.llm import ChatMessage, ChatRequest, LanguageModel, LlmError, ModelEndpoint
from codeforge.ports.stores import ModelConfigStore
from codeforge.services.background import Background
from codeforge.services.clock import Clock, utc_now
from codeforge.services.secrets import Secrets

log = structlog.get_logger("codeforge.models")

PROMPT = "Reply with the single word OK."


class ModelCheck(Struct, frozen=True, kw_only=True):
    """The latest health of one model."""

    model_id: uuid.UUID
    name: str
    status: Literal["up", "down"]
    # "chat": a minimal chat call (on demand); "list": the endpoint's model list (background).
    method: Literal["chat", "list"]
    checked_at: datetime
    latency_ms: float | None = None
    error: str | None = None
    detail: str = ""


class ModelsDown(Exception):
    """Raised by the readiness probe: its message lists the models that are down."""


class ModelHealth:
    def __init__(
        self,
        store: ModelConfigStore,
        llm: LanguageModel,
        secrets: Secrets,
        *,
        interval: float = 60.0,
        timeout: float = 15.0,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._llm = llm
        self._secrets = secrets
        self._interval = interval
        self._timeout = timeout
        self._clock = clock
        self._latest: dict[uuid.UUID, ModelCheck] = {}
        self._loop = Background("model health", self._run)

    # -- on demand ------------------------------------------------------------------------------

    async def check(self, principal: Principal, model_id: uuid.UUID) -> ModelCheck:
        """A real minimal chat call to the model; never raises for the model's failure."""
        # It spends (a little) money, so a read-only key may not.
        principal.require_mutation()
        model = await self._store.get(principal.tenant_id, model_id)
        return await self.check_model(model)

    async def check_model(self, model: ModelConfig) -> ModelCheck:
        started = time.monotonic()
        try:
            response = await self._llm.chat(
                ChatRequest(
                    endpoint=self._endpoint(model),
                    messages=(ChatMessage(role="user", content=PROMPT),),
                    max_tokens=1,
                    temperature=0.0,
                )
            )
        except (LlmError, PortError) as e:
            result = self._result(model, "chat", started, error=_message(e))
        else:
            said = (response.message.content or "").strip()[:40]
            detail = f"{response.model or model.model} answered" + (f" {said!r}" if said else "")
            result = self._result(model, "chat", started, detail=detail)
        self._latest[model.id] = result
        log.info("model checked", model=model.name, status=result.status, error=result.error)
        return result

    def latest(self, models: Sequence[ModelConfig]) -> list[ModelCheck]:
        """The latest result of each of `models` that was checked in this process."""
        return [self._latest[m.id] for m in models if m.id in self._latest]

    # -- in the background ----------------------------------------------------------------------

    def start(self) -> None:
        if self._interval > 0:
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def refresh(self) -> list[ModelCheck]:
        """Check the config file's models now, one model list per endpoint."""
        models = await self._config()
        groups: dict[tuple[str, str], list[ModelConfig]] = {}
        for model in models:
            groups.setdefault((model.base_url.rstrip("/"), model.api_key_secret), []).append(model)
        results = await asyncio.gather(*(self._list_check(group) for group in groups.values()))
        return [check for group in results for check in group]

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # a failed pass must not end the loop
                log.exception("model health pass failed")
            await asyncio.sleep(self._interval)

    async def _config(self) -> list[ModelConfig]:
        found: list[ModelConfig] = []
        after = None
        while True:
            page = await self._store.list(
                DEFAULT_TENANT_ID, limit=200, after=after, filters={"source": ModelSource.CONFIG}
            )
            found += page.items
            if page.next_cursor is None:
                return found
            after = uuid.UUID(page.next_cursor)

    async def _list_check(self, models: list[ModelConfig]) -> list[ModelCheck]:
        started = time.monotonic()
        try:
            listed = await self._llm.list_models(self._endpoint(models[0]))
        except (LlmError, PortError) as e:
            error = _message(e)
            results = [self._result(m, "list", started, error=error) for m in models]
        else:
            ids = {str(entry.get("id")) for entry in listed}
            results = [
                self._result(
                    m,
                    "list",
                    started,
                    detail="listed by its endpoint"
                    if m.model in ids
                    else f"its endpoint answers but does not list {m.model!r}",
                )
                for m in models
            ]
        for result in results:
            self._latest[result.model_id] = result
        return results

    # -- readiness ------------------------------------------------------------------------------

    @property
    def probe(self) -> ModelsProbe:
        return ModelsProbe(self)

    async def summary(self) -> str | None:
        """For the probe, from the latest results (no model is called): raises ModelsDown
        when a config model's latest check failed."""
        models = await self._config()
        if not models:
            return "no models in the configuration file"
        checks = self.latest(models)
        if not checks:
            return f"{len(models)} model(s), not checked yet"
        down = [c for c in checks if c.status == "down"]
        if down:
            raise ModelsDown("; ".join(f"{c.name}: {c.error}" for c in down))
        return ", ".join(f"{c.name} up ({c.latency_ms:.0f} ms)" for c in checks)

    # -- helpers --------------------------------------------------------------------------------

    def _endpoint(self, model: ModelConfig) -> ModelEndpoint:
        key = self._secrets.require(model.api_key_secret) if model.api_key_secret else ""
        return ModelEndpoint(
            base_url=model.base_url,
            model=model.model,
            api_key=key,
            timeout=self._timeout,
            max_retries=0,
        )

    def _result(
        self,
        model: ModelConfig,
        method: Literal["chat", "list"],
        started: float,
        *,
        error: str | None = None,
        detail: str = "",
    ) -> ModelCheck:
        return ModelCheck(
            model_id=model.id,
            name=model.name,
            status="down" if error else "up",
            method=method,
            checked_at=self._clock(),
            latency_ms=round((time.monotonic() - started) * 1000, 1),
            error=error,
            detail=detail,
        )


class ModelsProbe:
    """The advisory readiness probe `models` (register it with `critical=False`)."""

    name = "models"

    def __init__(self, health: ModelHealth) -> None:
        self._health = health

    async def check(self) -> str | None:
        return await self._health.summary()


def _message(error: Exception) -> str:
    return error.message if isinstance(error, LlmError) else str(error)
