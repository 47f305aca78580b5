"""The repo map as text: ranked signatures inside their enclosing scopes, fit to a budget.

Like Aider's tree context: for each chosen definition the map shows its signature
(the header lines up to its body) and the headers of the classes, impls and
namespaces around it; `⋮` marks elided lines. Files are listed in path order (a
stable prefix is friendlier to prompt caches); a file with nothing chosen in it is
listed by name. `fit` binary-searches how many ranked entries fit the budget.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import overload

from codeforge.context.budget import count_tokens
from codeforge.context.ranking import Ranking
from codeforge.context.tags import FileTags

GAP = "⋮"
BAR = "│"


@dataclass(frozen=True)
class Entry:
    file: int
    def_index: int | None  # None: the file by name only
    rank: float


@dataclass(frozen=True)
class Fitted:
    text: str
    tokens: int
    entries: list[Entry]


class Entries(Sequence[Entry]):
    """The map's entries in rank order, expanded only as far as they are read.

    Its length is an upper bound until everything was read (a ranked pair may
    stand for several definitions, or for none once focus files are left out).
    """

    def __init__(self, ranking: Ranking) -> None:
        self._source = itertools.chain(
            (Entry(s.file, s.def_index, s.rank) for s in ranking.symbols()),
            (Entry(f, None, float(ranking.file_rank[f])) for f in ranking.trailing_files),
        )
        self._read: list[Entry] = []
        self._bound = int(ranking.pair_files.size) + len(ranking.trailing_files)

    def _read_to(self, count: int) -> None:
        while len(self._read) < count:
            item = next(self._source, None)
            if item is None:
                self._bound = len(self._read)
                return
            self._read.append(item)

    def __len__(self) -> int:
        return max(self._bound, len(self._read))

    @overload
    def __getitem__(self, index: int) -> Entry: ...
    @overload
    def __getitem__(self, index: slice) -> list[Entry]: ...
    def __getitem__(self, index: int | slice) -> Entry | list[Entry]:
        if isinstance(index, slice):
            stop = len(self) if index.stop is None else index.stop
            self._read_to(stop)
            return self._read[index]
        self._read_to(index + 1)
        return self._read[index]


def entries_of(ranking: Ranking) -> Entries:
    return Entries(ranking)


class Renderer:
    def __init__(self, paths: Sequence[str], tags_of: Callable[[int], FileTags]) -> None:
        self._paths = paths
        self._tags_of = tags_of
        self._headers: dict[tuple[int, int], list[tuple[int, str]]] = {}

    def render(self, entries: Sequence[Entry]) -> str:
        chosen: dict[int, set[int]] = {}
        for e in entries:
            defs = chosen.setdefault(e.file, set())
            if e.def_index is not None:
                defs.add(e.def_index)
        parts: list[str] = []
        for f in sorted(chosen, key=lambda i: self._paths[i]):
            if not chosen[f]:
                parts.append(f"{self._paths[f]}\n")
                continue
            parts.append(self._file(f, chosen[f]))
        return "".join(parts)

    def _file(self, f: int, def_indexes: set[int]) -> str:
        shown: dict[int, str] = {}
        for i in def_indexes:
            for line, text in self._lines_for(f, i):
                shown[line] = text
        out = [f"\n{self._paths[f]}:\n"]
        previous = -1
        for line in sorted(shown):
            if line > previous + 1:
                out.append(f"{GAP}\n")
            out.append(f"{BAR}{shown[line]}\n")
            previous = line
        if previous < self._tags_of(f).lines - 1:
            out.append(f"{GAP}\n")
        return "".join(out)

    def _lines_for(self, f: int, i: int) -> list[tuple[int, str]]:
        key = (f, i)
        cached = self._headers.get(key)
        if cached is not None:
            return cached
        tags = self._tags_of(f)
        d = tags.defs[i]
        lines: list[tuple[int, str]] = []
        # Enclosing definitions and scopes, outermost first, then the definition itself.
        for other in tags.defs:
            if (
                other is not d
                and other.start <= d.start
                and other.end >= d.end
                and (other.start < d.start or other.end > d.end)
            ):
                lines.extend(_numbered(other.start, other.signature))
        for scope in tags.scopes:
            if scope.start <= d.start and scope.end >= d.end:
                lines.extend(_numbered(scope.start, scope.signature))
        lines.extend(_numbered(d.start, d.signature))
        self._headers[key] = lines
        return lines


def _numbered(start: int, signature: str) -> list[tuple[int, str]]:
    return [(start + k, text) for k, text in enumerate(signature.split("\n"))]


def fit(
    entries: Sequence[Entry],
    render: Callable[[Sequence[Entry]], str],
    budget: int,
    *,
    count: Callable[[str], int] = count_tokens,
    close_enough: float = 0.05,
) -> Fitted:
    """The longest prefix of `entries` whose rendering stays within `budget` tokens.

    Binary search over the prefix length (rendering grows with it), starting where
    a typical entry size (25 tokens) says the answer is; it stops early once a
    rendering uses at least 95% of the budget.
    """
    best = Fitted("", 0, [])
    if budget <= 0 or not entries:
        return best
    low, high = 0, len(entries)
    middle = min(budget // 25, len(entries))
    while low <= high:
        text = render(entries[:middle])
        tokens = count(text)
        if tokens <= budget and (tokens > best.tokens or not best.entries):
            best = Fitted(text, tokens, list(entries[:middle]))
            if tokens >= budget * (1 - close_enough):
                break
        if tokens < budget:
            low = middle + 1
        else:
            high = middle - 1
        middle = (low + high) // 2
    return best
