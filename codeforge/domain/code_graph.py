"""The code graph as data: symbols of a file set and the edges between them.

Made by the code-intelligence engine (`codeforge.context.graph`) from tags, stored
per project (`CodeGraphStore`), and answered as `GraphHit`s. Pure values.
"""

from __future__ import annotations

import msgspec

MODULE = "<module>"  # the name of a file's top level, which imports and module code hang on


class Symbol(msgspec.Struct, array_like=True, frozen=True):
    file: int  # index into GraphData.paths
    index: int  # definition index in the file's tags, -1 for the file's top level
    name: str
    kind: str
    line: int  # 1-based
    end_line: int


class GraphData(msgspec.Struct, array_like=True, frozen=True):
    """A file set's symbols and resolved edges (what is cached and stored)."""

    paths: list[str]
    symbols: list[Symbol]
    calls: list[tuple[int, int, int]]  # (caller symbol, callee symbol, uses)
    imports: list[tuple[int, int]]  # (importing file, imported file)


class GraphHit(msgspec.Struct, frozen=True):
    """One answer of a graph query: a symbol (or a file's top level) or a file."""

    path: str
    name: str  # "<module>" for a file's top level, "" for a file
    kind: str
    line: int
    end_line: int
    uses: int = 0  # how many uses the edge stands for
    hops: int = 1
