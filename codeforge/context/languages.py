"""Which tree-sitter grammar reads which file, and the tags query written for each.

The grammars come from `tree-sitter-languages` (pinned with `tree-sitter==0.21.3`,
whose `Language` API it was built against). Queries live in `queries/<language>.scm`
beside this module and ship in the wheel. Loading is lazy and per process: a worker
process loads only the languages it meets.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path, PurePosixPath
from typing import Any

QUERIES = Path(__file__).parent / "queries"

# File name extension -> grammar name in tree-sitter-languages.
EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".jsx": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
    ".cs": "c_sharp",
    ".rb": "ruby",
    ".php": "php",
}

LANGUAGES: tuple[str, ...] = tuple(sorted(set(EXTENSIONS.values())))


def language_of(path: str) -> str | None:
    """The grammar for `path` (by its extension), or None when no tags query exists."""
    return EXTENSIONS.get(PurePosixPath(path).suffix.lower())


@functools.cache
def query_source(language: str) -> str:
    return (QUERIES / f"{language}.scm").read_text(encoding="utf-8")


@functools.cache
def query_version() -> str:
    """A fingerprint of every query, and of the Python scanner that stands in for the
    Python query (`python_tags.py`): cached tags from other queries are never reused."""
    import hashlib

    digest = hashlib.sha1(usedforsecurity=False)
    for language in LANGUAGES:
        digest.update(language.encode())
        digest.update(query_source(language).encode())
    digest.update((Path(__file__).parent / "python_tags.py").read_bytes())
    return digest.hexdigest()[:12]


@functools.cache
def parser_and_query(language: str) -> tuple[Any, Any]:
    """(parser, compiled tags query) for `language`; built once per process."""
    import tree_sitter_languages  # type: ignore[import-untyped]

    with warnings.catch_warnings():
        # tree-sitter 0.21 deprecates the Language(path, name) call the bundle makes.
        warnings.simplefilter("ignore", FutureWarning)
        grammar = tree_sitter_languages.get_language(language)
        parser = tree_sitter_languages.get_parser(language)
    return parser, grammar.query(query_source(language))
