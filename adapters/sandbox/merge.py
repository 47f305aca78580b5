"""Merging a layer into its workspace: the plan, the diff, one all-or-nothing apply, recovery.

A hybrid sandbox's layer says which paths it changed (`Candidates`: a path and what it
is now in the layer, or None for deleted). `evaluate` turns that into a `Plan` against
the workspace's **base** (a `Manifest`: the stat of every path when the layer began) and
the workspace as it is now:

- a path the host still has as it was in the base, and the layer changed, is a change;
- a path the host changed since the base (content, mode, kind, or by adding or removing
  it), and the layer changed differently, is a **conflict**; a path both changed the same
  way is neither;
- a directory the layer removes or replaces is checked whole: anything the host added,
  changed or replaced below it since the base is a conflict.

`apply` carries out a plan with no conflicts, all or nothing. Everything new is staged
first in `.codeforge-merge-<id>/` at the workspace root (same filesystem: renames are
atomic), then each step renames: the host's old entry into the staging directory (a
backup), the staged new one into place. Before each step the host's entry is compared
with what the plan expects once more; a difference (a writer racing the merge), or any
error, undoes every step taken, in reverse, and the merge fails having changed nothing.
Each step is written to a journal in the staging directory first, so a merge interrupted
by a crash of this process is undone by `recover` when the workspace is next opened.

Nothing here follows a symbolic link: both trees are walked from directory descriptors
with O_NOFOLLOW, links in the layer are merged as links (their target text), and a host
path whose parent became a link or a file since the base is a conflict. Modes are merged
as permission bits (setuid, setgid and sticky dropped). Special files (fifos, sockets,
devices) are not merged; the diff lists them as skipped.
"""

from __future__ import annotations

import bisect
import contextlib
import difflib
import errno
import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping
from typing import Final, Literal, NamedTuple

from codeforge.ports.sandbox import (
    ChangeKind,
    FileKind,
    LayerChange,
    LayerDiff,
    MergeConflict,
    SandboxError,
)

STAGING_PREFIX: Final = ".codeforge-merge-"
DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
MAX_TEXT: Final = 1024 * 1024
"""Larger files are shown in the diff as binary."""
PERMISSIONS: Final = 0o777
CHUNK: Final = 1024 * 1024


class Blocked(Exception):
    """A component of the path is not a directory (a file, or a symbolic link) any more."""


class Entry(NamedTuple):
    """What a path was, as far as telling a change goes."""

    kind: FileKind
    mode: int
    ino: int
    ctime_ns: int
    size: int

    @classmethod
    def of(cls, info: os.stat_result) -> Entry:
        return cls(kind_of(info.st_mode), stat.S_IMODE(info.st_mode), info.st_ino,
                   info.st_ctime_ns, info.st_size)  # fmt: skip

    def unchanged(self, now: Entry | None) -> bool:
        """Whether `now` is this entry still (a directory: same kind and mode; anything
        else: the same inode, untouched since: ctime moves on every write and chmod)."""
        if now is None:
            return False
        if self.kind == "directory":
            return now.kind == "directory" and now.mode == self.mode
        return self == now


Manifest = dict[str, Entry]
"""Relative path ("a/b") -> entry, for every path below a root."""
Candidates = dict[str, Entry | None]
"""Paths a layer changed -> what each is in the layer (None: deleted there)."""


def kind_of(mode: int) -> FileKind:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def parts_key(path: str) -> tuple[str, ...]:
    """Sort key: a directory before what it holds ("a" < "a/b" < "a-c")."""
    return tuple(path.split("/"))


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


# ---------------------------------------------------------------------------- trees


