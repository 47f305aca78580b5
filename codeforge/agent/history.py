"""A run's past, as the runtime continues from it: its log, its lineage, its rewinds.

- A **fork** (`RunRequested.forked_from`, `fork_seq`) has the source run's past up to
  that event as its own beginning — recursively, so a fork of a fork works.
- A **rewind** (`RunRewound(to_seq)`) drops what the run did after `to_seq` from its
  past: the conversation and the checkpoints (lifecycle events and the record of the
  rewind itself stay). It is *pending* until the worktree was put back
  (`CheckpointRestored` or `WorkspaceRolledBack` after it).

Everything here is a pure function of stored events, plus reading the source run's
log for forks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from codeforge.domain.events import (
    CheckpointCreated,
    CheckpointRestored,
    RunRequested,
    RunRewound,
    StoredEvent,
    WorkspaceRolledBack,
)
from codeforge.ports.events import EventStore

# What a rewind takes back: the conversation, and the files' history.
REWINDABLE = frozenset(
    {
        "ModelResponded", "ToolCallRequested", "PolicyDecided", "ToolCallCompleted",
        "AgentNudged", "ContextCompacted", "CheckpointCreated", "CheckpointRestored",
        "QualityGatesChecked", "ApprovalRequested", "ApprovalDecided", "WorkspaceRolledBack",
        "ReplayDiverged",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Past:
    origin: RunRequested
    # The run's effective past, oldest first: a fork's source events first, rewinds applied.
    events: list[StoredEvent]
    pending_rewind: RunRewound | None = None


async def load_past(store: EventStore, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Past:
    own = await store.load(tenant_id, run_id)
    origin = own[0].event
    if not isinstance(origin, RunRequested):
        raise ValueError(f"run {run_id}'s log does not begin with RunRequested")
    inherited: list[StoredEvent] = []
    if origin.forked_from is not None and origin.fork_seq is not None:
        source = await load_past(store, tenant_id, origin.forked_from)
        inherited = [
            e
            for e in source.events
            if e.run_id != origin.forked_from or _within(e, origin.fork_seq)
        ]
    kept, pending = _apply_rewinds(own)
    return Past(origin=origin, events=inherited + kept, pending_rewind=pending)


def _apply_rewinds(own: list[StoredEvent]) -> tuple[list[StoredEvent], RunRewound | None]:
    kept: list[StoredEvent] = []
    pending: RunRewound | None = None
    for stored in own:
        event = stored.event
        if isinstance(event, RunRewound):
            kept = [e for e in kept if _within(e, event.to_seq) or e.type not in REWINDABLE]
            pending = event
        elif isinstance(event, CheckpointRestored | WorkspaceRolledBack):
            pending = None
        kept.append(stored)
    return kept, pending


def _within(stored: StoredEvent, seq: int) -> bool:
    """Whether the event belongs to the run's past as of `seq`: written by then, or the
    checkpoint of the state right after it (written just after, bound to it)."""
    event = stored.event
    if isinstance(event, CheckpointCreated):
        return event.after_seq <= seq
    return stored.seq <= seq
