"""A feature-hashing embedder: no model, no download, deterministic.

Each identifier-aware term of the text (see `codeforge.context.terms`) adds ±1 to
one of `dimensions` buckets chosen by its hash; the vector is L2-normalised. It
captures shared vocabulary, not meaning, so it is no substitute for a language
model — it exists so the semantic path (vector cache, cosine search, fusion) runs
and is tested everywhere, and it is what the embedder contract is checked on
without the optional extra.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from codeforge.context.terms import term_hash, terms

DEFAULT_DIMENSIONS = 256


class HashingEmbedder:
    def __init__(self, dimensions: int = DEFAULT_DIMENSIONS) -> None:
        if dimensions < 8:
            raise ValueError("a hashing embedder needs at least 8 dimensions")
        self._dimensions = dimensions

    @property
    def model(self) -> str:
        return f"feature-hashing-{self._dimensions}"

    @property
    def dimensions(self) -> int:
        return self._dimensions

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def _one(self, text: str) -> list[float]:
        vector = [0.0] * self._dimensions
        for term in terms(text):
            h = term_hash(term)
            vector[h % self._dimensions] += 1.0 if (h >> 32) & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vector))
        if norm == 0.0:
            vector[0] = 1.0  # an empty text still gets a unit vector
            return vector
        return [v / norm for v in vector]
