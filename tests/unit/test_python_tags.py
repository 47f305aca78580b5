"""The Python scanner finds what the Python tags query captures, on real and tricky code."""

from __future__ import annotations

import sysconfig
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from codeforge.context.languages import parser_and_query
from codeforge.context.python_tags import python_tags
from codeforge.context.tags import _query_tags, extract

TRICKY = b'''"""A module docstring that mentions def fake(): and class Fake(Base): and import x."""
from __future__ import annotations
import os.path, json as j
from .sibling import (helper, other as renamed)
from pkg.mod import *

LIMIT = 10
LIMIT2: int = 3
ANNOTATED: dict[str, Config]
LIMIT == 3
CONFIG = {
    key: value,
}
# def commented(): call_in_comment()


@decorator
@module.decorator_attr
@decorator_call(arg)
class Shape(Base, mod.Other, metaclass=Meta):
    size: Optional[Size] = None

    async def draw(self, pen: Pen, *rest: Colour, **kw: Style) -> list[tuple[Point, int]]:
        text = f"{render(pen)!r} and {len(rest)} not_a_call(x)"
        raw = rf'{escape(text)}' + 'plain(x)' + b"bytes(y)"
        def inner(a: A | None, b: Union[B, list[C]] = lambda q: q) -> Result:
            import lazy.module
            return inner_call(a)[1:end](b)
        return self.paint(pen).finish()


def free(x: X, y: 'Quoted') -> None: return helper(x); other_call()
if (ready): pass
print (spaced)
'''


def query_and_scan(data: bytes) -> tuple[Any, Any]:
    parser, query = parser_and_query("python")
    tree = parser.parse(data)
    return _normal(*_query_tags(query, tree)[:3]), _normal(*python_tags(tree, data))


def _normal(
    defs: list[tuple[Any, Any, str]], refs: list[tuple[int, bytes]], imports: list[bytes]
) -> tuple[set[tuple[int, int, int, bytes, str]], Counter[tuple[int, bytes]], set[bytes]]:
    # Where two query patterns match one name (decorated or not), the larger node counts.
    widest: dict[int, tuple[int, int, int, bytes, str]] = {}
    for node, name, kind in defs:
        held = widest.get(name.start_byte)
        if held is None or node.end_byte - node.start_byte > held[1] - held[0]:
            widest[name.start_byte] = (
                node.start_byte, node.end_byte, name.start_byte, name.text, kind,
            )  # fmt: skip
    return set(widest.values()), Counter(refs), set(imports)


def test_the_scanner_captures_what_the_query_captures_on_tricky_code() -> None:
    (query_defs, query_refs, query_imports), (defs, refs, imports) = query_and_scan(TRICKY)
    assert defs == query_defs
    assert {name for *_, name, _ in defs} == {
        b"LIMIT", b"LIMIT2", b"ANNOTATED", b"CONFIG", b"Shape", b"draw", b"inner", b"free",
    }  # fmt: skip
    # Every `name(` outside strings is a candidate, def and class names among them (the
    # tags drop those as definitions); the query captures only the call nodes.
    headers = (b"class Shape(", b"def draw(", b"def inner(", b"def free(")
    assert refs - query_refs == Counter(
        {(TRICKY.index(h) + h.index(b" ") + 1, h.split()[1][:-1]): 1 for h in headers}
    )
    assert query_refs - refs == Counter()
    names = {name for _, name in refs}
    assert {b"render", b"len", b"escape"} <= names  # calls in f-string fields
    assert names.isdisjoint({b"fake", b"Fake", b"not_a_call", b"plain", b"bytes", b"commented"})
    assert {b"Base", b"Other", b"decorator", b"Size", b"Pen", b"Colour", b"Style"} <= names
    assert {b"Point", b"int", b"B", b"C", b"Result", b"X", b"Config", b"str"} <= names
    assert {b"helper", b"other", b"print", b"other_call", b"paint", b"finish"} <= names
    # Keywords, keyword arguments, unions, strings, aliases, attributes in decorators.
    assert names.isdisjoint({b"if", b"Meta", b"A", b"Quoted", b"renamed", b"decorator_attr"})
    assert imports == query_imports == {
        b"os.path", b"json", b".sibling", b"pkg.mod", b"lazy.module",
    }  # fmt: skip


STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.mark.parametrize(
    "module",
    ["typing.py", "http/client.py", "dataclasses.py", "asyncio/tasks.py", "argparse.py",
     "email/_header_value_parser.py", "tomllib/_parser.py", "concurrent/futures/process.py"],
)  # fmt: skip
def test_the_scanner_agrees_with_the_query_on_the_standard_library(module: str) -> None:
    data = (STDLIB / module).read_bytes()
    (query_defs, query_refs, query_imports), (defs, refs, imports) = query_and_scan(data)
    assert defs == query_defs
    assert imports == query_imports
    assert query_refs - refs == Counter()
    # What the scan adds: `name(` in the headers of definitions and in `case` patterns.
    headers = {(start, name) for _, _, start, name, _ in defs}
    for start, name in set(refs - query_refs) - headers:
        line = data[data.rfind(b"\n", 0, start) + 1 : start]
        assert line.lstrip().startswith(b"case "), f"{module}: {name!r} at {start}"


def test_python_files_get_their_tags_from_the_scanner() -> None:
    tags = extract("m.py", TRICKY)
    assert tags is not None
    assert {d.name for d in tags.defs} >= {"Shape", "draw", "inner", "free", "LIMIT"}
    draw = next(d for d in tags.defs if d.name == "draw")
    assert draw.signature.startswith("    async def draw(self, pen: Pen")
    assert "render" in tags.ref_names
    assert "Shape" not in tags.ref_names  # a definition is not a use of itself
    assert tags.imports == [".sibling", "json", "lazy.module", "os.path", "pkg.mod"]
