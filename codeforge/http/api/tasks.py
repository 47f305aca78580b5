"""/api/v1/tasks"""

from __future__ import annotations

import uuid

from litestar import Controller
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from codeforge.domain.keys import Principal
from codeforge.domain.tasks import Task, TaskStatus
from codeforge.http.api.params import Cursor, IdempotencyKey, Limit, Version, cursor_id, filters
from codeforge.http.api.routes import delete, get, patch, post
from codeforge.http.api.schemas import EventList, ListPage, TaskCreate, TaskUpdate
from codeforge.http.api.views import event_list
from codeforge.services.runs import Runs
from codeforge.services.tasks import Tasks


class TaskController(Controller):
    path = "/tasks"
    tags = ["tasks"]

    @post("/", summary="Create a task in a project")
    async def create(
        self,
        data: JSONBody[TaskCreate],
        tasks: NamedDependency[Tasks],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Task:
        return await tasks.create(principal, **data.changes())

    @get("/", summary="List tasks")
    async def list_tasks(
        self,
        tasks: NamedDependency[Tasks],
        principal: NamedDependency[Principal],
        limit: Limit = 50,
        cursor: Cursor = None,
        project_id: FromQuery[uuid.UUID | None] = None,
        status: FromQuery[TaskStatus | None] = None,
    ) -> ListPage[Task]:
        page = await tasks.list(
            principal,
            limit=limit,
            after=cursor_id(cursor),
            filters=filters(project_id=project_id, status=status),
        )
        return ListPage(page.items, page.next_cursor)

    @get("/{task_id:uuid}", summary="Get a task")
    async def get_task(
        self,
        task_id: FromPath[uuid.UUID],
        tasks: NamedDependency[Tasks],
        principal: NamedDependency[Principal],
    ) -> Task:
        return await tasks.get(principal, task_id)

    @patch("/{task_id:uuid}", summary="Change a task (send the version you read)")
    async def update(
        self,
        task_id: FromPath[uuid.UUID],
        data: JSONBody[TaskUpdate],
        tasks: NamedDependency[Tasks],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Task:
        return await tasks.update(principal, task_id, data.version, data.changes())

    @delete("/{task_id:uuid}", summary="Delete a task")
    async def remove(
        self,
        task_id: FromPath[uuid.UUID],
        tasks: NamedDependency[Tasks],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
        version: Version = None,
    ) -> None:
        await tasks.delete(principal, task_id, version)

    @get("/{task_id:uuid}/events", summary="Events of every run of the task, in stored order")
    async def events(
        self,
        task_id: FromPath[uuid.UUID],
        runs: NamedDependency[Runs],
        principal: NamedDependency[Principal],
        after: FromQuery[int] = 0,
        limit: Limit = 200,
    ) -> EventList:
        stored = await runs.task_events(principal, task_id, after=after, limit=limit)
        return event_list(stored, by_position=True)