class Tree:
    """A directory tree addressed by relative paths; no operation follows a link."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fd = os.open(root, DIR_FLAGS)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def directory(self, path: str) -> Iterator[int]:
        """A descriptor of the directory `path` ("" for the root); Blocked if a component
        is not a directory, FileNotFoundError if one is missing."""
        fd = os.dup(self.fd)
        try:
            for name in path.split("/") if path else ():
                try:
                    child = os.open(name, DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise Blocked(path) from e
                    raise
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def parent(self, path: str) -> Iterator[tuple[int, str]]:
        head, _, name = path.rpartition("/")
        with self.directory(head) as fd:
            yield fd, name

    def lstat(self, path: str) -> os.stat_result | None:
        """The entry at `path`, or None when it (or a parent) is missing."""
        try:
            with self.parent(path) as (fd, name):
                return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def entry(self, path: str) -> Entry | None:
        info = self.lstat(path)
        return None if info is None else Entry.of(info)

    @contextlib.contextmanager
    def open_file(self, path: str) -> Iterator[int]:
        with self.parent(path) as (parent, name):
            fd = os.open(name, READ_FLAGS, dir_fd=parent)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise Blocked(path)
            yield fd
        finally:
            os.close(fd)

    def read(self, path: str, limit: int | None = None) -> bytes:
        with self.open_file(path) as fd, os.fdopen(fd, "rb", closefd=False) as f:
            return f.read() if limit is None else f.read(limit)

    def readlink(self, path: str) -> str:
        with self.parent(path) as (fd, name):
            return os.readlink(name, dir_fd=fd)

    def walk(self, path: str = "") -> Iterator[tuple[str, os.stat_result]]:
        """Every entry below `path`, a directory before its contents; links not followed."""
        try:
            with self.directory(path) as fd:
                entries = [(e.name, e.stat(follow_symlinks=False)) for e in os.scandir(fd)]
        except (FileNotFoundError, Blocked):
            return
        for name, info in sorted(entries):
            child = join(path, name)
            yield child, info
            if stat.S_ISDIR(info.st_mode):
                yield from self.walk(child)


def snapshot(tree: Tree, *, skip: Callable[[str], bool] = lambda path: False) -> Manifest:
    """Every path below the tree's root, as it is now."""
    return {path: Entry.of(info) for path, info in tree.walk() if not skip(path)}


def below(paths: list[str], directory: str) -> list[str]:
    """The paths of the sorted list `paths` strictly below `directory`."""
    prefix = directory + "/"
    start = bisect.bisect_left(paths, prefix)
    end = bisect.bisect_left(paths, directory + "0")  # "0" sorts right after "/"
    return paths[start:end]


# ---------------------------------------------------------------------------- the plan

Action = Literal["remove", "put", "chmod"]


class Step(NamedTuple):
    """`remove` moves the host's entry away; `put` moves it away (if any) and puts the
    layer's file, link or (empty) directory in its place; `chmod` sets a directory's bits."""

    action: Action
    path: str
    expect: Entry | None
    """The host's entry the step replaces (None: nothing is there)."""
    mode: int = 0


class Plan(NamedTuple):
    changes: list[LayerChange]
    conflicts: list[str]
    skipped: list[str]
    steps: list[Step]

    def diff(self, patch: str) -> LayerDiff:
        return LayerDiff(
            changes=tuple(sorted(self.changes, key=lambda c: parts_key(c.path))),
            patch=patch,
            conflicts=tuple(sorted(self.conflicts, key=parts_key)),
            skipped=tuple(sorted(self.skipped, key=parts_key)),
        )


