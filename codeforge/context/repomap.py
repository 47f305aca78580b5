"""The repo map: the folder's most relevant signatures, ranked, within a token budget.

    snapshot (indexer) -> rank (ranking) -> fit (render)

A rendered map is cached under (file-set fingerprint, focus, mentions, budget): with
nothing changed, a map is a stat walk and one cache read. Focus items name files
(a path relative to the root, or a unique path suffix) or symbols; the task text
contributes the identifiers and file names it mentions. As in Aider, focus files
steer the ranking but their own symbols are left out (the agent has them open).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from codeforge.context.indexer import Snapshot
from codeforge.context.ranking import Ranking, rank
from codeforge.context.render import Entry, Renderer, entries_of, fit
from codeforge.context.terms import identifiers

MAP_VERSION = "1"
_WORDS = re.compile(r"[\w./-]+")


class MapSymbol(msgspec.Struct, frozen=True):
    name: str
    kind: str
    line: int  # 1-based
    end_line: int
    signature: str
    rank: float


class MapFile(msgspec.Struct, frozen=True):
    path: str
    rank: float
    symbols: list[MapSymbol]


class RepoMap(msgspec.Struct, frozen=True):
    text: str
    tokens: int
    budget: int
    files: list[MapFile]  # in rank order: the file of the best-ranked symbol first
    files_total: int  # source files in the folder
    focus_files: list[str]
    mentioned_symbols: list[str]
    fingerprint: str  # of the file set the map was made from


@dataclass(frozen=True)
class Focus:
    files: frozenset[str]
    mentioned_files: frozenset[str]
    idents: frozenset[str]

    def key(self) -> str:
        return "|".join(
            ",".join(sorted(s)) for s in (self.files, self.mentioned_files, self.idents)
        )


def resolve_focus(paths: Sequence[str], focus: Sequence[str], query: str = "") -> Focus:
    """Sort focus items into files and symbols; pick file names and identifiers from `query`."""
    known = set(paths)
    files: set[str] = set()
    idents: set[str] = set()
    for item in focus:
        found = _match_path(item, known, paths)
        if found:
            files.add(found)
        elif item.strip():
            idents.add(item.strip())
    mentioned: set[str] = set()
    if query:
        by_name: dict[str, list[str]] = {}
        for p in paths:
            by_name.setdefault(p.rsplit("/", 1)[-1], []).append(p)
        for word in _WORDS.findall(query):
            word = word.strip("./")
            if word in known:
                mentioned.add(word)
            elif len(by_name.get(word, ())) == 1:
                mentioned.add(by_name[word][0])
        idents |= identifiers(query)
    return Focus(frozenset(files), frozenset(mentioned), frozenset(idents))


def _match_path(item: str, known: set[str], paths: Sequence[str]) -> str | None:
    candidate = item.strip().replace("\\", "/").removeprefix("./")
    if candidate in known:
        return candidate
    if "/" in candidate or "." in candidate:
        suffix = "/" + candidate.lstrip("/")
        matches = [p for p in paths if p.endswith(suffix)]
        if len(matches) == 1:
            return matches[0]
    return None


def result_key(snapshot: Snapshot, focus: Focus, budget: int) -> str:
    raw = f"map:{MAP_VERSION}:{snapshot.fingerprint}:{focus.key()}:{budget}"
    return hashlib.sha1(raw.encode(), usedforsecurity=False).hexdigest()


def ranking_for(snapshot: Snapshot, focus: Focus) -> Ranking:
    return rank(
        snapshot.paths,
        snapshot.rank_rows,
        focus_files=set(focus.files),
        mentioned_files=set(focus.mentioned_files),
        mentioned_idents=set(focus.idents),
    )


def build_map(snapshot: Snapshot, focus: Focus, budget: int) -> RepoMap:
    ranking = ranking_for(snapshot, focus)
    renderer = Renderer(snapshot.paths, snapshot.file_tags)
    fitted = fit(entries_of(ranking), renderer.render, budget)
    return RepoMap(
        text=fitted.text,
        tokens=fitted.tokens,
        budget=budget,
        files=_structured(snapshot, ranking, fitted.entries),
        files_total=len(snapshot.paths),
        focus_files=sorted(focus.files),
        mentioned_symbols=sorted(focus.idents),
        fingerprint=snapshot.fingerprint,
    )


def _structured(snapshot: Snapshot, ranking: Ranking, entries: list[Entry]) -> list[MapFile]:
    """Files in the order the map ranked them (by their first entry), symbols by line."""
    symbols: dict[int, list[MapSymbol]] = {}
    for e in entries:
        listed = symbols.setdefault(e.file, [])
        if e.def_index is None:
            continue
        d = snapshot.file_tags(e.file).defs[e.def_index]
        listed.append(MapSymbol(d.name, d.kind, d.line + 1, d.end + 1, d.signature, e.rank))
    return [
        MapFile(
            snapshot.paths[f],
            float(ranking.file_rank[f]),
            sorted(listed, key=lambda s: s.line),
        )
        for f, listed in symbols.items()
    ]
