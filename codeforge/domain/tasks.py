"""Tasks: what a user wants done in a project."""

from __future__ import annotations

import uuid
from enum import StrEnum

from codeforge.domain.entity import Entity


class TaskStatus(StrEnum):
    OPEN = "open"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Task(Entity, frozen=True, kw_only=True):
    project_id: uuid.UUID
    title: str
    prompt: str
    acceptance_criteria: list[str] = []
    status: TaskStatus = TaskStatus.OPEN