def evaluate(
    candidates: Candidates, hides: set[str], base: Manifest, host: Tree, layer: Tree
) -> Plan:
    """The plan that applies the layer's `candidates` to `host`, against `base`.

    `hides`: candidate directories that hide what the base had below them (an overlay's
    opaque directories); a deleted or non-directory candidate always does.
    """
    candidates = dict(candidates)
    base_paths = sorted(base)
    for path, new in list(candidates.items()):
        if new is None or new.kind != "directory" or path in hides:
            for hidden in below(base_paths, path):
                candidates.setdefault(hidden, None)
    plan = Plan([], [], [], [])
    replaced: set[str] = set()  # host directories a step moves away whole
    created: set[str] = set()  # directories a step puts where the host has none
    refused: set[str] = set()  # directories in conflict: nothing below them is planned
    for path in sorted(candidates, key=parts_key):
        if _under(path, refused):
            continue
        new, old = candidates[path], base.get(path)
        if new is not None and new.kind == "other":
            plan.skipped.append(path)
            continue
        try:
            now = None if _under(path, created) else host.entry(path)
        except Blocked:
            plan.conflicts.append(path)
            continue
        if new is None:
            if old is None or now is None:
                continue  # made and removed in the layer, or gone from the host as well
            deleted = LayerChange(path=path, change="deleted", kind=old.kind, old_mode=old.mode)
            if _under(path, replaced):
                plan.changes.append(deleted)  # moved away with the directory above it
                continue
            if not old.unchanged(now):
                plan.conflicts.append(path)
                refused.add(path)
                continue
            if not _subtree_unchanged(path, now, base, host, plan):
                refused.add(path)
                continue
            plan.changes.append(deleted)
            plan.steps.append(Step("remove", path, now))
            replaced.add(path)
            continue
        if now is not None and _same(path, now, new, host, layer):
            continue  # the host has what the layer has (a `touch`, an identical edit)
        if not (old.unchanged(now) if old is not None else now is None):
            plan.conflicts.append(path)
            refused.add(path)
            continue
        mode = new.mode & PERMISSIONS
        swaps_directory = now is not None and now.kind == "directory"
        if now is not None and swaps_directory and new.kind != "directory":
            if not _subtree_unchanged(path, now, base, host, plan):
                refused.add(path)
                continue
            replaced.add(path)
        change: ChangeKind = "added" if old is None else "modified"
        plan.changes.append(LayerChange(path=path, change=change, kind=new.kind, mode=mode,
                                        old_mode=None if old is None else old.mode))  # fmt: skip
        if swaps_directory and new.kind == "directory":
            plan.steps.append(Step("chmod", path, now, mode))
        else:
            plan.steps.append(Step("put", path, now, mode))
            if new.kind == "directory":
                created.add(path)
    return plan


def _under(path: str, directories: set[str]) -> bool:
    """Whether a directory above `path` is in `directories`."""
    cut = path.rfind("/")
    while cut > 0:
        if path[:cut] in directories:
            return True
        cut = path.rfind("/", 0, cut)
    return False


def _subtree_unchanged(path: str, now: Entry, base: Manifest, host: Tree, plan: Plan) -> bool:
    """For a directory about to be moved away whole: whether the host left everything
    below it as the base had it; what it changed is recorded as conflicts."""
    if now.kind != "directory":
        return True
    clean = True
    for child, info in host.walk(path):
        was = base.get(child)
        if was is None or not was.unchanged(Entry.of(info)):
            plan.conflicts.append(child)
            clean = False
    return clean


def _same(path: str, now: Entry, new: Entry, host: Tree, layer: Tree) -> bool:
    """Whether the host's entry already is what the layer holds."""
    if now.kind != new.kind:
        return False
    if now.kind == "directory":
        return now.mode == new.mode & PERMISSIONS
    if now.kind == "symlink":
        return host.readlink(path) == layer.readlink(path)
    if now.kind != "file" or now.size != new.size or now.mode != new.mode & PERMISSIONS:
        return False
    with host.open_file(path) as a, layer.open_file(path) as b:
        while True:
            left, right = os.read(a, CHUNK), os.read(b, CHUNK)
            if left != right:
                return False
            if not left:
                return True


# ---------------------------------------------------------------------------- the diff


