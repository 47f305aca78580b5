"""Every queue subject CodeForge uses, with its payload type and delivery mode."""

from __future__ import annotations

import uuid

from codeforge.domain.commands import ControlRun, StartRun
from codeforge.domain.ids import new_id
from codeforge.ports.events import OutboxMessage
from codeforge.ports.queue import SubjectRegistry

START_RUN = "runs.start"
CONTROL_RUN = "runs.control.*"


def control_subject(run_id: object) -> str:
    """The fan-out subject of one run's control messages (cancel, approvals)."""
    return f"runs.control.{run_id}"


def start_job(
    run_id: uuid.UUID, tenant_id: uuid.UUID, request_id: str | None = None
) -> OutboxMessage:
    """The outbox message that (re)queues a run for a worker: written with the event that
    makes the run wait (`RunRequested`, `RunSuspended`), so it is never lost."""
    return OutboxMessage(
        id=new_id(),
        subject=START_RUN,
        payload={"run_id": str(run_id), "tenant_id": str(tenant_id)},
        headers={"X-Request-ID": request_id} if request_id else {},
    )


def subject_registry() -> SubjectRegistry:
    registry = SubjectRegistry()
    registry.register(START_RUN, StartRun, mode="work_queue")
    registry.register(CONTROL_RUN, ControlRun, mode="fan_out")
    return registry
