"""The code-intelligence engine as the runtime's `ContextProvider`.

A run's first prompt gets, within its token budget: the repository map — the most
relevant definitions, ranked like Aider's repo map and personalised by the task's
words and any focus files — then the code most likely relevant to the task: the fused
keyword, semantic (when vectors are ready; their first build runs in the background
and never delays a run), repo-map and graph ranking, with each chunk's text. If the
engine cannot read the repository (no supported language, a parse failure), the file
tree stands in, with a notice saying why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import structlog

from codeforge.context.engine import ContextEngine
from codeforge.context.pack import ContextPack as EnginePack
from codeforge.domain.errors import DomainError
from codeforge.ports.context import ContextItem, ContextPack, ContextProvider
from codeforge.ports.errors import PortError

log = structlog.get_logger("codeforge.context")

# Share of the budget the map gets; the rest goes to retrieved code.
MAP_SHARE = 0.4


class RepoContextProvider:
    name = "repo-map+retrieval"

    def __init__(self, engine: ContextEngine, fallback: ContextProvider) -> None:
        self._engine = engine
        self._fallback = fallback

    async def build(
        self, root: str, query: str, *, token_budget: int, focus: Sequence[str] = ()
    ) -> ContextPack:
        try:
            repo_map = await asyncio.to_thread(
                self._engine.repo_map,
                Path(root),
                tokens=max(64, int(token_budget * MAP_SHARE)),
                focus=focus,
                query=query[:2000],
            )
            left = max(64, token_budget - repo_map.tokens)
            pack = await self._engine.context_pack(
                root, query[:2000] or "overview", focus=focus, token_budget=left,
                wait_for_vectors=0,
            )  # fmt: skip
        except (DomainError, PortError, OSError, ValueError) as e:
            log.warning("code intelligence unavailable for this prompt", error=str(e))
            fallback = await self._fallback.build(root, query, token_budget=token_budget)
            notice = f"repository map unavailable ({e}); showing the file tree"
            return ContextPack(
                text=fallback.text,
                items=fallback.items,
                token_count=fallback.token_count,
                provider=fallback.provider,
                notices=[notice, *fallback.notices],
            )
        parts = []
        if repo_map.text.strip():
            parts.append(
                "Repository map (the definitions most relevant to the task):\n" + repo_map.text
            )
        if pack.items:
            parts.append("Code likely relevant to the task:\n" + render(pack))
        items = [ContextItem(path=f.path, reason="repo map") for f in repo_map.files[:50]]
        items += [
            ContextItem(
                path=i.path,
                start_line=i.start_line,
                end_line=i.end_line,
                reason="; ".join(i.why),
                tokens=i.tokens,
            )
            for i in pack.items
        ]
        return ContextPack(
            text="\n\n".join(parts),
            items=items,
            token_count=repo_map.tokens + pack.tokens,
            provider=self.name,
            notices=list(pack.notices),
        )


def render(pack: EnginePack) -> str:
    """The pack's chunks as the model reads them: where each is, why, and its lines."""
    blocks = []
    for item in pack.items:
        label = f" ({item.symbol})" if item.symbol else ""
        blocks.append(
            f"--- {item.path}:{item.start_line}-{item.end_line}{label}"
            f" [{'; '.join(item.why)}]\n{item.text.rstrip()}"
        )
    return "\n".join(blocks)