def render_patch(plan: Plan, host: Tree, layer: Tree) -> str:
    """A `git diff`-style patch of the plan's files and links (host before, layer after).

    A path whose kind changes (a file that becomes a link or a directory) shows as the
    old one deleted and the new one added, as git shows it; directories do not show.
    """
    out: list[str] = []
    for change in sorted(plan.changes, key=lambda c: parts_key(c.path)):
        old_kind: FileKind | None = None
        if change.change != "added":
            entry = host.entry(change.path)
            old_kind = entry.kind if entry else None
        new_kind = None if change.change == "deleted" else change.kind
        old = _content(host, change.path, old_kind)
        new = _content(layer, change.path, new_kind)
        old_mode = _git_mode(old_kind, change.old_mode)
        new_mode = _git_mode(new_kind, change.mode)
        if old is not None and new is not None and old_kind == new_kind:
            out.append(_file_patch(change.path, old_mode, old, new_mode, new))
            continue
        if old is not None:
            out.append(_file_patch(change.path, old_mode, old, None, None))
        if new is not None:
            out.append(_file_patch(change.path, None, None, new_mode, new))
    return "".join(out)


def _content(tree: Tree, path: str, kind: FileKind | None) -> bytes | None:
    """A file's bytes (up to just past MAX_TEXT) or a link's target; None for the rest."""
    if kind == "symlink":
        return os.fsencode(tree.readlink(path))
    if kind == "file":
        return tree.read(path, MAX_TEXT + 1)
    return None


def _git_mode(kind: FileKind | None, mode: int | None) -> str:
    if kind == "symlink":
        return "120000"
    return "100755" if (mode or 0) & 0o111 else "100644"


def _file_patch(
    path: str, old_mode: str | None, old: bytes | None, new_mode: str | None, new: bytes | None
) -> str:
    """One file's patch: added (old None), deleted (new None) or modified."""
    a, b = f"a/{path}", f"b/{path}"
    head = [f"diff --git {a} {b}\n"]
    if old is None:
        head.append(f"new file mode {new_mode}\n")
    elif new is None:
        head.append(f"deleted file mode {old_mode}\n")
    elif old_mode != new_mode:
        head += [f"old mode {old_mode}\n", f"new mode {new_mode}\n"]
    if old == new:
        return "".join(head) if len(head) > 1 else ""
    before = "/dev/null" if old is None else a
    after = "/dev/null" if new is None else b
    old_text, new_text = _text(old), _text(new)
    if old_text is None or new_text is None:
        return "".join(head) + f"Binary files {before} and {after} differ\n"
    lines = difflib.unified_diff(
        _lines(old_text), _lines(new_text), fromfile=before, tofile=after, n=3
    )
    return "".join(head) + "".join(lines)


def _text(data: bytes | None) -> str | None:
    if data is None:
        return ""
    if len(data) > MAX_TEXT or b"\0" in data:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


# ---------------------------------------------------------------------------- apply


class _Changed(Exception):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class Journal:
    """The steps a merge took, in a file in its staging directory, for undoing them."""

    def __init__(self, fd: int, owner: str) -> None:
        self.entries: list[dict[str, object]] = []
        self._file = os.fdopen(fd, "w", encoding="utf-8")
        self._write({"op": "begin", "owner": owner})

    def _write(self, entry: Mapping[str, object]) -> None:
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()

    def note(self, op: str, path: str, **more: object) -> None:
        entry = {"op": op, "path": path, **more}
        self._write(entry)
        self.entries.append(entry)

    def commit(self) -> None:
        self._write({"op": "commit"})

    def close(self) -> None:
        self._file.close()


