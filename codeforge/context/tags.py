"""Tags of one source file: definitions, references, imports and search chunks.

`extract` parses bytes with tree-sitter and runs the language's tags query
(`queries/<language>.scm`). Everything later stages need is kept, so nothing
downstream re-reads or re-parses a file: a definition carries its signature
(the header lines up to its body) for rendering the map; references are counted
per (name, enclosing definition) for the call graph and per name for ranking;
chunks (whole symbols, or stretches of top-level lines) carry their term counts
for BM25. Arrays are stored as raw little-endian bytes (numpy reads them without
copying), which keeps the cache compact and fast to decode.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import msgspec
import numpy as np

from codeforge.context.languages import language_of, parser_and_query
from codeforge.context.terms import term_hash, terms

# Signatures longer than this many lines are cut (a long parameter list).
SIGNATURE_LINES = 4
SIGNATURE_WIDTH = 200
# A symbol longer than this is split into its members (or line windows) for search.
CHUNK_MAX_LINES = 120
GAP_CHUNK_LINES = 60
# Files larger than this are listed, not parsed (minified bundles, generated code).
MAX_FILE_BYTES = 1_000_000


class Definition(msgspec.Struct, array_like=True, frozen=True):
    name: str
    kind: str
    line: int  # 0-based line of the name
    start: int  # first line of the defining node
    end: int  # last line of the defining node
    signature: str  # the header lines, as written (no body)


class Scope(msgspec.Struct, array_like=True, frozen=True):
    """A block that frames definitions without being one (an `impl`, a namespace)."""

    start: int
    end: int
    signature: str


class Chunk(msgspec.Struct, array_like=True, frozen=True):
    start: int
    end: int
    symbol: str  # the definition it covers, "" for top-level lines
    length: int  # number of terms
    term_hashes: bytes  # int64 per distinct term
    term_counts: bytes  # int32, aligned with term_hashes


class FileTags(msgspec.Struct, array_like=True, frozen=True):
    language: str
    lines: int
    defs: list[Definition]
    scopes: list[Scope]
    ref_names: list[str]  # distinct names referenced
    ref_hashes: bytes  # int64 term_hash of each name
    ref_counts: bytes  # int32 uses of each name in the file
    # The call/reference graph: (name index, enclosing definition index or -1, uses).
    use_names: bytes
    use_owners: bytes
    use_counts: bytes
    imports: list[str]
    chunks: list[Chunk]
    def_hashes: bytes = b""  # int64 term_hash of each definition's name
    def_factors: bytes = b""  # float32 ident_factor of each definition's name
    error: str = ""  # why the file could not be parsed, when it could not

    def ref_hash_array(self) -> np.ndarray[Any, Any]:
        return np.frombuffer(self.ref_hashes, dtype="<i8")

    def ref_count_array(self) -> np.ndarray[Any, Any]:
        return np.frombuffer(self.ref_counts, dtype="<i4")

    def def_hash_array(self) -> np.ndarray[Any, Any]:
        return np.frombuffer(self.def_hashes, dtype="<i8")

    def def_factor_array(self) -> np.ndarray[Any, Any]:
        return np.frombuffer(self.def_factors, dtype="<f4")

    def uses(self) -> list[tuple[str, int, int]]:
        """(name, enclosing definition index or -1, uses) for the code graph."""
        names = np.frombuffer(self.use_names, dtype="<i4")
        owners = np.frombuffer(self.use_owners, dtype="<i4")
        counts = np.frombuffer(self.use_counts, dtype="<i4")
        return [
            (self.ref_names[n], int(o), int(c))
            for n, o, c in zip(names.tolist(), owners.tolist(), counts.tolist(), strict=True)
        ]


def content_key(data: bytes) -> str:
    """The git blob SHA-1 of `data`: equal to what `git hash-object` prints."""
    digest = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    digest.update(data)
    return digest.hexdigest()


def empty(language: str, lines: int, error: str = "") -> FileTags:
    return FileTags(
        language, lines, [], [], [], b"", b"", b"", b"", b"", [], [], b"", b"", error
    )


def ident_factor(name: str) -> float:
    """How much a name says about what links two files (Aider's weighting).

    Long compound names (`parse_header`, `RepoMap`) are specific: x10. Private
    names (`_x`) are internal: x0.1.
    """
    factor = 1.0
    compound = (("_" in name or "-" in name) and any(c.isalpha() for c in name)) or (
        any(c.isupper() for c in name) and any(c.islower() for c in name)
    )
    if compound and len(name) >= 8:
        factor *= 10
    if name.startswith("_"):
        factor *= 0.1
    return factor


def extract(path: str, data: bytes) -> FileTags | None:
    """The tags of `data` read from `path`; None when no grammar reads this kind of file."""
    language = language_of(path)
    if language is None:
        return None
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    if len(data) > MAX_FILE_BYTES:
        return empty(language, lines, f"larger than {MAX_FILE_BYTES} bytes: not parsed")
    if b"\0" in data[:8192]:
        return empty(language, lines, "binary content: not parsed")
    parser, query = parser_and_query(language)
    tree = parser.parse(data)
    text_lines = data.split(b"\n")
    defs: list[tuple[Any, Any, str]] = []  # (definition node, name node, kind)
    scopes: list[Any] = []
    refs: list[tuple[int, bytes]] = []  # (start byte, name)
    imports: list[str] = []
    for _, captures in query.matches(tree.root_node):
        definition = name = None
        kind = ""
        for capture, node in captures.items():
            if capture.startswith("name.definition."):
                name, kind = node, capture[16:]
            elif capture.startswith("definition."):
                definition = node
            elif capture.startswith("name.reference."):
                refs.append((node.start_byte, node.text))
            elif capture == "import":
                imports.append(_module_name(node.text))
            elif capture == "scope":
                scopes.append(node)
        if name is not None:
            defs.append((definition or name, name, kind))
    definitions, def_names = _definitions(defs, text_lines)
    names, name_hashes, counts, uses = _references(refs, def_names, definitions)
    return FileTags(
        language=language,
        lines=lines,
        defs=[d for _, _, d in definitions],
        scopes=[
            Scope(n.start_point[0], n.end_point[0], _signature(n, text_lines))
            for n in _outermost_first(scopes)
        ],
        ref_names=names,
        ref_hashes=np.asarray(name_hashes, dtype="<i8").tobytes(),
        ref_counts=np.asarray(counts, dtype="<i4").tobytes(),
        use_names=np.asarray([u[0] for u in uses], dtype="<i4").tobytes(),
        use_owners=np.asarray([u[1] for u in uses], dtype="<i4").tobytes(),
        use_counts=np.asarray([u[2] for u in uses], dtype="<i4").tobytes(),
        imports=sorted(set(filter(None, imports))),
        chunks=_chunks([d for _, _, d in definitions], text_lines, lines),
        def_hashes=np.asarray(
            [term_hash(d.name) for _, _, d in definitions], dtype="<i8"
        ).tobytes(),
        def_factors=np.asarray(
            [ident_factor(d.name) for _, _, d in definitions], dtype="<f4"
        ).tobytes(),
    )


def _outermost_first(nodes: list[Any]) -> list[Any]:
    seen: dict[tuple[int, int], Any] = {}
    for node in nodes:
        seen.setdefault((node.start_byte, node.end_byte), node)
    return sorted(seen.values(), key=lambda n: (n.start_byte, -n.end_byte))


def _definitions(
    found: list[tuple[Any, Any, str]], text_lines: list[bytes]
) -> tuple[list[tuple[int, int, Definition]], set[tuple[int, int]]]:
    """(start byte, end byte, definition) in document order, outer before inner."""
    # One definition per name node: where two patterns match one name (a decorated
    # function and the function itself), the larger node wins (it holds the decorators).
    by_name: dict[tuple[int, int], tuple[Any, Any, str]] = {}
    for definition, name, kind in found:
        key = (name.start_byte, name.end_byte)
        held = by_name.get(key)
        if held is None or definition.end_byte - definition.start_byte > (
            held[0].end_byte - held[0].start_byte
        ):
            by_name[key] = (definition, name, kind)
    out = [
        (
            definition.start_byte,
            definition.end_byte,
            Definition(
                name=name.text.decode("utf-8", "replace"),
                kind=kind,
                line=name.start_point[0],
                start=definition.start_point[0],
                end=definition.end_point[0],
                signature=_signature(definition, text_lines),
            ),
        )
        for definition, name, kind in by_name.values()
    ]
    out.sort(key=lambda item: (item[0], -item[1], item[2].line))
    return out, set(by_name)


def _signature(node: Any, text_lines: list[bytes]) -> str:
    """The node's header: its first line through the line before its body (at most 4)."""
    first = node.start_point[0]
    holder = node
    if node.type == "decorated_definition":
        holder = node.child_by_field_name("definition") or node
    body = holder.child_by_field_name("body")
    if body is None:
        last = node.end_point[0]
    else:
        # The header ends where the last part before the body ends (`def f(x) -> int:`,
        # `fn f() -> T`, a C declarator); a `{` on that line comes along with it.
        last = first
        for child in holder.children:
            if child.start_byte >= body.start_byte:
                break
            last = max(last, child.end_point[0])
    last = min(last, first + SIGNATURE_LINES - 1, len(text_lines) - 1)
    return "\n".join(
        line.decode("utf-8", "replace").rstrip()[:SIGNATURE_WIDTH]
        for line in text_lines[first : last + 1]
    )


def _references(
    refs: list[tuple[int, bytes]],
    def_names: set[tuple[int, int]],
    definitions: list[tuple[int, int, Definition]],
) -> tuple[list[str], list[int], list[int], list[tuple[int, int, int]]]:
    """Distinct names with hashes and counts, and uses per (name, enclosing definition)."""
    refs.sort()
    index_of: dict[str, int] = {}
    names: list[str] = []
    counts: list[int] = []
    uses: Counter[tuple[int, int]] = Counter()
    # A sweep in document order: `open_` holds the definitions around the offset.
    open_: list[tuple[int, int]] = []  # (end byte, definition index)
    following = 0
    for start, raw in refs:
        if (start, start + len(raw)) in def_names:
            continue
        while following < len(definitions) and definitions[following][0] <= start:
            open_.append((definitions[following][1], following))
            following += 1
        while open_ and open_[-1][0] <= start:
            open_.pop()
        owner = open_[-1][1] if open_ else -1
        name = raw.decode("utf-8", "replace")
        i = index_of.get(name)
        if i is None:
            i = index_of[name] = len(names)
            names.append(name)
            counts.append(0)
        counts[i] += 1
        uses[(i, owner)] += 1
    hashes = [term_hash(n) for n in names]
    return names, hashes, counts, [(n, o, c) for (n, o), c in uses.items()]


def _module_name(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").strip().strip("\"'<>`").strip()


def _chunks(defs: list[Definition], text_lines: list[bytes], lines: int) -> list[Chunk]:
    """Whole symbols that fit CHUNK_MAX_LINES (outermost first), the rest in windows."""
    chosen: list[Definition] = []
    covered_until = -1
    for d in defs:  # sorted by start, outer before inner
        if d.start <= covered_until:
            continue
        if d.end - d.start + 1 <= CHUNK_MAX_LINES:
            chosen.append(d)
            covered_until = d.end
    spans: list[tuple[int, int, str]] = []
    cursor = 0
    for d in chosen:
        spans.extend(_windows(cursor, d.start - 1))
        spans.append((d.start, d.end, d.name))
        cursor = d.end + 1
    spans.extend(_windows(cursor, lines - 1))
    out: list[Chunk] = []
    for start, end, symbol in spans:
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
                term_hashes=np.asarray(
                    [term_hash(t) for t in counted], dtype="<i8"
                ).tobytes(),
                term_counts=np.asarray(list(counted.values()), dtype="<i4").tobytes(),
            )
        )
    return out


def _windows(first: int, last: int) -> list[tuple[int, int, str]]:
    return [
        (start, min(start + GAP_CHUNK_LINES - 1, last), "")
        for start in range(first, last + 1, GAP_CHUNK_LINES)
    ]
