"""Commands: what one part of CodeForge asks another to do, through the queue.

Imperative, frozen, and versioned like events: a message may sit in a queue
across a deploy, so new fields always get defaults.
"""

from __future__ import annotations

import uuid
from typing import Literal

from msgspec import Struct


class StartRun(Struct, frozen=True, kw_only=True):
    """Take the run (with a lease) and execute it. Published by the outbox relay."""

    run_id: uuid.UUID
    tenant_id: uuid.UUID


class ControlRun(Struct, frozen=True, kw_only=True):
    """A decision for the worker holding a run's lease: cancel or suspend (pause) it, or
    answer an approval."""

    run_id: uuid.UUID
    tenant_id: uuid.UUID
    action: Literal["cancel", "approve", "deny", "suspend"]
    approval_id: str | None = None
    reason: str = ""
    # For approvals: this call only, or calls the same rule asks about for the rest of the run.
    scope: Literal["once", "run"] = "once"
    # Who decided (an API key id), for the audit trail.
    decided_by: str = ""