def apply(
    plan: Plan,
    host: Tree,
    layer: Tree,
    *,
    owner: str,
    on_step: Callable[[int], None] | None = None,
) -> None:
    """Carry out `plan` (which has no conflicts) on `host`, all or nothing.

    Raises MergeConflict, having undone every step, when a host entry is no longer what
    the plan expects; SandboxError for any other failure, likewise undone. `on_step` is
    called after each step (tests use it to race the merge, or to crash in its middle).
    """
    assert not plan.conflicts
    if not plan.steps:
        return
    staging = STAGING_PREFIX + secrets.token_hex(8)
    os.mkdir(staging, 0o700, dir_fd=host.fd)
    keep = False
    try:
        with host.directory(staging) as staging_fd:
            os.mkdir("new", 0o700, dir_fd=staging_fd)
            os.mkdir("old", 0o700, dir_fd=staging_fd)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            journal = Journal(os.open("journal", flags, 0o600, dir_fd=staging_fd), owner)
        try:
            inodes = _stage(plan, host, layer, staging)
            _apply_steps(plan, host, staging, journal, inodes, on_step)
            journal.commit()
        except BaseException as e:
            failed = _undo(journal.entries, host, staging)
            if failed:
                keep = True
                raise SandboxError(
                    f"the merge failed ({e}) and could not be wholly undone: "
                    f"{'; '.join(failed)}. What was replaced is kept in {staging} of the "
                    "workspace"
                ) from e
            raise
        finally:
            journal.close()
    except _Changed as e:
        raise MergeConflict(
            f"{e.path} changed on the host while the merge ran; nothing was merged",
            paths=[e.path],
        ) from e
    except (OSError, Blocked) as e:
        raise SandboxError(f"the merge failed and was undone, nothing changed: {e}") from e
    finally:
        if not keep:
            _remove_staging(host, staging)


def _stage(plan: Plan, host: Tree, layer: Tree, staging: str) -> dict[int, int]:
    """Make every new file, link and directory in the staging directory, where nothing
    sees them; returns their inode numbers by step."""
    inodes = {}
    with host.directory(f"{staging}/new") as new_fd:
        for index, step in enumerate(plan.steps):
            if step.action != "put":
                continue
            info = layer.lstat(step.path)
            if info is None:
                raise _Changed(step.path)  # the layer changed since the plan
            name = str(index)
            if stat.S_ISLNK(info.st_mode):
                os.symlink(layer.readlink(step.path), name, dir_fd=new_fd)
            elif stat.S_ISDIR(info.st_mode):
                os.mkdir(name, 0o700, dir_fd=new_fd)
                made = os.open(name, DIR_FLAGS, dir_fd=new_fd)
                try:
                    os.fchmod(made, step.mode)
                finally:
                    os.close(made)
            else:
                _copy_in(layer, step.path, new_fd, name, step.mode)
            inodes[index] = os.stat(name, dir_fd=new_fd, follow_symlinks=False).st_ino
    return inodes


