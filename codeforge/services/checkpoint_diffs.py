"""What a run's checkpoints changed, as unified diffs a person can read.

A checkpoint holds every file that differs from the run's base commit (a path it does
not list is as the base has it; a path listed without content was deleted). So the
content of any path at any checkpoint is the checkpoint's blob, or nothing, or the
base commit's — read from the project's clone on this host. Two views:

- `against="previous"`: what this checkpoint's step changed (the paths it lists as
  `changed`, from the checkpoint before it, or from the base for the first);
- `against="base"`: everything the run had changed by then (the diff a patch made at
  that moment would show).

Text files get a unified diff (`a/<path>`, `b/<path>`, three lines of context);
files that are not UTF-8 text are reported as binary with their sizes. Large
contents are cut, and the diff says so: this is for reading, the patch artifact is
for applying. A file the checkpointer listed without storing it (over its size cap)
is reported with the reason and no diff.

Older checkpoints of a long run are pruned (its first and newest are kept): "previous"
then means the previous checkpoint still stored, and the diff covers every step since
it; asking for a pruned checkpoint is NotFound, saying so.
"""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal

from msgspec import Struct

from codeforge.domain.errors import NotFound
from codeforge.domain.keys import Principal
from codeforge.ports.checkpoints import Checkpoint, CheckpointStore
from codeforge.ports.events import EventStore

Against = Literal["previous", "base"]
Change = Literal["added", "modified", "deleted"]
# (tenant, project, commit, paths) -> {path: content} for the paths the commit has;
# None when the project's clone is not on this host.
BaseFiles = Callable[[uuid.UUID, uuid.UUID, str, list[str]], Awaitable[dict[str, bytes] | None]]

MAX_FILE_BYTES = 512 * 1024
MAX_DIFF_CHARS = 200_000


class FileDiff(Struct, frozen=True, kw_only=True):
    path: str
    change: Change
    binary: bool = False
    old_size: int = 0
    new_size: int = 0
    # The unified diff ("" for binary files); cut at MAX_DIFF_CHARS when `truncated`.
    diff: str = ""
    truncated: bool = False
    # Why the content is unknown: the checkpointer listed the file without storing it.
    skipped: str = ""


class CheckpointDiff(Struct, frozen=True, kw_only=True):
    run_id: uuid.UUID
    checkpoint_id: uuid.UUID
    after_seq: int
    against: Against
    # The checkpoint compared with; None: the base commit.
    previous_id: uuid.UUID | None = None
    files: list[FileDiff]
    # False when the base commit's files could not be read on this host (the project's
    # clone is elsewhere): paths the run did not create then show as added.
    base_available: bool = True

    @property
    def added_lines(self) -> int:
        return sum(_count(f.diff, "+") for f in self.files)

    @property
    def removed_lines(self) -> int:
        return sum(_count(f.diff, "-") for f in self.files)


