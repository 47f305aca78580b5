"""File operations on a workspace, done by CodeForge's own process (not by a command).

Shared by the adapters whose workspace is a host directory (mount, bwrap, and docker's
bind mount). Every operation resolves its path with `paths.Workspace` and then works on
names relative to a directory descriptor, never following a link after resolution (see
paths.py for what that does and does not protect against). The functions block: the
sandbox runs them in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from datetime import UTC, datetime

from adapters.sandbox.paths import Workspace, relative_parts, shown, translate
from codeforge.ports.sandbox import FileKind, FileStat, PathEscape, WrongFileType

READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever; it
# changes nothing for the regular files we go on to read.
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def read_file(ws: Workspace, path: str) -> bytes:
    parts = ws.resolve(path)
    if not parts:
        raise WrongFileType("the workspace root is a directory, not a file", field="path")
    with ws.open_dir(parts[:-1]) as parent:
        try:
            fd = os.open(parts[-1], READ_FLAGS, dir_fd=parent)
        except OSError as e:
            raise translate(e, parts) from e
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise WrongFileType(f"{shown(parts)} is a {_kind(info.st_mode)}, not a file")
            with os.fdopen(fd, "rb", closefd=False) as f:
                return f.read()
        except OSError as e:
            raise translate(e, parts) from e
        finally:
            os.close(fd)


def write_file(ws: Workspace, path: str, data: bytes) -> None:
    parts = ws.resolve(path)
    if not parts:
        raise WrongFileType("the workspace root is a directory, not a file", field="path")
    name = parts[-1]
    with ws.open_dir(parts[:-1], create=True) as parent:
        try:
            existing: os.stat_result | None = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        except OSError as e:
            raise translate(e, parts) from e
        if existing is not None and stat.S_ISLNK(existing.st_mode):
            raise _changed(parts)
        if existing is not None and not stat.S_ISREG(existing.st_mode):
            raise WrongFileType(f"{shown(parts)} is a {_kind(existing.st_mode)}, not a file")
        # Written aside and renamed into place: a reader (or a command) sees the old
        # content or the new, never half of it, and the rename replaces a name without
        # following it.
        temporary = f".codeforge-{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(temporary, WRITE_FLAGS, 0o666, dir_fd=parent)
            try:
                if existing is not None:
                    os.fchmod(fd, stat.S_IMODE(existing.st_mode))
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.rename(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)
        except OSError as e:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=parent)
            raise translate(e, parts) from e


def list_dir(ws: Workspace, path: str) -> list[FileStat]:
    parts = ws.resolve(path)
    with ws.open_dir(parts) as directory:
        found = []
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    info = entry.stat(follow_symlinks=False)
                    found.append(_file_stat((*parts, entry.name), info))
        except OSError as e:
            raise translate(e, parts) from e
    return sorted(found, key=lambda s: s.path)


def delete(ws: Workspace, path: str, *, recursive: bool) -> None:
    if not relative_parts(path):
        raise WrongFileType("the workspace root cannot be deleted", field="path")
    parent_parts, name = ws.resolve_parent(path)
    parts = (*parent_parts, name)
    with ws.open_dir(parent_parts) as parent:
        try:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISDIR(info.st_mode):
                os.unlink(name, dir_fd=parent)
            elif recursive:
                shutil.rmtree(name, dir_fd=parent)
            else:
                os.rmdir(name, dir_fd=parent)
        except OSError as e:
            raise translate(e, parts) from e


def stat_path(ws: Workspace, path: str) -> FileStat:
    parts = ws.resolve(path)
    if not parts:
        return _file_stat((), os.fstat(ws.fd))
    with ws.open_dir(parts[:-1]) as parent:
        try:
            info = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except OSError as e:
            raise translate(e, parts) from e
    if stat.S_ISLNK(info.st_mode):
        raise _changed(parts)
    return _file_stat(parts, info)


def _file_stat(parts: tuple[str, ...], info: os.stat_result) -> FileStat:
    return FileStat(
        path=shown(parts),
        kind=_kind(info.st_mode),
        size=info.st_size,
        mode=stat.S_IMODE(info.st_mode),
        modified=datetime.fromtimestamp(info.st_mtime, UTC),
    )


def _kind(mode: int) -> FileKind:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def _changed(parts: tuple[str, ...]) -> PathEscape:
    # Resolution followed every link, so a link here appeared after it: a concurrent swap.
    return PathEscape(
        f"{shown(parts)!r} changed into a symbolic link while it was being resolved",
        field="path",
    )
