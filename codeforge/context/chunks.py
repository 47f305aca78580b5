"""Search chunks of a file: whole symbols where they fit, windows of lines elsewhere.

A chunk is the outermost definition no longer than CHUNK_MAX_LINES (a function, a
small class); a longer class is covered by its members; lines outside any chosen
definition (imports, module code) form windows of GAP_CHUNK_LINES. Each chunk keeps
the hashes and counts of its terms (see `terms.py`), which is all BM25 needs.
Chunking reads the file's bytes again and uses its definitions from the tags, so
it costs nothing until the first search of a folder.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgspec
import numpy as np

from codeforge.context.tags import Definition
from codeforge.context.terms import hashes_of, terms

CHUNK_MAX_LINES = 120
GAP_CHUNK_LINES = 60


class Chunk(msgspec.Struct, array_like=True, frozen=True):
    start: int  # 0-based first line
    end: int  # last line, inclusive
    symbol: str  # the definition it covers, "" for lines outside definitions
    length: int  # number of terms
    term_hashes: bytes  # int64 per distinct term
    term_counts: bytes  # int32, aligned with term_hashes

    def hash_array(self) -> np.ndarray[Any, Any]:
        return np.frombuffer(self.term_hashes, dtype="<i8")

    def count_array(self) -> np.ndarray[Any, Any]:
        return np.frombuffer(self.term_counts, dtype="<i4")


class FileChunks(msgspec.Struct, array_like=True, frozen=True):
    chunks: list[Chunk]


def spans(defs: list[Definition], lines: int) -> list[tuple[int, int, str]]:
    """(start, end, symbol) of each chunk; `defs` sorted by start, outer before inner."""
    chosen: list[Definition] = []
    covered_until = -1
    for d in defs:
        if d.start <= covered_until or d.end < d.start:
            continue
        if d.end - d.start + 1 <= CHUNK_MAX_LINES:
            chosen.append(d)
            covered_until = d.end
    out: list[tuple[int, int, str]] = []
    cursor = 0
    for d in chosen:
        out.extend(_windows(cursor, d.start - 1))
        out.append((d.start, d.end, d.name))
        cursor = d.end + 1
    out.extend(_windows(cursor, lines - 1))
    return out


def chunk(data: bytes, defs: list[Definition], lines: int) -> FileChunks:
    text_lines = data.split(b"\n")
    out: list[Chunk] = []
    for start, end, symbol in spans(defs, lines):
        text = b"\n".join(text_lines[start : end + 1]).decode("utf-8", "replace")
        counted = Counter(terms(text))
        if symbol:
            counted.update(terms(symbol))  # the name says most about the chunk
        if not counted:
            continue
        out.append(
            Chunk(
                start=start,
                end=end,
                symbol=symbol,
                length=sum(counted.values()),
                term_hashes=np.asarray(hashes_of(counted), dtype="<i8").tobytes(),
                term_counts=np.asarray(list(counted.values()), dtype="<i4").tobytes(),
            )
        )
    return FileChunks(out)


def _windows(first: int, last: int) -> list[tuple[int, int, str]]:
    return [
        (start, min(start + GAP_CHUNK_LINES - 1, last), "")
        for start in range(first, last + 1, GAP_CHUNK_LINES)
    ]
