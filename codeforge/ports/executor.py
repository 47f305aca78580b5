"""Executing a run: what a worker hands a run to once it holds the run's lease.

The agent runtime implements it; workers, leases, heartbeats, cancellation and
shutdown are the job mechanism's, so an executor only does the work.

Contract: `execute(run, cancel, journal)` returns the outcome when the work is
done, having appended its events through `journal` (which shares the worker's
seq with its heartbeats). It watches `cancel` and, once it is set (a user
cancelled the run), stops promptly and returns a `cancelled` outcome; `cancel` is
also where approvers' answers to the run's asks arrive (`RunControls.answer`). A worker
shutting down cancels the task running `execute` (asyncio cancellation); the
executor must let that propagate.
Any other exception fails the run with reason `executor_error`.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from msgspec import Struct

from codeforge.domain.events import Event, StoredEvent
from codeforge.domain.runs import Run


class CancelSignal(Protocol):
    """Set once when the run should stop (an `asyncio.Event` is one)."""

    def is_set(self) -> bool: ...

    async def wait(self) -> Any: ...


class ApprovalAnswer(Struct, frozen=True, kw_only=True):
    """An approver's answer to an `ApprovalRequested`, as it reached the worker."""

    allow: bool
    scope: Literal["once", "run"] = "once"
    decided_by: str = ""
    reason: str = ""


class RunControls(CancelSignal, Protocol):
    """The cancel signal, and the answers approvers send for the run's pending asks."""

    async def answer(self, approval_id: str) -> ApprovalAnswer:
        """Wait for the answer to `approval_id` (one that arrived early is kept)."""
        ...


class Outcome(Struct, frozen=True, kw_only=True):
    status: Literal["succeeded", "failed", "cancelled"]
    summary: str = ""
    # For failures: a short machine-readable reason ("budget_exceeded", "stalled", ...).
    reason: str = ""
    artifact: dict[str, Any] = {}


class Journal(Protocol):
    """Appends to the run's log for the worker holding it (`RunJournal`)."""

    @property
    def seq(self) -> int: ...

    async def append(self, *events: Event) -> list[StoredEvent]:
        """Raises a Conflict (`LeaseLost`) once the run is no longer this worker's."""
        ...


class RunExecutor(Protocol):
    async def execute(self, run: Run, cancel: RunControls, journal: Journal) -> Outcome: ...
