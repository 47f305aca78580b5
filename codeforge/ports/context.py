"""Context for a run's first prompt: what of the repository the model should see.

A `ContextProvider` builds a context pack for a task within a token budget. The
runtime stores the pack's rendered text in `PromptAssembled`, so rewind and replay
rebuild the same prompt. The first provider renders a file tree; the
code-intelligence engine plugs in a repo map and hybrid retrieval behind this port.

Contract: `build` reads the workspace (never writes it), returns within its budget
(`token_count <= token_budget`, counted as the provider's estimate), and degrades
instead of failing: a provider that cannot do its best (no index, no embeddings) says
so in `notices` and returns what it can.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from msgspec import Struct

__all__ = ["ContextItem", "ContextPack", "ContextProvider"]


class ContextItem(Struct, frozen=True, kw_only=True):
    path: str
    start_line: int | None = None
    end_line: int | None = None
    # Why it was chosen ("file tree", "bm25: parse_config", "focus file").
    reason: str = ""
    tokens: int = 0


class ContextPack(Struct, frozen=True, kw_only=True):
    # The text that goes into the prompt.
    text: str
    items: list[ContextItem] = []
    token_count: int = 0
    provider: str = ""
    notices: list[str] = []


class ContextProvider(Protocol):
    async def build(
        self, root: str, query: str, *, token_budget: int, focus: Sequence[str] = ()
    ) -> ContextPack: ...
