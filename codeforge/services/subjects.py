"""Every queue subject CodeForge uses, with its payload type and delivery mode."""

from __future__ import annotations

from codeforge.domain.commands import ControlRun, StartRun
from codeforge.ports.queue import SubjectRegistry

START_RUN = "runs.start"
CONTROL_RUN = "runs.control.*"


def control_subject(run_id: object) -> str:
    """The fan-out subject of one run's control messages (cancel, approvals)."""
    return f"runs.control.{run_id}"


def subject_registry() -> SubjectRegistry:
    registry = SubjectRegistry()
    registry.register(START_RUN, StartRun, mode="work_queue")
    registry.register(CONTROL_RUN, ControlRun, mode="fan_out")
    return registry