class CheckpointDiffs:
    def __init__(self, events: EventStore, store: CheckpointStore, base_files: BaseFiles) -> None:
        self._events = events
        self._store = store
        self._base_files = base_files

    async def checkpoints(self, principal: Principal, run_id: uuid.UUID) -> list[Checkpoint]:
        """The run's checkpoints in `after_seq` order (NotFound for a run not in the tenant)."""
        await self._events.get_run(principal.tenant_id, run_id)
        return await self._store.list_for_run(principal.tenant_id, run_id)

    async def diff(
        self,
        principal: Principal,
        run_id: uuid.UUID,
        checkpoint_id: uuid.UUID,
        against: Against = "previous",
    ) -> CheckpointDiff:
        run = await self._events.get_run(principal.tenant_id, run_id)
        checkpoints = await self._store.list_for_run(principal.tenant_id, run_id)
        index = next((i for i, c in enumerate(checkpoints) if c.id == checkpoint_id), None)
        if index is None:
            raise NotFound(
                f"checkpoint {checkpoint_id} of run {run_id} is not stored (never made, or "
                "pruned: a run keeps its first and its newest checkpoints)"
            )
        target = checkpoints[index]
        before = checkpoints[index - 1] if against == "previous" and index > 0 else None
        return await self._compare(run.project_id, target, before, against)

    async def latest(self, principal: Principal, run_id: uuid.UUID) -> CheckpointDiff | None:
        """Everything the run has changed so far (its newest checkpoint against the base)."""
        run = await self._events.get_run(principal.tenant_id, run_id)
        newest = await self._store.latest(principal.tenant_id, run_id)
        if newest is None:
            return None
        return await self._compare(run.project_id, newest, None, "base")

    async def _compare(
        self,
        project_id: uuid.UUID,
        target: Checkpoint,
        before: Checkpoint | None,
        against: Against,
    ) -> CheckpointDiff:
        # A path neither lists is as the base has it on both sides; one listed alike on
        # both did not change between them.
        earlier = before.files if before else {}
        paths = sorted(
            p for p in set(target.files) | set(earlier) if target.files.get(p) != earlier.get(p)
        )
        # The base is needed for every path one side does not hold itself.
        from_base = [p for p in paths if p not in target.files or p not in earlier]
        base = (
            await self._base_files(target.tenant_id, project_id, target.base_commit, from_base)
            if from_base
            else {}
        )
        files = []
        for path in paths:
            skipped = _skipped(target, path) or _skipped(before, path)
            if skipped:
                had = (
                    earlier[path].sha256 is not None or bool(earlier[path].skipped)
                    if (path in earlier)
                    else path in (base or {})
                )
                files.append(_unknown(path, target, skipped, existed=had))
                continue
            old = await self._content(before, path, base or {})
            new = await self._content(target, path, base or {})
            if old != new:
                files.append(_file_diff(path, old, new))
        return CheckpointDiff(
            run_id=target.run_id,
            checkpoint_id=target.id,
            after_seq=target.after_seq,
            against=against,
            previous_id=before.id if before else None,
            files=files,
            base_available=base is not None,
        )

    async def _content(
        self, checkpoint: Checkpoint | None, path: str, base: dict[str, bytes]
    ) -> bytes | None:
        entry = checkpoint.files.get(path) if checkpoint else None
        if entry is None:
            return base.get(path)
        if entry.sha256 is None:
            return None
        return await self._store.blob(entry.sha256)


def _skipped(checkpoint: Checkpoint | None, path: str) -> str:
    entry = checkpoint.files.get(path) if checkpoint else None
    return entry.skipped if entry is not None else ""


def _unknown(path: str, target: Checkpoint, why: str, *, existed: bool) -> FileDiff:
    entry = target.files.get(path)
    gone = entry is not None and entry.sha256 is None and not entry.skipped
    change: Change = "deleted" if gone else "modified" if existed else "added"
    return FileDiff(path=path, change=change, new_size=entry.size if entry else 0, skipped=why)


def _file_diff(path: str, old: bytes | None, new: bytes | None) -> FileDiff:
    change: Change = "added" if old is None else "deleted" if new is None else "modified"
    old_size, new_size = len(old or b""), len(new or b"")
    old_text, new_text = _text(old), _text(new)
    if old_text is None or new_text is None:
        return FileDiff(path=path, change=change, binary=True, old_size=old_size, new_size=new_size)
    lines = difflib.unified_diff(
        old_text.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile="/dev/null" if old is None else f"a/{path}",
        tofile="/dev/null" if new is None else f"b/{path}",
        n=3,
    )
    text = "".join(_ended(lines))
    truncated = len(text) > MAX_DIFF_CHARS or max(old_size, new_size) > MAX_FILE_BYTES
    return FileDiff(
        path=path,
        change=change,
        old_size=old_size,
        new_size=new_size,
        diff=text[:MAX_DIFF_CHARS],
        truncated=truncated,
    )


def _text(content: bytes | None) -> str | None:
    """The content as text ("" for none), or None for binary content."""
    if content is None:
        return ""
    head = content[:MAX_FILE_BYTES]
    if b"\0" in head[:8192]:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut at the size cap
            return None
        return head[: e.start].decode("utf-8")


def _ended(lines: Iterable[str]) -> Iterable[str]:
    for line in lines:
        if line.endswith("\n"):
            yield line
        else:
            yield line + "\n\\ No newline at end of file\n"


def _count(diff: str, sign: str) -> int:
    return sum(
        1
        for line in diff.splitlines()
        if line.startswith(sign) and not line.startswith(("+++ ", "--- "))
    )
