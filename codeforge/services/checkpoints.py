"""Checkpoints of a run's worktree, stored as content-addressed blobs (any worker restores them).

How a checkpoint is made (`BlobCheckpointer.checkpoint`): git stages the worktree
into a scratch index of the run's own (never the worktree's index), re-staging only
the paths a tool says it touched, or everything after a shell command; `diff-index`
against the base commit then lists every path that differs, with git's blob ids.
Only contents not seen at the previous checkpoint are read and stored (sha256,
deduplicated by the store). Git records symbolic links as links and never follows
them, so a link an agent points at a host file stores the link, not the file.

Restore writes every file of the checkpoint and puts every other path that differs
from base back as base has it (or removes it), so the worktree equals the
checkpoint exactly — untracked files included, ignored files left alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Sequence
from pathlib import Path

import structlog

from codeforge.domain.ids import new_id
from codeforge.ports.checkpoints import Checkpoint, CheckpointStore, FileEntry, RunWorkspace
from codeforge.ports.errors import PortError
from codeforge.ports.vcs import SnapshotEntry
from codeforge.services.background import Background
from codeforge.services.clock import Clock, utc_now
from codeforge.services.git_work import GitRunner

log = structlog.get_logger("codeforge.checkpoints")

SYMLINK_MODE = 0o120000
# Files above this are not read at all (their size alone puts them over any cap).
_READ_CAP = 1 << 30
SUBMODULE_MODE = 0o160000


class BlobCheckpointer:
    """`CheckpointHook` over a git scratch index and a `CheckpointStore`.

    Bounded: a file larger than `max_file_bytes` is listed but not stored (`skipped`;
    a restore leaves it alone), generated files are never staged (the git adapter's
    rule), and a run keeps its first checkpoint and its `keep_per_run` newest — older
    ones are pruned, and blobs no checkpoint uses any more are collected by
    `collect_garbage` (the janitor, `CheckpointJanitor`).
    """

    def __init__(
        self,
        store: CheckpointStore,
        git: GitRunner,
        scratch_dir: Path,
        *,
        max_file_bytes: int = 10 * 1024 * 1024,
        keep_per_run: int = 200,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._git = git
        self._scratch = scratch_dir
        self._max_file = max_file_bytes
        self._keep = keep_per_run
        self._clock = clock
        # The newest checkpoint of each run this process made, so the next one need
        # not read it back; the store is asked when a run resumes elsewhere.
        self._last: dict[uuid.UUID, Checkpoint] = {}
        self._made: dict[uuid.UUID, int] = {}
        self._trees: dict[tuple[uuid.UUID, str], dict[str, tuple[int, str]]] = {}

    async def checkpoint(
        self, workspace: RunWorkspace, after_seq: int, touched: Sequence[str] | None
    ) -> Checkpoint | None:
        previous = self._last.get(workspace.run_id) or await self._store.latest(
            workspace.tenant_id, workspace.run_id
        )
        before = previous.files if previous else {}
        files: dict[str, FileEntry]
        if touched is None:
            entries = await self._git.snapshot(
                workspace.path, workspace.base_commit, index_file=self._index_of(workspace)
            )
            files = {}
            blobs = await self._entries(workspace, entries, files)
        else:
            # Only the touched paths are looked at — read here and compared with the base
            # tree's object ids, no git process on the hot path; the rest is as it was.
            named = set(touched)
            files = {p: e for p, e in before.items() if p not in named}
            base = await self._base_tree(workspace)
            blobs = await asyncio.to_thread(
                _read_touched, Path(workspace.path), sorted(named), base, files, self._max_file
            )
        changed = tuple(
            sorted(p for p in set(files) | set(before) if files.get(p) != before.get(p))
        )
        if not changed:
            return None
        previous_shas = {e.sha256 for e in before.values()}
        await self._store.put_blobs({s: d for s, d in blobs.items() if s not in previous_shas})
        made = Checkpoint(
            id=new_id(),
            tenant_id=workspace.tenant_id,
            run_id=workspace.run_id,
            after_seq=after_seq,
            base_commit=workspace.base_commit,
            files=files,
            changed=changed,
            created_at=self._clock(),
        )
        await self._store.save(made)
        self._last[workspace.run_id] = made
        await self._prune(workspace)
        return made

    async def _entries(
        self,
        workspace: RunWorkspace,
        entries: Sequence[SnapshotEntry],
        files: dict[str, FileEntry],
    ) -> dict[str, bytes]:
        """Add what the snapshot found to `files`; the contents to store, by sha256."""
        # Git's blob id identifies content as well as sha256 does; read what is new.
        known = [e for e in entries if e.mode != SUBMODULE_MODE]
        # What git just staged is what is on disk: its size decides, without reading it.
        sizes = await asyncio.to_thread(_sizes, Path(workspace.path), known)
        small = sorted(
            {e.blob for e in known if e.blob is not None and sizes[e.path] <= self._max_file}
        )
        contents = await self._git.read_objects(workspace.path, small)
        blobs: dict[str, bytes] = {}
        for entry in known:
            if entry.blob is None:
                files[entry.path] = FileEntry(sha256=None, mode=0)
                continue
            size = sizes[entry.path]
            if size > self._max_file:
                why = f"larger than {self._max_file} bytes"
                files[entry.path] = FileEntry(sha256=None, mode=entry.mode, size=size, skipped=why)
                continue
            data = contents.get(entry.blob)
            if data is None:
                continue  # vanished between staging and reading: the next scan sees it
            sha = hashlib.sha256(data).hexdigest()
            files[entry.path] = FileEntry(sha256=sha, mode=entry.mode, size=len(data))
            blobs[sha] = data
        return blobs

    async def _base_tree(self, workspace: RunWorkspace) -> dict[str, tuple[int, str]]:
        key = (workspace.run_id, workspace.base_commit)
        if key not in self._trees:
            self._trees.clear()  # one run at a time per worker is the common case
            self._trees[key] = await self._git.list_tree(workspace.path, workspace.base_commit)
        return self._trees[key]

    async def _prune(self, workspace: RunWorkspace) -> None:
        made = self._made[workspace.run_id] = self._made.get(workspace.run_id, 0) + 1
        # Every tenth checkpoint past the bound (a delete per checkpoint would be waste).
        if made > self._keep and made % 10 == 0:
            await self._store.prune(workspace.tenant_id, workspace.run_id, self._keep)

    async def restore(self, workspace: RunWorkspace, checkpoint_id: uuid.UUID) -> list[str]:
        target = await self._store.get(workspace.tenant_id, checkpoint_id)
        return await self._make_equal(workspace, target.files, target)

    async def reset(self, workspace: RunWorkspace) -> list[str]:
        return await self._make_equal(workspace, {}, None)

    async def _make_equal(
        self, workspace: RunWorkspace, files: dict[str, FileEntry], target: Checkpoint | None
    ) -> list[str]:
        current = await self._git.snapshot(
            workspace.path, workspace.base_commit, index_file=self._index_of(workspace)
        )
        to_base = [e.path for e in current if e.path not in files]
        skipped = {p for p, e in files.items() if e.skipped}
        base_contents = await self._git.read_objects(
            workspace.path, [f"{workspace.base_commit}:{p}" for p in to_base]
        )
        root = Path(workspace.path)
        changed: list[str] = []
        for path in to_base:
            data = base_contents.get(f"{workspace.base_commit}:{path}")
            await asyncio.to_thread(_put, root, path, data, None)
            changed.append(path)
        for path, entry in files.items():
            if path in skipped:
                continue  # never stored: left as it is
            data = None if entry.sha256 is None else await self._store.blob(entry.sha256)
            await asyncio.to_thread(_put, root, path, data, entry.mode)
            changed.append(path)
        if target is not None:
            self._last[workspace.run_id] = target
        else:
            self._last.pop(workspace.run_id, None)
        # Files were rewritten behind git's back, maybe within the second it last looked
        # and at the same size: make git read those again instead of trusting its stat cache.
        await self._git.snapshot(
            workspace.path,
            workspace.base_commit,
            index_file=self._index_of(workspace),
            paths=sorted(set(changed)),
        )
        log.info("checkpoint restored", run_id=str(workspace.run_id), paths=len(changed))
        return sorted(set(changed))

    def forget(self, run_id: uuid.UUID) -> None:
        """Drop what this process remembers of a run (it ended here)."""
        self._last.pop(run_id, None)

    def _index_of(self, workspace: RunWorkspace) -> Path:
        return self._scratch / f"{workspace.run_id}.index"


def _read_touched(
    root: Path,
    paths: list[str],
    base: dict[str, tuple[int, str]],
    files: dict[str, FileEntry],
    max_file: int,
) -> dict[str, bytes]:
    """Put each touched path's entry in `files` (or drop it where it equals the base);
    the contents to store, by sha256. Links are read as links, never followed; a path
    under a linked folder is left to the next full scan (git does not track such paths)."""
    blobs: dict[str, bytes] = {}
    for path in paths:
        found = _read_no_follow(root, path)
        if isinstance(found, str):
            continue  # beyond a link
        in_base = base.get(path)
        if found is None:
            if in_base is not None:
                files[path] = FileEntry(sha256=None, mode=0)
            continue
        mode, data, size = found
        if in_base is not None and in_base == (mode, _object_id(data, len(in_base[1]))):
            continue  # back to the base's content: not a difference any more
        if size > max_file:
            files[path] = FileEntry(
                sha256=None, mode=mode, size=size, skipped=f"larger than {max_file} bytes"
            )
            continue
        sha = hashlib.sha256(data).hexdigest()
        files[path] = FileEntry(sha256=sha, mode=mode, size=size)
        blobs[sha] = data
    return blobs


def _object_id(data: bytes, id_length: int) -> str:
    """Git's id of a blob with `data` (SHA-1, or SHA-256 in a repository that uses it)."""
    digest = hashlib.sha256 if id_length == 64 else hashlib.sha1
    return digest(b"blob %d\0" % len(data) + data).hexdigest()


