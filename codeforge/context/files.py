"""Which files of a folder the engine reads, and their stat signatures.

In a git work tree: the files git tracks plus untracked files it does not ignore
(`git ls-files -co --exclude-standard`), so `.gitignore` is honoured. Elsewhere:
a walk that skips hidden folders and the usual dependency and build folders.
Only files a grammar reads are kept. Symlinks are not followed out of the root.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from codeforge.context.languages import language_of

SKIPPED_DIRS = frozenset(
    {
        "node_modules",
        "__pycache__",
        "site-packages",
        "venv",
        "dist",
        "build",
        "target",
        "vendor",
        ".git",
    }
)


@dataclass(frozen=True, slots=True)
class Stat:
    mtime_ns: int
    ctime_ns: int
    size: int
    inode: int


def list_files(root: Path) -> dict[str, Stat]:
    """Relative POSIX path -> stat of every source file under `root` the engine reads."""
    names = _git_files(root)
    if names is None:
        return _walk(root)
    out: dict[str, Stat] = {}
    for name in names:
        if language_of(name) is None:
            continue
        try:
            st = os.lstat(root / name)
        except OSError:
            continue  # deleted since git listed it
        if _is_regular(st.st_mode):
            out[name] = Stat(st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
    return out


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


def _git_files(root: Path) -> list[str] | None:
    if not (root / ".git").exists():
        return None
    try:
        result = subprocess.run(
            ["git", "-c", "core.quotepath=off", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=root,
            capture_output=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return [n for n in result.stdout.decode("utf-8", "surrogateescape").split("\0") if n]


def _walk(root: Path) -> dict[str, Stat]:
    out: dict[str, Stat] = {}
    stack = [""]
    while stack:
        relative = stack.pop()
        try:
            entries = os.scandir(root / relative if relative else root)
        except OSError:
            continue
        with entries:
            for entry in entries:
                name = entry.name
                path = f"{relative}/{name}" if relative else name
                if entry.is_dir(follow_symlinks=False):
                    if not name.startswith(".") and name not in SKIPPED_DIRS:
                        stack.append(path)
                elif entry.is_file(follow_symlinks=False) and language_of(name) is not None:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    out[path] = Stat(st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
    return out
