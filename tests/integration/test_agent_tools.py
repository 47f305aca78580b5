"""The native agent's tools on a real sandbox over a real folder.

Every tool answers a mistake the model made with a failed result that says what to do
instead; only the runtime's own failures would raise.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.sandbox.bwrap import BwrapSandboxFactory
from adapters.sandbox.mount import MountSandboxFactory
from codeforge.agent.tools import ToolContext, ToolResult, default_toolbox
from codeforge.ports.sandbox import Sandbox, SandboxSpec, SandboxUnavailable

TOOLS = default_toolbox()


@pytest.fixture(params=["mount", "bwrap"])
async def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Sandbox]:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("".join(f"line {n}\n" for n in range(1, 3001)))
    (root / "src" / "util.py").write_text(
        "def helper():\n    return 1\n\n\ndef other():\n    return 1\n"
    )
    (root / "blob.bin").write_bytes(b"\x00\x01binary")
    (root / ".git").mkdir()
    (root / ".git" / "config.py").write_text("hidden = True\n")
    (root / "node_modules" / "x").mkdir(parents=True)
    (root / "node_modules" / "x" / "index.py").write_text("helper = 1\n")
    factory = MountSandboxFactory() if request.param == "mount" else BwrapSandboxFactory()
    try:
        await factory.check()
    except SandboxUnavailable as e:
        pytest.skip(f"{request.param} cannot run here: {e}")
    async with await factory.open(SandboxSpec(workspace=str(root))) as opened:
        yield opened


class Emitted:
    def __init__(self) -> None:
        self.chunks: list[tuple[str, str]] = []

    async def __call__(self, stream: str, text: str) -> None:
        self.chunks.append((stream, text))


async def call(
    sandbox: Sandbox, name: str, emitted: Emitted | None = None, **args: Any
) -> ToolResult:
    tool = TOOLS.get(name)
    assert tool is not None
    context = ToolContext(
        sandbox=sandbox, output_chars=20_000, bash_timeout=5, bash_max_timeout=10,
        emit=emitted or Emitted(),
    )  # fmt: skip
    try:
        decoded = tool.decode(json.loads(json.dumps(args)))
    except Exception as e:
        return ToolResult(ok=False, output=str(e))
    return await tool(decoded, context)


async def test_read_file_numbers_lines_pages_long_files_and_refuses_binary(
    sandbox: Sandbox,
) -> None:
    first = await call(sandbox, "read_file", path="src/app.py")
    assert first.ok
    assert first.output.startswith("1\tline 1\n")
    assert "read on with start_line=2001" in first.output
    part = await call(sandbox, "read_file", path="src/app.py", start_line=2999, end_line=3000)
    assert part.output == "2999\tline 2999\n3000\tline 3000"
    binary = await call(sandbox, "read_file", path="blob.bin")
    assert not binary.ok
    assert "binary" in binary.output
    missing = await call(sandbox, "read_file", path="nope.py")
    assert not missing.ok
    escape = await call(sandbox, "read_file", path="/etc/passwd")
    assert not escape.ok
    wrong = await call(sandbox, "read_file", path="src/app.py", start_line=0)
    assert not wrong.ok
    assert ">= 1" in wrong.output


async def test_edit_must_match_once_and_says_why_not(sandbox: Sandbox) -> None:
    twice = await call(
        sandbox, "edit", path="src/util.py", old_string="return 1", new_string="return 2"
    )
    assert not twice.ok
    assert "occurs 2 times" in twice.output
    assert "lines 2, 6" in twice.output
    spaced = await call(
        sandbox, "edit", path="src/util.py", old_string="def helper():\nreturn 1", new_string="x"
    )
    assert "whitespace is ignored" in spaced.output
    done = await call(
        sandbox, "edit", path="src/util.py", old_string="return 1", new_string="return 2",
        replace_all=True,
    )  # fmt: skip
    assert done.ok
    assert done.touched == ("src/util.py",)
    assert "-    return 1" in done.diff
    assert (await sandbox.read_file("src/util.py")).count(b"return 2") == 2


async def test_write_file_creates_folders_and_reports_a_diff(sandbox: Sandbox) -> None:
    made = await call(sandbox, "write_file", path="new/deep/mod.py", content="x = 1\n")
    assert made.ok
    assert made.output.startswith("created new/deep/mod.py")
    assert "+x = 1" in made.diff
    again = await call(sandbox, "write_file", path="new/deep/mod.py", content="x = 2\n")
    assert again.output.startswith("replaced")
    unknown = await call(sandbox, "write_file", path="a.py", content="x", mode="0777")
    assert not unknown.ok
    assert "mode" in unknown.output


async def test_glob_and_grep_skip_vcs_and_dependency_folders(sandbox: Sandbox) -> None:
    found = await call(sandbox, "glob", pattern="**/*.py")
    assert found.output.splitlines() == ["src/app.py", "src/util.py"]
    hits = await call(sandbox, "grep", pattern=r"def \w+", glob="*.py")
    assert hits.output.splitlines() == [
        "src/util.py:1: def helper():",
        "src/util.py:5: def other():",
    ]
    limited = await call(sandbox, "grep", pattern="line", max_results=5)
    assert "2995 more matching lines" in limited.output
    bad = await call(sandbox, "grep", pattern="(")
    assert not bad.ok
    assert "not a valid regular expression" in bad.output
    one_file = await call(sandbox, "grep", pattern="other", path="src/util.py")
    assert one_file.output == "src/util.py:5: def other():"


async def test_bash_reports_exit_code_streams_output_and_times_out(sandbox: Sandbox) -> None:
    emitted = Emitted()
    ran = await call(sandbox, "bash", emitted, command="echo out; echo err >&2; exit 3")
    assert not ran.ok
    assert ran.exit_code == 3
    assert ran.touched is None  # a command may have changed anything
    assert "[stdout]\nout" in ran.output
    assert "[stderr]\nerr" in ran.output
    assert ("stdout", "out\n") in emitted.chunks
    slow = await call(sandbox, "bash", command="sleep 5", timeout=1)
    assert slow.timed_out
    assert "killed after 1 s" in slow.output
    capped = await call(sandbox, "bash", command="sleep 1", timeout=999)
    assert capped.ok  # asked for 999 s, allowed at most 10 s


async def test_finish_carries_the_summary(sandbox: Sandbox) -> None:
    done = await call(sandbox, "finish", summary="  all good  ")
    assert done.finished == "all good"
