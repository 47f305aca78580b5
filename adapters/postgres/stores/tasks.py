"""Tasks in PostgreSQL (table `tasks`, migration 0002)."""

from __future__ import annotations

from adapters.postgres.stores.base import PostgresEntityStore
from codeforge.domain.tasks import Task


class PostgresTaskStore(PostgresEntityStore[Task]):
    """Implements `codeforge.ports.stores.TaskStore`."""

    entity_type = Task
    table = "tasks"
    noun = "task"
    filters = {"project_id": "project_id", "status": "status"}
