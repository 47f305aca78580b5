"""Search results and context packs: what the engine hands to people and agents.

Several rankings of the same search chunks — keyword (BM25), semantic (vectors),
repo map (PageRank of the definitions, personalised by the focus and the query)
and code graph (neighbours of the best hits and of the focus) — are fused with
weighted reciprocal rank fusion: a chunk scores sum(weight / (K + rank)) over the
rankings it appears in, so agreement between signals beats one strong signal.
The query-driven signals weigh 1; the structural ones (repo map, graph) 0.3: they
say what matters in the code base, not what the query asks, so they break ties
and lift neighbours of good hits rather than lead. Each result
says why it was chosen. A context pack takes the fused results in order, with
their text, until the token budget is spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

RRF_K = 60
WEIGHTS = {"keyword": 1.0, "semantic": 1.0, "repo map": 0.3, "graph": 0.3}


class SearchHit(msgspec.Struct, frozen=True):
    path: str
    start_line: int  # 1-based, inclusive
    end_line: int
    symbol: str  # the definition the lines hold, "" for other lines
    score: float
    why: list[str]  # one reason per ranking it came from, e.g. "keyword #1 (bm25 7.31)"
    preview: str = ""  # the first line of the chunk


class SearchResults(msgspec.Struct, frozen=True):
    query: str
    hits: list[SearchHit]
    signals: list[str]  # the rankings that took part: keyword, semantic, repo map, graph
    notices: list[str]  # what was degraded and why (e.g. no embedding model)
    fingerprint: str
    elapsed_ms: float


class PackItem(msgspec.Struct, frozen=True):
    path: str
    start_line: int
    end_line: int
    symbol: str
    why: list[str]
    tokens: int
    text: str


class ContextPack(msgspec.Struct, frozen=True, kw_only=True):
    """The context an agent is given for a task, reproducible from what is stored here.

    Stored as a run event later, so new fields must always get defaults.
    """

    query: str
    focus: list[str] = []
    token_budget: int
    tokens: int
    items: list[PackItem]
    signals: list[str] = []
    notices: list[str] = []
    fingerprint: str = ""  # of the file set it was built from
    elapsed_ms: float = 0.0


@dataclass
class Fused:
    chunk: int
    score: float = 0.0
    why: list[str] = field(default_factory=list)


def fuse(rankings: Sequence[tuple[str, list[tuple[int, str]]]]) -> list[Fused]:
    """Reciprocal rank fusion of (signal name, [(chunk, detail)...] best first) rankings."""
    fused: dict[int, Fused] = {}
    for name, ranked in rankings:
        for position, (chunk, detail) in enumerate(ranked, 1):
            item = fused.setdefault(chunk, Fused(chunk))
            item.score += WEIGHTS.get(name, 1.0) / (RRF_K + position)
            item.why.append(f"{name} #{position}" + (f" ({detail})" if detail else ""))
    return sorted(fused.values(), key=lambda f: (-f.score, f.chunk))
