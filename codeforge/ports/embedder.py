"""Embedders: texts to vectors, for semantic code search.

Adapters: a local MiniLM model that runs offline on the CPU
(`adapters/embeddings/local.py`, the optional `[embeddings]` extra), a feature-hashing
embedder with no model at all (`adapters/embeddings/hashing.py`, for tests and as a
lexical stand-in), and later an OpenAI-compatible endpoint.

Contract (one suite, `tests/contract/test_embedder_contract.py`, runs it against every
adapter):

- `embed(texts)` returns one vector per text, in order, each of `dimensions` floats with
  unit L2 norm (so a dot product is the cosine); no texts, no vectors.
- The same text gives the same vector (to float32 precision) on every call: vectors are
  cached by (model, text), so an embedder whose output drifts would poison the cache.
- `model` names the model and its version; it is part of every cache key.
- Empty or whitespace-only texts are allowed and still get a unit vector.
- A model that cannot be loaded or reached raises `EmbedderUnavailable`, with what to
  do about it (install the extra, check the endpoint) — never an ImportError.
- Cancellation (asyncio) is honoured between batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from codeforge.ports.errors import DependencyUnavailable

__all__ = ["Embedder", "EmbedderUnavailable"]


class EmbedderUnavailable(DependencyUnavailable):
    """The model cannot be loaded or reached; the message says how to fix it."""


class Embedder(Protocol):
    @property
    def model(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...
