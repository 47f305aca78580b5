"""Python's tags without a query walk: what `queries/python.scm` captures, found faster.

A tree-sitter 0.21 query cursor visits every node of the tree whatever its patterns
(about a third of the cost of parsing, for any query), while a Python file's tags sit
at a few known places. So the source bytes are scanned with regular expressions (C
speed) for the places a tag can be — `def`/`class` headers, `name(`, `: name` and
`-> name` annotations, `import`, top-level `NAME =` — and the parsed tree is asked
only about those candidates (`descendant_for_byte_range` descends one path). One more
scan marks comments and string literals: a `name(` in them is no call, unless it sits
in an f-string, where the tree tells a replacement field from text.

The captures are the query's: definitions of classes, functions (decorated or not)
and module-level names assigned; references for calls (`f(`, `x.f(`), base classes,
the names annotations are made of (`x: Name`, `-> Name[Arg] | Other[More]`),
bare-name decorators and names imported with `from`; modules imported.
`tests/unit/test_python_tags.py` holds this to the query on real files. The one
difference: a class pattern (`case Point(x=0):`) reads as `Point(` and counts as a
use of `Point`, which it is; the query sees no call there.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import compress
from typing import Any

import numpy as np

IDENT = rb"[A-Za-z_\x80-\xff][\w\x80-\xff]*"

# Comments and string literals, left to right (a `#` inside a string is not a comment,
# a quote inside a comment opens nothing); the loops are unrolled for speed. One group
# around it all: `split` then returns code and non-code in turn, made in C.
_NOT_CODE = re.compile(
    rb"(#[^\n]*"
    rb'|"""[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*"""'
    rb"|'''[^'\\]*(?:(?:\\.|'(?!''))[^'\\]*)*'''"
    rb'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
    rb"|'[^'\\\n]*(?:\\.[^'\\\n]*)*')",
    re.S,
)
# `name(` read backwards, so that the scan looks for a literal `(` (much faster than
# trying an identifier at every offset); split as above: (text, `(`, name) in turn.
_CALLS_REVERSED = re.compile(rb"(\([ \t]*)([\w\x80-\xff]+)")
# Each scan starts with a literal: the regex engine skips ahead to it (an alternation of
# two literals would try every offset).
_DEFS = re.compile(rb"def[ \t]+(" + IDENT + rb")")
_CLASSES = re.compile(rb"class[ \t]+(" + IDENT + rb")")
# Where an annotation may begin (a parameter's, a variable's, a return type).
_COLON_TYPES = re.compile(rb":[ \t]*(" + IDENT + rb")")
_RETURN_TYPES = re.compile(rb"->[ \t]*(" + IDENT + rb")")
_IMPORTS = re.compile(rb"import\b")
_TOP_LEVEL_NAMES = re.compile(rb"\n(" + IDENT + rb")[ \t]*[:=]")

_TYPE_PARTS = frozenset({"type", "generic_type", "type_parameter", "union_type"})

# Words that precede `(` without being a call.
_KEYWORDS = frozenset(
    b"and as assert async await class def del elif else except finally for from global if "
    b"import in is lambda nonlocal not or pass raise return try while with yield".split()
)

Found = tuple[
    list[tuple[Any, Any, str]],  # (definition node, name node, kind)
    list[tuple[int, bytes]],  # (start byte, name) of each reference
    list[bytes],  # modules imported, as written
]


def python_tags(tree: Any, data: bytes) -> Found:
    """The definitions, references and imports of a parsed Python file."""
    root = tree.root_node
    locate = root.descendant_for_byte_range
    defs: list[tuple[Any, Any, str]] = []
    literals = _Literals(data)
    refs = _calls(data, literals, locate)
    imports: list[bytes] = []

    for pattern, kind in ((_DEFS, "function"), (_CLASSES, "class")):
        for at, start, end in _candidates(pattern, data, literals):
            if at and data[at - 1] not in b" \t\n":
                continue
            node = locate(at, end)
            if node.type != f"{kind}_definition":
                continue
            name = node.child_by_field_name("name")
            if name is None or name.start_byte != start:
                continue
            holder = node.parent
            decorated = holder is not None and holder.type == "decorated_definition"
            defs.append((holder if decorated else node, name, kind))
            if decorated:
                for child in holder.children:
                    if child.type == "decorator" and child.named_child_count:
                        expression = child.named_children[0]
                        if expression.type == "identifier":
                            refs.append((expression.start_byte, expression.text))
            if kind == "class":
                bases = node.child_by_field_name("superclasses")
                for base in bases.named_children if bases is not None else ():
                    if base.type == "attribute":
                        base = base.child_by_field_name("attribute")
                    if base is not None and base.type == "identifier":
                        refs.append((base.start_byte, base.text))

    for _, start, end in _candidates(_TOP_LEVEL_NAMES, data, literals, shift=1):
        name = locate(start, end)
        if name.type != "identifier":
            continue
        assignment = name.parent
        if (
            assignment is not None
            and assignment.type == "assignment"
            and assignment.start_byte == start
            and assignment.parent.type == "expression_statement"
            and assignment.parent.parent.type == "module"
        ):
            defs.append((assignment, name, "constant"))

    for pattern in (_COLON_TYPES, _RETURN_TYPES):
        for _, start, end in _candidates(pattern, data, literals):
            node = locate(start, end)
            if node.type != "identifier":
                continue
            # Up to the whole annotation (`Name`, `Name[Arg]`, `A[B] | C[D]`), if any.
            while (holder := node.parent) is not None and holder.type in _TYPE_PARTS:
                node = holder
            if node.type == "type":
                _type_names(node, refs)
    for at, _, end in _candidates(_IMPORTS, data, literals, group=0):
        keyword = locate(at, end)
        if keyword.type != "import":
            continue
        statement = keyword.parent
        if statement.type == "import_statement":
            for name in statement.children_by_field_name("name"):
                if name.type == "aliased_import":
                    name = name.child_by_field_name("name")
                if name is not None and name.type == "dotted_name":
                    imports.append(name.text)
        elif statement.type == "import_from_statement":
            module = statement.child_by_field_name("module_name")
            if module is not None:
                imports.append(module.text)
            for name in statement.children_by_field_name("name"):
                if name.type == "aliased_import":
                    name = name.child_by_field_name("name")
                if name is not None and name.type == "dotted_name":
                    refs.extend((part.start_byte, part.text) for part in name.named_children)
    return defs, refs, imports


def _type_names(node: Any, refs: list[tuple[int, bytes]]) -> None:
    """The names a type annotation is made of: `(type (identifier))` at any depth."""
    for child in node.named_children:
        if child.type == "identifier":
            if node.type == "type":
                refs.append((child.start_byte, child.text))
        elif child.type in _TYPE_PARTS:
            _type_names(child, refs)


class _Literals:
    """Where a file's comments and string literals are, from one scan."""

    def __init__(self, data: bytes) -> None:
        parts = _NOT_CODE.split(data)
        bounds = np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)))
        self.starts = bounds[0:-1:2]  # each literal begins where the code before it ends
        self.ends = bounds[1::2]
        self._starts: list[int] = self.starts.tolist()
        self._ends: list[int] = self.ends.tolist()
        # An f-string's prefix: `f"`, `rf"`, `fr"` in any case (a comment starts with `#`).
        text = np.frombuffer(b"  " + data, dtype=np.uint8)
        before, second = text[self.starts + 1], text[self.starts]
        self.formatted = (before | 32 == ord("f")) | (
            (before | 32 == ord("r")) & (second | 32 == ord("f"))
        )

    def where(
        self, offsets: np.ndarray[Any, Any]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """(in code, in an f-string) for each offset."""
        if not len(self.starts):
            return np.ones(len(offsets), dtype=bool), np.zeros(len(offsets), dtype=bool)
        i = np.searchsorted(self.starts, offsets, side="right") - 1
        inside = (i >= 0) & (offsets < self.ends[np.maximum(i, 0)])
        return ~inside, inside & self.formatted[np.maximum(i, 0)]

    def in_code(self, offset: int) -> bool:
        i = bisect_right(self._starts, offset) - 1
        return i < 0 or offset >= self._ends[i]


def _calls(data: bytes, literals: _Literals, locate: Any) -> list[tuple[int, bytes]]:
    """(start byte, name) of every `name(` in code (f-strings' replacement fields too),
    keywords aside."""
    parts = _CALLS_REVERSED.split(data[::-1])
    if len(parts) == 1:
        return []
    bounds = np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)))
    starts = len(data) - bounds[2::3]  # a name read backwards ends where it starts
    # The names turned the right way round in one go: joined, reversed, split.
    names = b"\0".join(parts[2::3])[::-1].split(b"\0")[::-1]
    code, formatted = literals.where(starts)
    found = [
        (start, name)
        for start, name in compress(zip(starts.tolist(), names, strict=True), code.tolist())
        if name not in _KEYWORDS
    ]
    # In an f-string, only the tree knows text from a replacement field.
    for start, name in compress(zip(starts.tolist(), names, strict=True), formatted.tolist()):
        if locate(start, start + len(name)).type == "identifier":
            found.append((start, name))
    return found


def _candidates(
    pattern: re.Pattern[bytes],
    data: bytes,
    literals: _Literals,
    *,
    group: int = 1,
    shift: int = 0,
) -> list[tuple[int, int, int]]:
    """(match start, group start, group end) of each match whose group starts in code.
    `shift` bytes were put before `data` (a newline, so that the first line is a line
    like the others)."""
    in_code = literals.in_code
    return [
        (m.start() - shift, start, m.end(group) - shift)
        for m in pattern.finditer(b"\n" + data if shift else data)
        if in_code(start := m.start(group) - shift)
    ]
