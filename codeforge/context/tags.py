"""Tags of one source file: definitions, references, imports and search chunks.

`extract` parses bytes with tree-sitter and runs the language's tags query
(`queries/<language>.scm`). Everything the map and the graph need is kept, so
nothing downstream re-reads or re-parses a file: a definition carries its
signature (the header lines up to its body) for rendering the map; references
are counted per (name, enclosing definition) for the call graph and per name for
ranking. Search chunks are made separately (`chunks.py`), only when searching.
Arrays are stored as raw little-endian bytes (numpy reads them without copying),
which keeps the cache compact and fast to decode.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import numpy as np

from codeforge.context.languages import language_of, parser_and_query
from codeforge.context.python_tags import python_tags
from codeforge.context.terms import term_hash

# Signatures longer than this many lines are cut (a long parameter list).
SIGNATURE_LINES = 4
SIGNATURE_WIDTH = 200
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


class RankRow(msgspec.Struct, array_like=True, frozen=True):
    """What ranking needs of a file, apart from its tags: cheap to decode for every file."""

    language: str
    def_hashes: bytes
    def_factors: bytes
    ref_hashes: bytes
    ref_counts: bytes

    def ref_hash_array(self) -> np.ndarray[Any, Any]:
        return np.frombuffer(self.ref_hashes, dtype="<i8")

    def ref_count_array(self) -> np.ndarray[Any, Any]:
        return np.frombuffer(self.ref_counts, dtype="<i4")

    def def_hash_array(self) -> np.ndarray[Any, Any]:
        return np.frombuffer(self.def_hashes, dtype="<i8")

    def def_factor_array(self) -> np.ndarray[Any, Any]:
        return np.frombuffer(self.def_factors, dtype="<f4")


def rank_row(tags: FileTags) -> RankRow:
    return RankRow(
        tags.language, tags.def_hashes, tags.def_factors, tags.ref_hashes, tags.ref_counts
    )


def content_key(data: bytes) -> str:
    """The git blob SHA-1 of `data`: equal to what `git hash-object` prints."""
    digest = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    digest.update(data)
    return digest.hexdigest()


def empty(language: str, lines: int, error: str = "") -> FileTags:
    return FileTags(language, lines, [], [], [], b"", b"", b"", b"", b"", [], b"", b"", error)


def ident_factor(name: str) -> float:
    """How much a name says about what links two files (Aider's weighting).

    Long compound names (`parse_header`, `RepoMap`) are specific: x10. Private
    names (`_x`) are internal: x0.1.
    """
    factor = 1.0
    if len(name) >= 8 and (  # the length first: most names are short
        (("_" in name or "-" in name) and any(c.isalpha() for c in name))
        or (any(c.isupper() for c in name) and any(c.islower() for c in name))
    ):
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
    if language == "python":
        defs, refs, raw_imports = python_tags(tree, data)
        scopes: list[Any] = []
    else:
        defs, refs, raw_imports, scopes = _query_tags(query, tree)
    imports = [_module_name(raw) for raw in raw_imports]
    definitions, def_names = _definitions(defs, text_lines)
    names, name_hashes, counts, uses = _references(refs, def_names, definitions)
    return FileTags(
        language=language,
        lines=lines,
        defs=[d for _, _, d in definitions],
        scopes=[
            Scope(first, last, _signature(n, text_lines, first, last))
            for n in _outermost_first(scopes)
            for first, last in ((n.start_point[0], n.end_point[0]),)
        ],
        ref_names=names,
        ref_hashes=np.asarray(name_hashes, dtype="<i8").tobytes(),
        ref_counts=np.asarray(counts, dtype="<i4").tobytes(),
        use_names=np.asarray([u[0] for u in uses], dtype="<i4").tobytes(),
        use_owners=np.asarray([u[1] for u in uses], dtype="<i4").tobytes(),
        use_counts=np.asarray([u[2] for u in uses], dtype="<i4").tobytes(),
        imports=sorted(set(filter(None, imports))),
        def_hashes=np.asarray(
            [term_hash(d.name) for _, _, d in definitions], dtype="<i8"
        ).tobytes(),
        def_factors=np.asarray(
            [ident_factor(d.name) for _, _, d in definitions], dtype="<f4"
        ).tobytes(),
    )


def _query_tags(
    query: Any, tree: Any
) -> tuple[list[tuple[Any, Any, str]], list[tuple[int, bytes]], list[bytes], list[Any]]:
    """(definitions, references, imports, scopes) the language's tags query captures."""
    defs: list[tuple[Any, Any, str]] = []  # (definition node, name node, kind)
    scopes: list[Any] = []
    refs: list[tuple[int, bytes]] = []  # (start byte, name)
    imports: list[bytes] = []
    # One pass of the query; `matches` (not `captures`) pairs each name with its node.
    for _, captures in query.matches(tree.root_node):
        definition = name = None
        kind = ""
        for capture, node in captures.items():
            if capture.startswith("name.reference."):
                refs.append((node.start_byte, node.text))
            elif capture.startswith("name.definition."):
                name, kind = node, capture[16:]
            elif capture.startswith("definition."):
                definition = node
            elif capture == "import":
                imports.append(node.text)
            elif capture == "scope":
                scopes.append(node)
        if name is not None:
            defs.append((definition or name, name, kind))
    return defs, refs, imports, scopes


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
    by_name: dict[tuple[int, int], tuple[int, int, Any, Any, str]] = {}
    for definition, name, kind in found:
        key = (name.start_byte, name.end_byte)
        start, end = definition.start_byte, definition.end_byte
        held = by_name.get(key)
        if held is None or end - start > held[1] - held[0]:
            by_name[key] = (start, end, definition, name, kind)
    out = []
    for start, end, definition, name, kind in by_name.values():
        first, last = definition.start_point[0], definition.end_point[0]
        out.append(
            (
                start,
                end,
                Definition(
                    name=name.text.decode("utf-8", "replace"),
                    kind=kind,
                    line=name.start_point[0],
                    start=first,
                    end=last,
                    signature=_signature(definition, text_lines, first, last),
                ),
            )
        )
    out.sort(key=lambda item: (item[0], -item[1], item[2].line))
    return out, set(by_name)


def _signature(node: Any, text_lines: list[bytes], first: int, end: int) -> str:
    """The header of `node` (on lines `first`-`end`): its first line through the line
    before its body (at most 4)."""
    holder = node
    if node.type == "decorated_definition":
        holder = node.child_by_field_name("definition") or node
    body = holder.child_by_field_name("body")
    if body is None:
        last = end
    else:
        # The header ends where the part before the body ends (`def f(x) -> int:`,
        # `fn f() -> T`, a C declarator); a `{` on that line comes along with it.
        before = body.prev_sibling
        last = before.end_point[0] if before is not None else first
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
    """Distinct names with hashes and counts, and uses per (name, enclosing definition).

    Names and uses are listed in the order they first occur in the file; a definition's
    own name is not a use of it. Array work: a file holds thousands of references.
    """
    if not refs:
        return [], [], [], []
    defined = {start for start, _ in def_names}
    refs = [ref for ref in refs if ref[0] not in defined]
    if not refs:
        return [], [], [], []
    refs.sort()
    starts_list, raws = zip(*refs, strict=True)
    index_of: dict[bytes, int] = {}
    ids = np.fromiter(
        (index_of.setdefault(raw, len(index_of)) for raw in raws), dtype=np.int64, count=len(raws)
    )
    raw_names = list(index_of)
    counts = np.bincount(ids, minlength=len(raw_names))
    owners = _owners(np.asarray(starts_list, dtype=np.int64), definitions)
    # Each (name, owner) pair once, with its uses, in order of first occurrence.
    pairs = ids * (len(definitions) + 1) + (owners + 1)
    unique, first, uses = np.unique(pairs, return_index=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    unique, uses = unique[order], uses[order]
    names = [n.decode("utf-8", "replace") for n in raw_names]
    hashes = [term_hash(n) for n in names]
    return (
        names,
        hashes,
        counts.tolist(),
        list(
            zip(
                (unique // (len(definitions) + 1)).tolist(),
                (unique % (len(definitions) + 1) - 1).tolist(),
                uses.tolist(),
                strict=True,
            )
        ),
    )


def _owners(
    starts: np.ndarray[Any, Any], definitions: list[tuple[int, int, Definition]]
) -> np.ndarray[Any, Any]:
    """The innermost definition (index, or -1) around each offset in `starts`."""
    if not definitions:
        return np.full(len(starts), -1, dtype=np.int64)
    def_starts = np.fromiter((d[0] for d in definitions), dtype=np.int64, count=len(definitions))
    def_ends = np.fromiter((d[1] for d in definitions), dtype=np.int64, count=len(definitions))
    # Definitions nest (outer before inner): each one's parent is the nearest still open.
    parents = np.empty(len(definitions), dtype=np.int64)
    open_: list[int] = []
    for i, (start, _, _) in enumerate(definitions):
        while open_ and definitions[open_[-1]][1] <= start:
            open_.pop()
        parents[i] = open_[-1] if open_ else -1
        open_.append(i)
    # The last definition starting at or before the offset, or the nearest of its
    # ancestors that has not ended there yet.
    owners = np.searchsorted(def_starts, starts, side="right") - 1
    while True:
        closed = (owners >= 0) & (def_ends[np.maximum(owners, 0)] <= starts)
        if not closed.any():
            return owners
        owners[closed] = parents[owners[closed]]


def _module_name(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").strip().strip("\"'<>`").strip()
