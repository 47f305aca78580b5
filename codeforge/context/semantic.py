"""Semantic search: chunk vectors cached on disk, searched in memory.

Vectors are float32, cached in the engine's SQLite file under (model, chunk text)
and, per folder snapshot, held as one matrix; a query is one embedding and one
matrix-vector product. PostgreSQL's pgvector is not used: the local server
usually lacks it, and a folder's vectors fit in memory (the standard library's
~25k chunks x 384 dimensions is 37 MB) — see docs/context.md for when that stops
being true.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from codeforge.context.store import Store
from codeforge.ports.embedder import Embedder

Array = np.ndarray[Any, Any]


def vector_key(model: str, text: str) -> str:
    digest = hashlib.sha1(model.encode(), usedforsecurity=False)
    digest.update(b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


async def embed_cached(embedder: Embedder, store: Store, texts: Sequence[str]) -> Array:
    """A (len(texts), dimensions) float32 matrix; only texts never seen are embedded."""
    keys = [vector_key(embedder.model, t) for t in texts]
    held = store.blobs("vectors", set(keys))
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in held}.items())
    if missing:
        vectors = await embedder.embed([t for _, t in missing])
        fresh = [
            (k, np.asarray(v, dtype="<f4").tobytes())
            for (k, _), v in zip(missing, vectors, strict=True)
        ]
        store.put_blobs("vectors", fresh)
        held.update(fresh)
    matrix = np.zeros((len(texts), embedder.dimensions), dtype=np.float32)
    for i, k in enumerate(keys):
        matrix[i] = np.frombuffer(held[k], dtype="<f4")
    return matrix


class VectorIndex:
    def __init__(self, matrix: Array) -> None:
        self.matrix = matrix

    def search(self, query: Array, limit: int) -> list[tuple[int, float]]:
        if not len(self.matrix) or limit <= 0:
            return []
        scores = self.matrix @ query.astype(np.float32)
        k = min(limit, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(int(i), float(scores[i])) for i in best]
