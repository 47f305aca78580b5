"""The first context provider: the repository's file tree, fitted to a token budget.

Folders are listed breadth first; when the whole tree does not fit, the deepest
levels are folded into "name/ (N files)" lines until it does, so the model always
sees the top of the repository and how big each part is. Version-control,
dependency and cache folders are left out. The code-intelligence engine replaces
this with a repo map and retrieval behind the same port.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from codeforge.agent.conversation import estimate_tokens
from codeforge.agent.tools.search import SKIPPED_DIRS
from codeforge.ports.context import ContextItem, ContextPack

MAX_FILES = 50_000


class FileTreeContext:
    name = "file-tree"

    async def build(
        self, root: str, query: str, *, token_budget: int, focus: Sequence[str] = ()
    ) -> ContextPack:
        files, complete = await asyncio.to_thread(_list_files, Path(root))
        text = _fit(files, token_budget)
        notices = [] if complete else [f"the tree was cut at {MAX_FILES} files"]
        return ContextPack(
            text=text,
            items=[ContextItem(path=".", reason="file tree", tokens=estimate_tokens(text))],
            token_count=estimate_tokens(text),
            provider=self.name,
            notices=notices,
        )


def _list_files(root: Path) -> tuple[list[str], bool]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        base = Path(dirpath).relative_to(root)
        for name in sorted(filenames):
            found.append(str(base / name) if str(base) != "." else name)
            if len(found) >= MAX_FILES:
                return found, False
    return found, True


def _render(files: list[str], depth: int) -> str:
    """The tree down to `depth` folder levels; deeper folders as one line with a count."""
    counts = Counter("/".join(p.split("/")[: depth + 1]) for p in files if p.count("/") > depth)
    lines: list[str] = []
    shown: set[str] = set()
    for path in files:
        parts = path.split("/")
        if len(parts) - 1 > depth:
            key = "/".join(parts[: depth + 1])
            if key not in shown:
                _dirs(parts[: depth + 1], shown, lines)
                shown.add(key)
                n = counts[key]
                lines.append(f"{'  ' * depth}{parts[depth]}/ ({n} file{'' if n == 1 else 's'})")
            continue
        _dirs(parts, shown, lines)
        lines.append(f"{'  ' * (len(parts) - 1)}{parts[-1]}")
    return "\n".join(lines)


def _dirs(parts: list[str], shown: set[str], lines: list[str]) -> None:
    """Lines for the folders of `parts` (all but its last component) not shown yet."""
    for i in range(len(parts) - 1):
        key = "/".join(parts[: i + 1])
        if key not in shown:
            shown.add(key)
            lines.append(f"{'  ' * i}{parts[i]}/")


def _fit(files: list[str], token_budget: int) -> str:
    deepest = max((p.count("/") for p in files), default=0)
    for depth in range(deepest, -1, -1):
        text = _render(files, depth)
        if estimate_tokens(text) <= token_budget:
            return text
    top = sorted({p.split("/")[0] for p in files})
    text = "\n".join(top)
    while top and estimate_tokens(text) > token_budget:
        top = top[: len(top) // 2]
        text = "\n".join(top) + "\n[… more entries]"
    return text if top else ""