def _read_no_follow(root: Path, relative: str) -> tuple[int, bytes, int] | str | None:
    """(git mode, content, size) of a workspace path read without following any link on
    the way; None when it does not exist; "beyond a link" when a folder on the way is one."""
    parts = Path(relative).parts
    if not parts or any(p in ("", ".", "..") for p in parts) or Path(relative).is_absolute():
        return "beyond a link"
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, flags | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            try:
                child = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            except FileNotFoundError:
                return None
            except (NotADirectoryError, OSError):
                return "beyond a link"  # a link (O_NOFOLLOW refuses it) or not a folder
            os.close(fd)
            fd = child
        try:
            info = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(parts[-1], dir_fd=fd).encode("utf-8", "surrogateescape")
            return SYMLINK_MODE, target, len(target)
        if not stat.S_ISREG(info.st_mode):
            return None  # a folder or a special file: nothing git would store here
        mode = 0o100755 if info.st_mode & stat.S_IXUSR else 0o100644
        if info.st_size > _READ_CAP:
            return mode, b"", info.st_size
        file_fd = os.open(parts[-1], flags, dir_fd=fd)
        with os.fdopen(file_fd, "rb") as f:
            data = f.read()
        return mode, data, len(data)
    finally:
        os.close(fd)


def _sizes(root: Path, entries: Sequence[SnapshotEntry]) -> dict[str, int]:
    """Each staged path's size on disk (a link's own size; 0 when it vanished since)."""
    found = {}
    for entry in entries:
        try:
            found[entry.path] = os.lstat(root / entry.path).st_size
        except OSError:
            found[entry.path] = 0
    return found


