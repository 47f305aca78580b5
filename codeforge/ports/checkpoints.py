"""Checkpoints: the workspace as it was after a step, restorable on any worker.

A checkpoint stores every file that differs from the run's base commit (ARCHITECTURE.md,
"Workspaces and checkpoints"): content-addressed blobs (sha256, stored once however
many checkpoints or runs share them) in PostgreSQL, bound to the event seq it follows.
Restoring one needs only the base commit and the checkpoint — no earlier checkpoint,
no worker's local disk.

`CheckpointStore` contract (one suite runs against every adapter):
- `put_blobs` stores contents by sha256; storing one that exists is a no-op. The sha is
  computed by the caller and checked by the store (a mismatch raises ValidationFailed).
- `save` stores a checkpoint's manifest (path -> sha256 and mode, or `None` for a file
  that the base has and the workspace deleted); every sha must have been put first
  (else ValidationFailed). Ids are unique (a duplicate is a Conflict).
- `latest(run)` is the checkpoint with the highest `after_seq` (None if none);
  `get` and `blob` raise NotFound for an unknown id or sha; all reads are tenant-scoped.
- `prune(run, keep)` deletes all but the run's first checkpoint and its `keep` newest;
  `collect_garbage()` deletes blobs no remaining checkpoint uses. Both return counts.

`CheckpointHook` — what the runtime calls after a tool ran: it receives the run's
workspace, the seq of the event the checkpoint follows, and the paths the tool says it
touched (or `None`, "unknown", after a shell command: the hook scans the workspace), and
returns the checkpoint it made, or None when nothing changed since the last one.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from msgspec import Struct

from codeforge.domain.errors import ValidationFailed

__all__ = [
    "Checkpoint",
    "CheckpointHook",
    "CheckpointStore",
    "FileEntry",
    "RunWorkspace",
    "blobs_of",
    "check_blobs",
    "check_manifest",
]

_SHA256 = re.compile(r"[0-9a-f]{64}")


class FileEntry(Struct, frozen=True, kw_only=True):
    """One path of a checkpoint: its content's sha256 and mode; `sha256=None` is deleted.

    A file the checkpointer would not store (larger than its cap) is listed with
    `skipped` saying why and no sha: a restore leaves such a file as it finds it.
    """

    sha256: str | None
    mode: int = 0o644
    size: int = 0
    skipped: str = ""


class Checkpoint(Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    run_id: uuid.UUID
    after_seq: int
    base_commit: str
    # Every path that differs from the base commit, as it was at this checkpoint.
    files: dict[str, FileEntry]
    # The paths this checkpoint changed compared with the one before it.
    changed: tuple[str, ...] = ()
    created_at: datetime

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files.values())


class RunWorkspace(Struct, frozen=True, kw_only=True):
    """Where a run works: its worktree on this host and the commit it started from."""

    tenant_id: uuid.UUID
    run_id: uuid.UUID
    path: str
    base_commit: str
    branch: str = ""


def check_blobs(blobs: Mapping[str, bytes]) -> None:
    """Every key must be the sha256 (lowercase hex) of its content."""
    for sha, data in blobs.items():
        if hashlib.sha256(data).hexdigest() != sha:
            raise ValidationFailed(f"blob {sha[:16]}… is not the sha256 of its content")


def blobs_of(checkpoint: Checkpoint) -> set[str]:
    return {e.sha256 for e in checkpoint.files.values() if e.sha256 is not None}


def check_manifest(checkpoint: Checkpoint, present: set[str] | None = None) -> list[str]:
    """The shas a checkpoint needs; with `present`, raise unless all are among them."""
    needed = sorted(blobs_of(checkpoint))
    bad = [sha for sha in needed if not _SHA256.fullmatch(sha)]
    if bad:
        raise ValidationFailed(f"not a sha256: {bad[0]!r}")
    if present is not None:
        missing = [sha for sha in needed if sha not in present]
        if missing:
            raise ValidationFailed(
                f"checkpoint {checkpoint.id} refers to {len(missing)} blob(s) never stored, "
                f"e.g. {missing[0]}: put the blobs first"
            )
    return needed


class CheckpointStore(Protocol):
    async def put_blobs(self, blobs: Mapping[str, bytes]) -> None: ...

    async def save(self, checkpoint: Checkpoint) -> None: ...

    async def get(self, tenant_id: uuid.UUID, checkpoint_id: uuid.UUID) -> Checkpoint: ...

    async def latest(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Checkpoint | None: ...

    async def list_for_run(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> list[Checkpoint]:
        """Every checkpoint of the run, in `after_seq` order."""
        ...

    async def blob(self, sha256: str) -> bytes: ...

    async def prune(self, tenant_id: uuid.UUID, run_id: uuid.UUID, keep: int) -> int: ...

    async def collect_garbage(self, limit: int = 10_000) -> int: ...


class CheckpointHook(Protocol):
    async def checkpoint(
        self, workspace: RunWorkspace, after_seq: int, touched: Sequence[str] | None
    ) -> Checkpoint | None: ...

    async def restore(self, workspace: RunWorkspace, checkpoint_id: uuid.UUID) -> list[str]:
        """Make the workspace equal to the checkpoint; returns the paths it changed."""
        ...

    async def reset(self, workspace: RunWorkspace) -> list[str]:
        """Make the workspace equal to its base commit again; returns the paths it changed."""
        ...
