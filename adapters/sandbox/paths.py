"""Workspace paths: every path a sandbox is given, resolved inside its workspace.

A path goes through three steps, and an operation touches the disk only after all three:

1. `relative_parts` (lexical): "", NUL, absolute paths and `..` components are refused;
   "." and empty components are dropped ("a/./b//c" is a/b/c, "." is the root).
2. `Workspace.resolve` (symbolic links): the path under the workspace's real root is
   resolved with `os.path.realpath`; unless the result is the root or below it, the path
   escapes through a link and is refused. Links that stay inside are followed.
3. `Workspace.open_dir` (openat-style): the resolved components are walked from a file
   descriptor of the root opened once, with one `openat(O_NOFOLLOW | O_DIRECTORY)` per
   component, and the operation then works on names relative to the last descriptor.

Time of check against time of use, honestly: a command running at the same moment may
replace a directory with a symbolic link between steps 2 and 3. Step 3 then fails (a
link where the resolution saw a directory: ELOOP or ENOTDIR) and the operation raises
`PathEscape`; it never follows the swapped link, because no step after 2 follows links
at all, and every step after 2 starts from the root's descriptor, not from its name.
What this does not cover: (a) `exec`'s `cwd` is handed to the process by name (a path
string), so a concurrent swap can point a mount sandbox's command elsewhere — which
gains nothing there (mount has no isolation to escape) and, under bwrap, lands only on
what the sandbox can see anyway; (b) symbolic links with absolute targets are resolved
as the host sees them, so a link a bwrap command made to "/workspace/x" is refused by the
file operations (use relative links), and a link to the workspace's host path is
accepted. Where the kernel offers `openat2(RESOLVE_BENEATH)` a future version can drop
step 2; the outcome for callers would not change.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

from codeforge.ports.sandbox import PathEscape, SandboxError, SandboxPathNotFound, WrongFileType

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def relative_parts(path: str, *, field: str = "path") -> tuple[str, ...]:
    """The components of a workspace-relative path, or PathEscape (step 1)."""
    if not isinstance(path, str) or not path:
        raise PathEscape(f"{field} must be a non-empty relative path", field=field)
    if "\0" in path:
        raise PathEscape(f"{field} holds a NUL byte: {path!r}", field=field)
    if path.startswith("/"):
        raise PathEscape(
            f"{field} must be relative to the workspace, not absolute: {path!r}", field=field
        )
    parts = tuple(p for p in path.split("/") if p not in ("", "."))
    if ".." in parts:
        raise PathEscape(f"{field} must not contain '..': {path!r}", field=field)
    return parts


def shown(parts: tuple[str, ...]) -> str:
    """A resolved path as messages and `FileStat.path` show it ("." for the root)."""
    return "/".join(parts) or "."


class Workspace:
    """The root of one sandbox's workspace, held open by descriptor until `close()`."""

    def __init__(self, root: str) -> None:
        real = os.path.realpath(root)
        if real == "/":
            raise PathEscape("the workspace cannot be the filesystem root", field="workspace")
        try:
            self.fd = os.open(real, DIR_FLAGS)
        except FileNotFoundError as e:
            raise SandboxPathNotFound(
                f"the workspace {root} does not exist", field="workspace"
            ) from e
        except NotADirectoryError as e:
            raise WrongFileType(
                f"the workspace {root} is not a directory", field="workspace"
            ) from e
        self.root = real

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def host_path(self, parts: tuple[str, ...]) -> str:
        return os.path.join(self.root, *parts)

    def resolve(self, path: str, *, field: str = "path") -> tuple[str, ...]:
        """The resolved components of `path`, every symbolic link followed (step 2).

        Components that do not exist yet are kept as given, so a path to be created
        resolves too. Raises PathEscape when the result is not under the root.
        """
        parts = relative_parts(path, field=field)
        resolved = os.path.realpath(os.path.join(self.root, *parts))
        if resolved == self.root:
            return ()
        if not resolved.startswith(self.root + "/"):
            raise PathEscape(
                f"{field} {path!r} resolves outside the workspace through a symbolic link",
                field=field,
            )
        return tuple(resolved[len(self.root) + 1 :].split("/"))

    def resolve_parent(self, path: str, *, field: str = "path") -> tuple[tuple[str, ...], str]:
        """The resolved parent of `path` and its last name, that name NOT followed.

        For operations on a link itself (delete, lstat). Raises PathEscape for the root,
        which has no name in a parent.
        """
        parts = relative_parts(path, field=field)
        if not parts:
            raise PathEscape(f"{field} must name something inside the workspace", field=field)
        parent = self.resolve("/".join(parts[:-1]) or ".", field=field)
        return parent, parts[-1]

    @contextlib.contextmanager
    def open_dir(
        self, parts: tuple[str, ...], *, create: bool = False, field: str = "path"
    ) -> Iterator[int]:
        """A descriptor of the directory `parts` (step 3), closed on exit.

        With `create`, missing directories are made (mode 0o777 less the umask).
        """
        fd = self._walk(parts, create=create, field=field)
        try:
            yield fd
        finally:
            os.close(fd)

    def _walk(self, parts: tuple[str, ...], *, create: bool, field: str) -> int:
        fd = os.dup(self.fd)
        try:
            for name in parts:
                try:
                    child = os.open(name, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    # A concurrent creator may win; opening its directory is what we want.
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, dir_fd=fd)
                    child = os.open(name, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except OSError as e:
            os.close(fd)
            raise translate(e, parts, field=field) from e
        return fd


def translate(error: OSError, parts: tuple[str, ...], *, field: str = "path") -> SandboxError:
    """The port's error for an OSError met while working on `parts`."""
    where = shown(parts)
    if error.errno == errno.ENOENT:
        return SandboxPathNotFound(f"no such file or directory in the workspace: {where}")
    if error.errno == errno.ELOOP:
        return PathEscape(
            f"{field} {where!r} is a symbolic link loop, or changed into a link while it was "
            "being resolved",
            field=field,
        )
    if error.errno == errno.ENOTDIR:
        return WrongFileType(f"{where}: a component of the path is not a directory", field=field)
    if error.errno == errno.EISDIR:
        return WrongFileType(f"{where} is a directory", field=field)
    if error.errno == errno.ENOTEMPTY:
        return WrongFileType(
            f"{where} is a directory that is not empty (delete it with recursive=True)",
            field=field,
        )
    return SandboxError(f"{where}: {error.strerror or error}", field=field)