def _put(root: Path, relative: str, data: bytes | None, mode: int | None) -> None:
    """Make `root/relative` hold `data` (None: absent), never following a link on the way."""
    parts = Path(relative).parts
    if not parts or any(p in ("", ".", "..") for p in parts) or Path(relative).is_absolute():
        raise ValueError(f"not a workspace path: {relative!r}")
    parent = root
    for part in parts[:-1]:
        parent = parent / part
        info = os.lstat(parent) if os.path.lexists(parent) else None
        if info is not None and not stat.S_ISDIR(info.st_mode):
            if data is None:
                return  # nothing below a non-directory to delete
            os.unlink(parent)  # a file or link where a directory must be
            info = None
        if info is None:
            os.mkdir(parent)
    path = parent / parts[-1]
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        if data is None:
            return  # a directory git lists by its files: they are handled one by one
        shutil.rmtree(path)  # a directory where the checkpoint has a file
    if data is None:
        return
    if mode == SYMLINK_MODE:
        os.symlink(data.decode("utf-8", "surrogateescape"), path)
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o755 if mode == 0o100755 else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class CheckpointJanitor:
    """Collects checkpoint blobs that no checkpoint uses any more (pruned ones'), now and
    then, in every process (a delete is idempotent, so several janitors do no harm)."""

    def __init__(self, store: CheckpointStore, *, interval: float = 3600.0) -> None:
        self._store = store
        self._interval = interval
        self._loop = Background("checkpoint janitor", self._run)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                collected = await self._store.collect_garbage()
            except PortError as e:
                log.warning("checkpoint garbage collection failed", error=str(e))
                continue
            if collected:
                log.info("checkpoint blobs collected", blobs=collected)
