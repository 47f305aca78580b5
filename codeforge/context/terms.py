"""The code tokenizer shared by BM25 and query parsing, and stable term hashes.

An identifier is kept whole (lower-cased) and, when it is made of several words
(`snake_case`, `camelCase`, `HTTPServer`), also split into them: a search for
`parse_header` finds `parse_header`, and one for "parse header" finds it too.
Terms are hashed to signed 64-bit integers with BLAKE2b, stable across processes
(Python's `hash` is salted per process), so indexes can be cached on disk.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
# Words too common in code to say anything about what a chunk is about.
STOPWORDS = frozenset(
    [
        "self",
        "cls",
        "this",
        "the",
        "and",
        "for",
        "if",
        "else",
        "elif",
        "return",
        "def",
        "class",
        "function",
        "func",
        "fn",
        "var",
        "let",
        "const",
        "new",
        "none",
        "null",
        "nil",
        "true",
        "false",
        "in",
        "is",
        "not",
        "of",
        "to",
        "a",
        "an",
        "or",
        "as",
        "import",
        "from",
    ]
)


def terms(text: str) -> list[str]:
    """The search terms of `text`: identifiers whole and split into words, lower-cased."""
    out: list[str] = []
    append = out.append
    for identifier in _IDENTIFIER.findall(text):
        whole = identifier.lower()
        if len(whole) > 1 and whole not in STOPWORDS:
            append(whole)
        words = _WORD.findall(identifier)
        if len(words) > 1:
            for word in words:
                low = word.lower()
                if len(low) > 1 and low != whole and low not in STOPWORDS:
                    append(low)
    return out


def identifiers(text: str) -> set[str]:
    """The identifiers `text` mentions, as written (for boosting symbols named in a task)."""
    return {i for i in _IDENTIFIER.findall(text) if len(i) > 2}


def term_hash(term: str) -> int:
    known = _hashes.get(term)
    if known is None:
        known = int.from_bytes(
            hashlib.blake2b(term.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
            "little",
            signed=True,
        )
        if len(_hashes) < _HASHES_KEPT:
            _hashes[term] = known
    return known


def hashes_of(words: Iterable[str]) -> list[int]:
    return [term_hash(w) for w in words]


# Vocabularies repeat heavily across files: remembering hashes halves tokenizing time.
_HASHES_KEPT = 500_000
_hashes: dict[str, int] = {}
