"""A requested run in a store, as `POST /api/v1/runs` would leave it (tests that need
any run at all, not one of a real project)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Protocol

from codeforge.domain.events import RunRequested, StoredEvent
from codeforge.domain.ids import new_id
from codeforge.domain.runs import Run
from codeforge.ports.events import EventContext, OutboxMessage


class RunCreator(Protocol):
    """An event store, or what wraps one (`EventLog`, `CachingEventStore`)."""

    async def create_run(
        self, run: Run, requested: RunRequested, outbox: OutboxMessage, context: EventContext
    ) -> StoredEvent: ...


async def create_run(store: RunCreator, tenant: uuid.UUID) -> Run:
    """A new run of `tenant` in `store`, at seq 1 (its `RunRequested`)."""
    requested = RunRequested(
        project_id=new_id(), task_id=new_id(), agent_id=new_id(), mode="mount", deliver="patch"
    )
    run = Run.requested(new_id(), tenant, requested, datetime.now(UTC))
    outbox = OutboxMessage(id=new_id(), subject="runs.start", payload={"run_id": str(run.id)})
    await store.create_run(run, requested, outbox, EventContext(tenant_id=tenant))
    return run
