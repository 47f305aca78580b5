"""Regular-expression search over a folder, with a strict budget.

Runs `git grep` in a git work tree (it honours .gitignore and searches untracked
files too) and GNU `grep -r` elsewhere, as argv lists (no shell). Both use
automata, not backtracking, so no pattern can hang the search; a wall-clock
timeout bounds it anyway. Output is read as a stream and the process is stopped
as soon as the budget (matches, bytes) is spent, so a pattern matching every line
of a huge repository costs the budget, not the repository.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import msgspec

from codeforge.domain.errors import ValidationFailed

MAX_PATTERN = 500
LINE_WIDTH = 300
SKIPPED = ("node_modules", "__pycache__", ".git", ".venv", "venv", "dist", "build", "target")


class GrepMatch(msgspec.Struct, frozen=True):
    path: str
    line: int
    text: str


class GrepResults(msgspec.Struct, frozen=True):
    pattern: str
    matches: list[GrepMatch]
    truncated: bool  # the budget ran out (or the timeout): there are more matches
    elapsed_ms: float


def grep(
    root: Path,
    pattern: str,
    *,
    limit: int = 50,
    max_bytes: int = 200_000,
    fixed: bool = False,
    ignore_case: bool = False,
    timeout: float = 10.0,
) -> GrepResults:
    """At most `limit` matching lines (and `max_bytes` of output) of files under `root`."""
    if not pattern or len(pattern) > MAX_PATTERN or "\0" in pattern or "\n" in pattern:
        raise ValidationFailed(
            f"a search pattern is 1-{MAX_PATTERN} characters on one line", field="pattern"
        )
    started = time.perf_counter()
    flags = ["-F"] if fixed else ["-E"]
    if ignore_case:
        flags.append("-i")
    if (root / ".git").exists():
        argv = ["git", "-c", "core.quotepath=off", "grep", "-n", "-I", "--untracked", "--no-color",
                *flags, "-e", pattern, "--"]  # fmt: skip
    else:
        argv = ["grep", "-r", "-n", "-I", "--color=never", *flags,
                *(f"--exclude-dir={d}" for d in SKIPPED), "-e", pattern, "."]  # fmt: skip
    matches: list[GrepMatch] = []
    truncated = False
    read = 0
    process = subprocess.Popen(
        argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            read += len(raw)
            if len(matches) >= limit or read > max_bytes:
                truncated = True
                break
            if time.perf_counter() - started > timeout:
                truncated = True
                break
            parsed = _parse(raw)
            if parsed is not None:
                matches.append(parsed)
    finally:
        if process.poll() is None:
            process.kill()
        _, error = process.communicate()
    # grep exits 1 for "no match"; 2 (git grep: 128) for a bad pattern or a failure.
    if process.returncode not in (0, 1, -9) and not matches and not truncated:
        message = error.decode("utf-8", "replace").strip().splitlines()
        raise ValidationFailed(
            f"the search failed: {message[-1] if message else 'exit ' + str(process.returncode)}",
            field="pattern",
        )
    return GrepResults(pattern, matches, truncated, (time.perf_counter() - started) * 1000)


def _parse(raw: bytes) -> GrepMatch | None:
    text = raw.decode("utf-8", "replace").rstrip("\n")
    path, sep, rest = text.partition(":")
    number, sep2, line = rest.partition(":")
    if not sep or not sep2 or not number.isdigit():
        return None
    return GrepMatch(path.removeprefix("./"), int(number), line[:LINE_WIDTH])
