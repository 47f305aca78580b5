"""Code intelligence: repo map, search (grep, BM25, embeddings, hybrid) and code graph.

The entry point is `ContextEngine` (`engine.py`); `docs/context.md` explains how it
works. Public results are msgspec Structs: `RepoMap`, `SearchResults`,
`ContextPack`, `GrepResults`, `GraphHit`.
"""

from codeforge.context.engine import ContextEngine
from codeforge.context.graph import CodeGraph, GraphHit
from codeforge.context.grep import GrepMatch, GrepResults
from codeforge.context.pack import ContextPack, PackItem, SearchHit, SearchResults
from codeforge.context.repomap import MapFile, MapSymbol, RepoMap

__all__ = [
    "CodeGraph",
    "ContextEngine",
    "ContextPack",
    "GraphHit",
    "GrepMatch",
    "GrepResults",
    "MapFile",
    "MapSymbol",
    "PackItem",
    "RepoMap",
    "SearchHit",
    "SearchResults",
]
