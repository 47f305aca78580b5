"""Ranking files and symbols the way Aider's repo map does.

A file that references a name another file defines points at it. Each edge is
weighted by how telling the name is (long compound names x10, names the task
mentions x10, private names x0.1, names defined in more than five files x0.1) and
by how often it is used (square root of the count); edges out of focus files
weigh x50. Personalised PageRank over the files (focus files, files the task
names and files whose path parts the task mentions get the restart mass) ranks
the files; each file's rank flows along its out-edges to the (file, name)
definitions they point at, which ranks the symbols.

Everything is vectorised: names are joined by their 64-bit hashes, so no Python
loop runs over references. Deliberate differences from Aider: it takes the
square root of the use count once per definer, compounding for names defined in
several files, where here it is taken once; files defining a named symbol are
personalised like files whose path the task names; and names link files of one
language family only (C with C++, JavaScript with TypeScript), where Aider links a Python
call of `parse` to a `parse` defined in C.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from codeforge.context.pagerank import pagerank
from codeforge.context.tags import RankRow
from codeforge.context.terms import term_hash

Array = np.ndarray[Any, Any]

MENTIONED = 10.0
FOCUS_REFERENCER = 50.0
WIDELY_DEFINED = 5
UNREFERENCED_SELF_EDGE = 0.1


@dataclass(frozen=True)
class RankedSymbol:
    file: int  # index into the ranked files' paths
    def_index: int  # index into that file's definitions
    rank: float


@dataclass
class Ranking:
    """Files by rank, and (file, name) pairs by rank, best first, focus files left out.

    A pair stands for every definition of that name in that file; `symbols()`
    expands pairs lazily, since a map rarely needs more than the first few hundred.
    """

    paths: list[str]
    file_rank: Array  # per path
    pair_files: Array
    pair_hashes: Array
    pair_ranks: Array
    tags: Sequence[RankRow] = field(repr=False)
    # Files in map order after the symbols: ranked files with no ranked pair, then the rest.
    trailing_files: list[int] = field(default_factory=list)

    def symbols(self) -> Iterator[RankedSymbol]:
        by_hash: dict[int, dict[int, list[int]]] = {}
        for f, h, r in zip(
            self.pair_files.tolist(),
            self.pair_hashes.tolist(),
            self.pair_ranks.tolist(),
            strict=True,
        ):
            index = by_hash.get(f)
            if index is None:
                index = by_hash[f] = {}
                for i, value in enumerate(self.tags[f].def_hash_array().tolist()):
                    index.setdefault(value, []).append(i)
            for i in index.get(h, ()):
                yield RankedSymbol(f, i, r)


def rank(
    paths: Sequence[str],
    tags: Sequence[RankRow],
    *,
    focus_files: set[str] = frozenset(),  # type: ignore[assignment]
    mentioned_files: set[str] = frozenset(),  # type: ignore[assignment]
    mentioned_idents: set[str] = frozenset(),  # type: ignore[assignment]
) -> Ranking:
    n = len(paths)
    focus = np.zeros(n, dtype=bool)
    personal = np.zeros(n)
    share = 100.0 / max(n, 1)
    for i, path in enumerate(paths):
        value = 0.0
        if path in focus_files:
            value += share
            focus[i] = True
        if path in mentioned_files:
            value = max(value, share)
        if mentioned_idents:
            pure = PurePosixPath(path)
            parts = {*pure.parts, pure.name, pure.stem}
            if parts & mentioned_idents:
                value += share
        personal[i] = value

    def_hash, def_file, def_factor = _definitions(tags)
    wanted = np.fromiter((term_hash(i) for i in mentioned_idents), dtype=np.int64)
    if wanted.size and def_hash.size:
        # A symbol named in the task or the focus is what the user asks about: the files
        # defining it get restart mass too (Aider only boosts the edges that use it).
        personal[np.unique(def_file[np.isin(def_hash, wanted)])] += share
    ref_hash, ref_file, ref_count = _references(tags)
    if ref_hash.size == 0:
        # Nothing is referenced: let every definition count once (as Aider does).
        ref_hash, ref_file, ref_count = def_hash, def_file, np.ones(def_hash.size)

    # (hash, file) definitions, unique, sorted by hash for the join.
    order = np.lexsort((def_file, def_hash))
    def_hash, def_file, def_factor = def_hash[order], def_file[order], def_factor[order]
    if def_hash.size:
        keep = np.ones(def_hash.size, dtype=bool)
        keep[1:] = (def_hash[1:] != def_hash[:-1]) | (def_file[1:] != def_file[:-1])
        def_hash, def_file, def_factor = def_hash[keep], def_file[keep], def_factor[keep]

    unique_hashes, first, definers = np.unique(def_hash, return_index=True, return_counts=True)
    factor = def_factor[first].astype(np.float64)
    factor[definers > WIDELY_DEFINED] *= 0.1
    if wanted.size:
        factor[np.isin(unique_hashes, wanted)] *= MENTIONED

    # Join references to definers.
    at = np.searchsorted(unique_hashes, ref_hash)
    at_clipped = np.minimum(at, max(unique_hashes.size - 1, 0))
    found = (unique_hashes[at_clipped] == ref_hash) if unique_hashes.size else np.zeros(0, bool)
    r_hash_i, r_file, r_count = at[found], ref_file[found], ref_count[found]
    lengths = definers[r_hash_i]
    starts = first[r_hash_i]
    total = int(lengths.sum())
    offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    target = np.repeat(starts, lengths) + offsets  # index into the def arrays
    src = np.repeat(r_file, lengths)
    ident = np.repeat(r_hash_i, lengths)
    weight = factor[ident] * np.sqrt(np.repeat(r_count, lengths).astype(np.float64))
    weight = np.where(focus[src], weight * FOCUS_REFERENCER, weight)
    dst = def_file[target]
    # A Python file calling `make_widget` does not call the C one: names link files of
    # one language family only (C with C++, JavaScript with TypeScript).
    family = _families(tags)
    same = family[src] == family[dst]
    src, dst, ident, weight = src[same], dst[same], ident[same], weight[same]

    # Defined but never referenced: a weak self-edge keeps the definer in the graph.
    referenced = np.zeros(unique_hashes.size, dtype=bool)
    referenced[r_hash_i] = True
    lonely = ~referenced[np.searchsorted(unique_hashes, def_hash)] if def_hash.size else None
    if lonely is not None and lonely.any():
        src = np.concatenate([src, def_file[lonely]])
        dst = np.concatenate([dst, def_file[lonely]])
        ident = np.concatenate([ident, np.searchsorted(unique_hashes, def_hash[lonely])])
        weight = np.concatenate([weight, np.full(int(lonely.sum()), UNREFERENCED_SELF_EDGE)])

    # Only files on some edge are graph nodes (as in Aider); the rest rank last.
    in_graph = np.zeros(n, dtype=bool)
    in_graph[src] = True
    in_graph[dst] = True
    node_of = np.cumsum(in_graph) - 1
    graph_files = np.flatnonzero(in_graph)
    p = personal[graph_files]
    ranks = pagerank(
        graph_files.size, node_of[src], node_of[dst], weight, p if p.sum() > 0 else None
    )
    file_rank = np.zeros(n)
    file_rank[graph_files] = ranks

    # Each file's rank flows along its out-edges to the definitions they name.
    pair_files: Array = np.zeros(0, np.int64)
    pair_hashes: Array = np.zeros(0, np.int64)
    pair_ranks: Array = np.zeros(0)
    if src.size:
        keep = ~focus[dst]
        out_weight = np.bincount(src, weights=weight, minlength=n)
        flow = (file_rank[src] * weight / out_weight[src])[keep]
        key = dst[keep].astype(np.int64) * np.int64(unique_hashes.size) + ident[keep]
        if wanted.size:
            # A named symbol also takes its own file's rank: it is asked for, not only used.
            named = np.isin(def_hash, wanted) & ~focus[def_file]
            named_ident = np.searchsorted(unique_hashes, def_hash[named])
            key = np.concatenate(
                [key, def_file[named].astype(np.int64) * np.int64(unique_hashes.size) + named_ident]
            )
            flow = np.concatenate([flow, file_rank[def_file[named]]])
        keys, inverse = np.unique(key, return_inverse=True)
        totals = np.bincount(inverse, weights=flow)
        best = np.argsort(-totals, kind="stable")
        pair_files = keys[best] // unique_hashes.size
        pair_hashes = unique_hashes[keys[best] % unique_hashes.size]
        pair_ranks = totals[best]
    ranked_files = set(np.unique(pair_files).tolist())
    by_rank = sorted(range(n), key=lambda i: (-file_rank[i], paths[i]))
    trailing = [i for i in by_rank if i not in ranked_files and not focus[i]]
    return Ranking(list(paths), file_rank, pair_files, pair_hashes, pair_ranks, tags, trailing)


def _families(tags: Sequence[RankRow]) -> Array:
    from codeforge.context.graph import FAMILY

    ids: dict[str, int] = {}
    return np.fromiter(
        (ids.setdefault(FAMILY.get(t.language, t.language), len(ids)) for t in tags),
        dtype=np.int32,
        count=len(tags),
    )


def _definitions(tags: Sequence[RankRow]) -> tuple[Array, Array, Array]:
    hashes = [t.def_hash_array() for t in tags]
    sizes = np.fromiter((h.size for h in hashes), dtype=np.int64, count=len(hashes))
    files = np.repeat(np.arange(len(tags)), sizes)
    if not len(tags) or not sizes.sum():
        return np.zeros(0, np.int64), files, np.zeros(0, np.float32)
    factors = np.concatenate([t.def_factor_array() for t in tags])
    return np.concatenate(hashes), files, factors


def _references(tags: Sequence[RankRow]) -> tuple[Array, Array, Array]:
    hashes = [t.ref_hash_array() for t in tags]
    sizes = np.fromiter((h.size for h in hashes), dtype=np.int64, count=len(hashes))
    files = np.repeat(np.arange(len(tags)), sizes)
    if not len(tags) or not sizes.sum():
        return np.zeros(0, np.int64), files, np.zeros(0, np.int32)
    counts = np.concatenate([t.ref_count_array() for t in tags])
    return np.concatenate(hashes), files, counts
