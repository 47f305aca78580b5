"""The retrieval sub-agent behind the agent's `find_context` and `code_graph` tools.

`find_context` runs several searches at once — the question as asked, and each
identifier it names (a `parse_header` or `HttpClient` the agent is after) — over the
run's worktree, and returns ONE compact context pack: the fused results of all of
them, overlapping ranges merged away, within a token budget. `code_graph` answers
callers, callees, importers and neighbourhood questions from the code graph.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from pathlib import Path

from codeforge.context.engine import ContextEngine
from codeforge.context.pack import ContextPack, PackItem
from codeforge.context.provider import render

_IDENTIFIER = re.compile(
    r"\b(?:[A-Za-z_][A-Za-z0-9_]*[_.][A-Za-z0-9_.]+|[a-z]+[A-Z][A-Za-z0-9]*|[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*)\b"
)
MAX_SUBQUERIES = 3
RELATIONS = ("callers", "callees", "importers", "imports", "neighbours")


class EngineCodeSearch:
    def __init__(self, engine: ContextEngine, root: str) -> None:
        self._engine = engine
        self._root = root

    async def find_context(self, query: str, focus: Sequence[str], token_budget: int) -> str:
        queries = [query, *subqueries(query)]
        packs = await asyncio.gather(
            *(
                self._engine.context_pack(
                    self._root, q, focus=focus, token_budget=token_budget, wait_for_vectors=0
                )
                for q in queries
            )
        )
        merged = merge(list(packs), token_budget)
        notices = sorted({n for p in packs for n in p.notices})
        head = f"{len(merged.items)} places for {len(queries)} searches ({', '.join(queries)})"
        body = render(merged) if merged.items else "nothing relevant was found"
        tail = "".join(f"\n[note: {n}]" for n in notices)
        return f"{head}:\n{body}{tail}"

    async def graph(self, symbol: str, relation: str, limit: int = 30) -> str:
        if relation not in RELATIONS:
            return f"unknown relation {relation!r}; use one of: {', '.join(RELATIONS)}"
        graph = await asyncio.to_thread(self._engine.graph, Path(self._root))
        if relation == "callers":
            hits = graph.callers(symbol, limit)
        elif relation == "callees":
            hits = graph.callees(symbol, limit)
        elif relation == "importers":
            hits = graph.importers(symbol, limit)
        elif relation == "imports":
            hits = graph.imports_of(symbol, limit)
        else:
            hits = graph.neighbourhood([symbol], 2, limit)
        if not hits:
            known = graph.find(symbol)
            return (
                f"no {relation} of {symbol!r} in the code graph"
                if known
                else f"{symbol!r} is not a symbol, file or module the code graph knows"
            )
        return "\n".join(
            f"{h.path}:{h.line}-{h.end_line} {h.kind} {h.name}".rstrip()
            + (f" ({h.uses} uses)" if h.uses else "")
            for h in hits
        )


def subqueries(query: str) -> list[str]:
    """The identifiers a question names, each a search of its own."""
    found: list[str] = []
    for match in _IDENTIFIER.findall(query):
        name = match.strip(".")
        if len(name) >= 4 and name not in found:
            found.append(name)
    return found[:MAX_SUBQUERIES]


def merge(packs: list[ContextPack], token_budget: int) -> ContextPack:
    """Interleave the packs' items by rank, drop overlaps, stop at the budget."""
    chosen: list[PackItem] = []
    spent = 0
    longest = max((len(p.items) for p in packs), default=0)
    for rank in range(longest):
        for pack in packs:
            if rank >= len(pack.items):
                continue
            item = pack.items[rank]
            if any(_overlap(item, other) for other in chosen):
                continue
            if spent + item.tokens > token_budget:
                continue
            chosen.append(item)
            spent += item.tokens
    first = packs[0]
    return ContextPack(
        query=first.query,
        focus=first.focus,
        token_budget=token_budget,
        tokens=spent,
        items=chosen,
        signals=sorted({s for p in packs for s in p.signals}),
        notices=sorted({n for p in packs for n in p.notices}),
        fingerprint=first.fingerprint,
    )


def _overlap(a: PackItem, b: PackItem) -> bool:
    return a.path == b.path and a.start_line <= b.end_line and b.start_line <= a.end_line
