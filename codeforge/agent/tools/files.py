"""Reading and changing files: read_file, write_file, edit, list_dir."""

from __future__ import annotations

import difflib
from typing import Annotated, ClassVar

from msgspec import Meta, Struct

from codeforge.agent.tools.base import Tool, ToolContext, ToolFailed, ToolResult, cap
from codeforge.ports.sandbox import SandboxPathNotFound

# Lines returned by one read when the model gives no range.
READ_LINES = 2000
DIFF_CHARS = 20_000

Path = Annotated[str, Meta(description="Relative to the repository root, e.g. src/app.py")]
Line = Annotated[int, Meta(ge=1)]


def text_of(data: bytes, path: str) -> str:
    if b"\0" in data[:8192]:
        raise ToolFailed(f"{path} is a binary file ({len(data)} bytes); it cannot be shown as text")
    return data.decode("utf-8", errors="replace")


def unified_diff(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    )
    return cap("".join(lines), DIFF_CHARS)[0]


class ReadArgs(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    path: Path
    start_line: Line | None = None
    end_line: Line | None = None


class ReadFile(Tool[ReadArgs]):
    name: ClassVar[str] = "read_file"
    description: ClassVar[str] = (
        "Read a text file of the repository. Lines come numbered (number, tab, text). "
        f"Without a range at most {READ_LINES} lines are returned; pass start_line and "
        "end_line (1-based, inclusive) to read a part of a long file."
    )
    category = "read"
    Args = ReadArgs

    async def run(self, args: ReadArgs, context: ToolContext) -> ToolResult:
        text = text_of(await context.sandbox.read_file(args.path), args.path)
        lines = text.splitlines()
        start = args.start_line or 1
        end = args.end_line or min(len(lines), start + READ_LINES - 1)
        if end < start:
            raise ToolFailed(f"end_line {end} is before start_line {start}")
        if lines and start > len(lines):
            raise ToolFailed(f"{args.path} has {len(lines)} lines; start_line {start} is past it")
        shown = [f"{n}\t{line}" for n, line in enumerate(lines[start - 1 : end], start)]
        note = ""
        if end < len(lines):
            note = f"\n[{len(lines) - end} more lines: read on with start_line={end + 1}]"
        if not lines:
            return ToolResult(ok=True, output=f"{args.path} is empty")
        body, truncated = cap("\n".join(shown), context.output_chars)
        return ToolResult(ok=True, output=body + note, truncated=truncated)


class WriteArgs(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    path: Path
    content: Annotated[str, Meta(description="The whole new content of the file")]


class WriteFile(Tool[WriteArgs]):
    name: ClassVar[str] = "write_file"
    description: ClassVar[str] = (
        "Create a file, or replace a file's whole content. Missing folders are created. "
        "To change part of an existing file, prefer `edit`."
    )
    category = "write"
    Args = WriteArgs

    async def run(self, args: WriteArgs, context: ToolContext) -> ToolResult:
        try:
            before = text_of(await context.sandbox.read_file(args.path), args.path)
            verb = "replaced"
        except SandboxPathNotFound:
            before, verb = "", "created"
        except ToolFailed:
            before, verb = "", "replaced (it was binary)"
        await context.sandbox.write_file(args.path, args.content)
        size = len(args.content.encode())
        return ToolResult(
            ok=True,
            output=f"{verb} {args.path} ({size} bytes)",
            touched=(args.path,),
            diff=unified_diff(args.path, before, args.content),
        )


class EditArgs(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    path: Path
    old_string: Annotated[
        str, Meta(description="Exact text to replace, with enough context to be unique")
    ]
    new_string: str
    replace_all: Annotated[
        bool, Meta(description="Replace every occurrence instead of exactly one")
    ] = False


class Edit(Tool[EditArgs]):
    name: ClassVar[str] = "edit"
    description: ClassVar[str] = (
        "Replace an exact piece of text in a file. old_string must occur exactly once "
        "(include surrounding lines to make it unique), unless replace_all is true. "
        "Whitespace and indentation must match the file exactly."
    )
    category = "edit"
    Args = EditArgs

    async def run(self, args: EditArgs, context: ToolContext) -> ToolResult:
        if not args.old_string:
            raise ToolFailed("old_string is empty; to create or overwrite a file use write_file")
        if args.old_string == args.new_string:
            raise ToolFailed("old_string and new_string are the same: nothing would change")
        try:
            text = text_of(await context.sandbox.read_file(args.path), args.path)
        except SandboxPathNotFound:
            raise ToolFailed(f"{args.path} does not exist; create it with write_file") from None
        count = text.count(args.old_string)
        if count == 0:
            raise ToolFailed(_no_match(args.path, text, args.old_string))
        if count > 1 and not args.replace_all:
            raise ToolFailed(
                f"old_string occurs {count} times in {args.path} (at lines "
                f"{_lines_of(text, args.old_string)}); add surrounding lines to make it "
                "unique, or set replace_all"
            )
        updated = text.replace(args.old_string, args.new_string)
        await context.sandbox.write_file(args.path, updated)
        return ToolResult(
            ok=True,
            output=f"edited {args.path}: {count} replacement{'s' if count > 1 else ''}",
            touched=(args.path,),
            diff=unified_diff(args.path, text, updated),
        )


def _lines_of(text: str, needle: str, limit: int = 10) -> str:
    found: list[str] = []
    at = text.find(needle)
    while at >= 0 and len(found) < limit:
        found.append(str(text.count("\n", 0, at) + 1))
        at = text.find(needle, at + 1)
    return ", ".join(found)


def _no_match(path: str, text: str, needle: str) -> str:
    message = f"old_string was not found in {path}."
    squeezed = " ".join(needle.split())
    if squeezed and squeezed in " ".join(text.split()):
        return message + " It matches if whitespace is ignored: copy the exact indentation."
    first = needle.strip().splitlines()[0].strip() if needle.strip() else ""
    if first:
        close = difflib.get_close_matches(first, [ln.strip() for ln in text.splitlines()], n=3)
        if close:
            hints = "; ".join(repr(c) for c in close)
            return message + f" Lines that look similar: {hints}. Read the file and retry."
    return message + " Read the file first and copy the text exactly."


class ListArgs(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    path: Path = "."


class ListDir(Tool[ListArgs]):
    name: ClassVar[str] = "list_dir"
    description: ClassVar[str] = "List a folder: each entry with its kind and size."
    category = "read"
    Args = ListArgs
    LIMIT: ClassVar[int] = 500

    async def run(self, args: ListArgs, context: ToolContext) -> ToolResult:
        entries = await context.sandbox.list_dir(args.path)
        lines = []
        for entry in entries[: self.LIMIT]:
            name = entry.path.rsplit("/", 1)[-1]
            if entry.kind == "directory":
                lines.append(f"{name}/")
            elif entry.kind == "symlink":
                lines.append(f"{name}@")
            else:
                lines.append(f"{name}  ({entry.size} bytes)")
        if len(entries) > self.LIMIT:
            lines.append(f"[… {len(entries) - self.LIMIT} more entries]")
        return ToolResult(ok=True, output="\n".join(lines) or f"{args.path} is empty")
