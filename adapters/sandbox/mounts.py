"""Mounts on the host: the few mount(2) calls the hybrid layers and docker's warm pool make.

Through libc (ctypes), not the `mount` tool: no process per call, and the error is the
kernel's errno. Every call needs CAP_SYS_ADMIN in the host's mount namespace (root);
without it they raise PermissionError, which callers turn into "not available here".
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from typing import Final

MS_BIND: Final = 4096
MS_REC: Final = 16384
MS_PRIVATE: Final = 1 << 18
MS_SHARED: Final = 1 << 20
MNT_DETACH: Final = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _check(result: int, what: str, path: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}", path)


def mount(source: str, target: str, fstype: str | None, flags: int, options: str = "") -> None:
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            options.encode() if options else None,
        ),
        f"mount {source}",
        target,
    )


def bind(source: str, target: str) -> None:
    """Bind `source` (with the mounts below it) at `target`."""
    mount(source, target, None, MS_BIND | MS_REC)


def make_shared(path: str) -> None:
    """Make `path` a mount point of its own whose new submounts propagate to its slaves."""
    bind(path, path)
    mount("none", path, None, MS_SHARED)


def unmount(target: str) -> None:
    """Detach `target` (lazily: users still inside keep what they hold)."""
    _check(_libc.umount2(target.encode(), MNT_DETACH), "umount", target)


def mounts_under(directory: str) -> list[str]:
    """Mount points at or below `directory`, deepest first (to unmount in that order)."""
    prefix = directory.rstrip("/")
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape(line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def unmount_all_under(directory: str) -> None:
    """Detach every mount at or below `directory`; ones already gone are ignored."""
    for point in mounts_under(directory):
        with contextlib.suppress(OSError):
            unmount(point)


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes (\040).
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def remove_empty_directories(directory: str) -> None:
    """Remove `directory` and the empty directories directly in it; nothing else.

    Never `shutil.rmtree` a directory that held mounts: if an unmount did not happen, it
    would delete the mounted workspace's files through the mount. A mount point (read
    from mountinfo: `os.path.ismount` misses a bind within one filesystem), or a
    directory that is not empty, is left where it is.
    """
    points = set(mounts_under(directory))
    if directory.rstrip("/") in points:
        return  # still mounted: its entries are the mounted tree's, not ours
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            if entry.is_dir(follow_symlinks=False) and entry.path not in points:
                with contextlib.suppress(OSError):
                    os.rmdir(entry.path)
    with contextlib.suppress(OSError):
        os.rmdir(directory)
