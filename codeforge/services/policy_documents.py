"""Policy YAML: text into a checked `PolicyProfile`, with errors that point at the line.

Every problem is reported as `<source>:<line>: <key path>: <what is wrong>` — the
source is a file path for presets and `document` for a policy sent to the API. The
YAML is read with PyYAML's safe loader; anchors and aliases are refused (a policy has
no use for them, and they let a small document expand without bound), and so are
duplicate keys (YAML would silently keep the last, hiding the first list of rules).
"""

from __future__ import annotations

from typing import Any

import yaml

from codeforge.domain.errors import ValidationFailed
from codeforge.domain.policy import PolicyInvalid, PolicyProfile, build_profile

__all__ = ["MAX_DOCUMENT_CHARS", "PolicyDocumentError", "parse_policy"]

MAX_DOCUMENT_CHARS = 256 * 1024

Path = tuple[str | int, ...]


class PolicyDocumentError(ValidationFailed):
    """A policy document that cannot be used; the message names every line at fault."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        shown = lines[:10]
        more = [f"(and {len(lines) - 10} more)"] if len(lines) > 10 else []
        super().__init__("; ".join(shown + more), field="document")


def parse_policy(text: str, *, name: str | None, source: str = "document") -> PolicyProfile:
    """The profile `text` describes, or `PolicyDocumentError`. `name`: what it is stored
    as; None for an unsaved document (a preview), which keeps its own."""
    if len(text) > MAX_DOCUMENT_CHARS:
        raise PolicyDocumentError(
            [f"{source}: a policy is at most {MAX_DOCUMENT_CHARS} characters"]
        )
    if "\0" in text:
        raise PolicyDocumentError([f"{source}: a policy cannot hold a NUL character"])
    data, lines = _load(text, source)
    try:
        return build_profile(data, name)
    except PolicyInvalid as e:
        raise PolicyDocumentError(
            [
                f"{source}:{_line(lines, p.path)}: {p.dotted() or 'the document'}: {p.message}"
                for p in e.problems
            ]
        ) from None


def _load(text: str, source: str) -> tuple[Any, dict[Path, int]]:
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.AnchorToken | yaml.AliasToken):
                line = token.start_mark.line + 1
                raise PolicyDocumentError(
                    [
                        f"{source}:{line}: anchors and aliases (& and *) are not allowed in a "
                        "policy; write each value out"
                    ]
                )
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(e, "problem", None) or str(e)
        raise PolicyDocumentError([f"{where}: not valid YAML: {problem}"]) from None
    if node is None:
        return {}, {}
    lines: dict[Path, int] = {(): node.start_mark.line + 1}
    duplicates: list[str] = []
    _marks(node, (), lines, duplicates, source)
    if duplicates:
        raise PolicyDocumentError(duplicates)
    loader = yaml.SafeLoader("")
    try:
        data = loader.construct_document(node)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise PolicyDocumentError([f"{where}: {getattr(e, 'problem', None) or e}"]) from None
    finally:
        loader.dispose()
    return data, lines


def _marks(
    node: yaml.Node, path: Path, lines: dict[Path, int], duplicates: list[str], source: str
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                duplicates.append(f"{source}:{line}: the key {key!r} appears twice here")
            seen.add(key)
            lines[(*path, key)] = line
            _marks(value_node, (*path, key), lines, duplicates, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _marks(item, (*path, i), lines, duplicates, source)


def _line(lines: dict[Path, int], path: Path) -> int:
    for end in range(len(path), -1, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return 1
