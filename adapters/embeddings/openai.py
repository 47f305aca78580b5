"""Embeddings from an OpenAI-compatible endpoint (OpenAI, a LiteLLM proxy, Ollama, vLLM).

Goes through the `LanguageModel` port's `embed` (the same adapter, retries, circuit
breaker and typed errors as chat calls), for a model registered like any other
(`context.embedding_model` names it). Vectors are L2-normalised here, since not every
provider returns unit vectors and the engine's cosine search needs them. The number of
dimensions is learnt from the first answer. An endpoint that cannot be reached is
`EmbedderUnavailable`, which the engine reports as a notice, not an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from codeforge.ports.embedder import EmbedderUnavailable
from codeforge.ports.llm import LanguageModel, LlmError, ModelEndpoint

BATCH = 64


class OpenAICompatibleEmbedder:
    def __init__(self, llm: LanguageModel, endpoint: ModelEndpoint, name: str) -> None:
        self._llm = llm
        self._endpoint = endpoint
        self._name = name
        self._dimensions = 0

    @property
    def model(self) -> str:
        return f"openai-compatible:{self._name}:{self._endpoint.model}"

    @property
    def dimensions(self) -> int:
        return self._dimensions

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            # Some providers refuse empty input: a lone space means the same.
            batch = [t if t.strip() else " " for t in texts[start : start + BATCH]]
            try:
                answer = await self._llm.embed(self._endpoint, batch)
            except LlmError as e:
                raise EmbedderUnavailable(
                    f"the embedding model {self._name!r} could not be used: {e.message}"
                ) from e
            vectors.extend(_unit(v) for v in answer)
        if vectors and not self._dimensions:
            self._dimensions = len(vectors[0])
        return vectors


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0:
        return [1.0] + [0.0] * (len(vector) - 1)
    return [x / norm for x in vector]
