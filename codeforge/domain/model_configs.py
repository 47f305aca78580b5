"""Model configurations: where a model is served and what it costs."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from codeforge.domain.entity import Entity

PER_MILLION = Decimal(1_000_000)


class ModelSource(StrEnum):
    # Created through the API: editable there.
    API = "api"
    # Loaded from the configuration at start: read-only through the API.
    CONFIG = "config"


class ModelConfig(Entity, frozen=True, kw_only=True):
    # The name agents refer to, e.g. "gpt-4o" or "local-qwen".
    name: str
    base_url: str
    # The model id sent to the provider.
    model: str
    # The NAME of the secret holding the provider's API key, never the key.
    api_key_secret: str = ""
    input_price_per_mtok: Decimal | None = None
    output_price_per_mtok: Decimal | None = None
    context_window: int = 128_000
    source: ModelSource = ModelSource.API

    @property
    def priced(self) -> bool:
        return self.input_price_per_mtok is not None and self.output_price_per_mtok is not None

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal | None:
        if self.input_price_per_mtok is None or self.output_price_per_mtok is None:
            return None
        return (
            self.input_price_per_mtok * input_tokens + self.output_price_per_mtok * output_tokens
        ) / PER_MILLION