def _copy_in(layer: Tree, path: str, directory: int, name: str, mode: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    out = os.open(name, flags, 0o600, dir_fd=directory)
    try:
        with layer.open_file(path) as source:
            while data := os.read(source, CHUNK):
                view = memoryview(data)
                while view:
                    view = view[os.write(out, view) :]
        os.fchmod(out, mode)
    finally:
        os.close(out)


def _apply_steps(
    plan: Plan,
    host: Tree,
    staging: str,
    journal: Journal,
    inodes: dict[int, int],
    on_step: Callable[[int], None] | None,
) -> None:
    with host.directory(f"{staging}/new") as new_fd, host.directory(f"{staging}/old") as old_fd:
        for index, step in enumerate(plan.steps):
            try:
                with host.parent(step.path) as (fd, name):
                    _one_step(step, index, fd, name, new_fd, old_fd, journal, inodes)
            except (Blocked, FileNotFoundError) as e:
                raise _Changed(step.path) from e
            if on_step is not None:
                on_step(index)


def _one_step(
    step: Step,
    index: int,
    fd: int,
    name: str,
    new_fd: int,
    old_fd: int,
    journal: Journal,
    inodes: dict[int, int],
) -> None:
    """One step; each change is journalled just before it is made (an entry whose
    change never happened is recognised, and skipped, when undoing)."""
    try:
        current: Entry | None = Entry.of(os.stat(name, dir_fd=fd, follow_symlinks=False))
    except FileNotFoundError:
        current = None
    if not _as_expected(step.expect, current):
        raise _Changed(step.path)
    if step.action == "chmod":
        assert current is not None
        directory = os.open(name, DIR_FLAGS, dir_fd=fd)
        try:
            journal.note("chmod", step.path, old=current.mode)
            os.fchmod(directory, step.mode)
        finally:
            os.close(directory)
        return
    staged = str(index)
    if current is not None:
        journal.note("backup", step.path, index=index)
        os.rename(name, staged, src_dir_fd=fd, dst_dir_fd=old_fd)
    if step.action == "put":
        journal.note("place", step.path, index=index, inode=inodes[index])
        os.rename(staged, name, src_dir_fd=new_fd, dst_dir_fd=fd)


def _as_expected(expect: Entry | None, current: Entry | None) -> bool:
    if expect is None:
        return current is None
    return expect.unchanged(current) and (expect.kind == "directory" or expect == current)


def _undo(entries: list[dict[str, object]], host: Tree, staging: str) -> list[str]:
    """Undo journal entries, newest first; returns what could not be undone."""
    failed = []
    for entry in reversed(entries):
        path, op = str(entry["path"]), entry["op"]
        try:
            with host.parent(path) as (fd, name):
                try:
                    there: os.stat_result | None = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    there = None
                if op == "place":
                    # Only what this merge placed goes back (an entry journalled just
                    # before a crash may name a step that never happened).
                    if there is not None and there.st_ino == entry["inode"]:
                        with host.directory(f"{staging}/new") as new_fd:
                            os.rename(name, str(entry["index"]), src_dir_fd=fd,
                                      dst_dir_fd=new_fd)  # fmt: skip
                elif op == "backup":
                    with host.directory(f"{staging}/old") as old_fd:
                        backup = str(entry["index"])
                        if _exists(backup, old_fd):
                            if there is not None:
                                raise FileExistsError(errno.EEXIST, "something is in its place")
                            os.rename(backup, name, src_dir_fd=old_fd, dst_dir_fd=fd)
                elif op == "chmod" and there is not None:
                    directory = os.open(name, DIR_FLAGS, dir_fd=fd)
                    try:
                        os.fchmod(directory, int(str(entry["old"])))
                    finally:
                        os.close(directory)
        except (OSError, Blocked) as e:
            failed.append(f"{op} {path}: {e}")
    return failed


def _exists(name: str, directory: int) -> bool:
    try:
        os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _remove_staging(host: Tree, staging: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(staging, dir_fd=host.fd)


# ---------------------------------------------------------------------------- recovery


def recover(host: Tree, is_gone: Callable[[str], bool]) -> list[str]:
    """Finish what crashed merges left in the workspace: undo an unfinished one, remove
    the staging directory of a finished one. `is_gone(owner)` says whether the process
    that wrote a journal has ended (a live one is still merging: left alone).

    Returns one line per staging directory handled, for the log.
    """
    handled = []
    for name in sorted(os.listdir(host.fd)):
        if not name.startswith(STAGING_PREFIX):
            continue
        try:
            lines = host.read(f"{name}/journal").decode().splitlines()
            entries = [json.loads(line) for line in lines if line.strip()]
        except (OSError, Blocked, ValueError):
            entries = []
        owner = str(entries[0].get("owner", "")) if entries else ""
        if entries and not is_gone(owner):
            continue
        if any(e.get("op") == "commit" for e in entries):
            handled.append(f"{name}: the merge had finished; its staging directory is removed")
        else:
            steps = [e for e in entries if e.get("op") not in ("begin", "commit")]
            failed = _undo(steps, host, name)
            if failed:
                # Keep the staging directory: it holds what could not be put back.
                handled.append(f"{name}: undone except {'; '.join(failed)}; kept for repair")
                continue
            handled.append(f"{name}: an interrupted merge of {len(steps)} steps was undone")
        _remove_staging(host, name)
    return handled
