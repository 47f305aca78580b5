"""Finding things: glob (paths by pattern) and grep (lines by regular expression).

Both walk the workspace through the sandbox, skip version-control and dependency
folders, and stop at a budget — of entries visited, bytes read and results kept —
saying so when they stop early, so a huge repository never stalls a step.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, ClassVar

from msgspec import Meta, Struct

from codeforge.agent.tools.base import Tool, ToolContext, ToolFailed, ToolResult, cap
from codeforge.ports.sandbox import FileStat, Sandbox, SandboxError

SKIPPED_DIRS = frozenset(
    {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".mypy_cache",
     ".pytest_cache", ".ruff_cache", ".tox", ".codeforge"}
)  # fmt: skip
MAX_VISITED = 20_000
MAX_FILE_BYTES = 1024 * 1024
MAX_READ_BYTES = 64 * 1024 * 1024


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A gitignore-like glob as a regex: `**` crosses folders, `*` and `?` do not."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c)))
        i += 1
    return re.compile("".join(out) + r"\Z")


class Walk:
    """Files under a folder, breadth by name order, within the visit budget."""

    def __init__(self, sandbox: Sandbox, root: str) -> None:
        self.sandbox = sandbox
        self.root = root
        self.visited = 0
        self.stopped = False

    async def files(self) -> AsyncIterator[FileStat]:
        pending = [self.root]
        while pending:
            folder = pending.pop(0)
            try:
                entries = await self.sandbox.list_dir(folder)
            except SandboxError:
                continue  # vanished or unreadable meanwhile
            for entry in entries:
                self.visited += 1
                if self.visited > MAX_VISITED:
                    self.stopped = True
                    return
                name = entry.path.rsplit("/", 1)[-1]
                if entry.kind == "directory":
                    if name not in SKIPPED_DIRS:
                        pending.append(entry.path)
                elif entry.kind == "file":
                    yield entry


def _relative(path: str, root: str) -> str:
    return path if root in ("", ".") else path[len(root.rstrip("/")) + 1 :]


class GlobArgs(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pattern: Annotated[str, Meta(description='e.g. "**/*.py" or "src/*/test_*.go"')]
    path: Annotated[str, Meta(description="Folder to search under")] = "."


class Glob(Tool[GlobArgs]):
    name: ClassVar[str] = "glob"
    description: ClassVar[str] = (
        "Find files whose path (relative to `path`) matches a glob pattern; `**` matches "
        "across folders. Version-control and dependency folders are skipped."
    )
    category = "read"
    Args = GlobArgs
    LIMIT: ClassVar[int] = 200

    async def run(self, args: GlobArgs, context: ToolContext) -> ToolResult:
        if not args.pattern:
            raise ToolFailed("pattern is empty")
        matcher = glob_regex(args.pattern)
        walk = Walk(context.sandbox, args.path)
        found: list[str] = []
        more = 0
        async for entry in walk.files():
            if matcher.match(_relative(entry.path, args.path)):
                if len(found) < self.LIMIT:
                    found.append(entry.path)
                else:
                    more += 1
        lines = sorted(found)
        if more:
            lines.append(f"[… {more} more matches; narrow the pattern]")
        if walk.stopped:
            lines.append(f"[stopped after {MAX_VISITED} entries; search a smaller folder]")
        return ToolResult(ok=True, output="\n".join(lines) or "no file matches")


class GrepArgs(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pattern: Annotated[str, Meta(description="A regular expression (Python syntax)")]
    path: Annotated[str, Meta(description="Folder or file to search")] = "."
    glob: Annotated[str | None, Meta(description='Only files matching, e.g. "*.py"')] = None
    ignore_case: bool = False
    max_results: Annotated[int, Meta(ge=1, le=500)] = 100


class Grep(Tool[GrepArgs]):
    name: ClassVar[str] = "grep"
    description: ClassVar[str] = (
        "Search file contents for a regular expression; returns path:line: text. "
        "Binary files, files over 1 MB, and version-control and dependency folders "
        "are skipped."
    )
    category = "read"
    Args = GrepArgs

    async def run(self, args: GrepArgs, context: ToolContext) -> ToolResult:
        try:
            regex = re.compile(args.pattern, re.IGNORECASE if args.ignore_case else 0)
        except re.error as e:
            raise ToolFailed(f"the pattern is not a valid regular expression: {e}") from None
        only = (
            glob_regex(args.glob if "/" in (args.glob or "") else f"**/{args.glob}")
            if args.glob
            else None
        )
        hits: list[str] = []
        total = read = 0
        walk = Walk(context.sandbox, args.path)
        files = await self._files(context, args.path, walk)
        async for entry in files:
            if only is not None and not only.match(entry.path):
                continue
            if entry.size > MAX_FILE_BYTES or read > MAX_READ_BYTES:
                continue
            try:
                data = await context.sandbox.read_file(entry.path)
            except SandboxError:
                continue
            read += len(data)
            if b"\0" in data[:8192]:
                continue
            for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
                if regex.search(line):
                    total += 1
                    if len(hits) < args.max_results:
                        hits.append(f"{entry.path}:{number}: {line.strip()[:300]}")
        if total > len(hits):
            hits.append(f"[… {total - len(hits)} more matching lines; narrow the search]")
        if walk.stopped or read > MAX_READ_BYTES:
            hits.append("[the search stopped early: search a smaller folder]")
        body, truncated = cap("\n".join(hits) or "no match", context.output_chars)
        return ToolResult(ok=True, output=body, truncated=truncated)

    @staticmethod
    async def _files(context: ToolContext, path: str, walk: Walk) -> AsyncIterator[FileStat]:
        single = await context.sandbox.stat(path)
        if single.kind == "file":

            async def one() -> AsyncIterator[FileStat]:
                yield single

            return one()
        return walk.files()
