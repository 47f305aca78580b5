"""Tasks: what to do, in which project, and how to know it is done."""

from __future__ import annotations

import uuid
from typing import Any

from codeforge.domain.errors import ValidationFailed
from codeforge.domain.ids import new_id
from codeforge.domain.keys import Principal
from codeforge.domain.tasks import Task, TaskStatus
from codeforge.ports.events import FeedNotice, RunEventFeed
from codeforge.ports.stores import Page, ProjectStore, TaskStore
from codeforge.services.clock import Clock, utc_now

MAX_PROMPT = 100_000


class Tasks:
    def __init__(
        self,
        store: TaskStore,
        projects: ProjectStore,
        feed: RunEventFeed | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._projects = projects
        # Status changes go to the tenant's live feed, for dashboards.
        self._feed = feed
        self._clock = clock

    async def create(
        self,
        principal: Principal,
        *,
        project_id: uuid.UUID,
        title: str,
        prompt: str,
        acceptance_criteria: list[str] | None = None,
    ) -> Task:
        principal.require_mutation()
        # The project must exist for this tenant; NotFound otherwise.
        await self._projects.get(principal.tenant_id, project_id)
        _validate(title=title, prompt=prompt)
        now = self._clock()
        return await self._store.add(
            Task(
                id=new_id(),
                tenant_id=principal.tenant_id,
                project_id=project_id,
                title=title.strip(),
                prompt=prompt,
                acceptance_criteria=list(acceptance_criteria or []),
                created_at=now,
                updated_at=now,
            )
        )

    async def get(self, principal: Principal, task_id: uuid.UUID) -> Task:
        return await self._store.get(principal.tenant_id, task_id)

    async def list(
        self,
        principal: Principal,
        *,
        limit: int,
        after: uuid.UUID | None,
        filters: dict[str, str],
    ) -> Page[Task]:
        return await self._store.list(
            principal.tenant_id, limit=limit, after=after, filters=filters
        )

    async def update(
        self, principal: Principal, task_id: uuid.UUID, version: int, changes: dict[str, Any]
    ) -> Task:
        principal.require_mutation()
        task = await self._store.get(principal.tenant_id, task_id)
        if "status" in changes:
            changes["status"] = TaskStatus(changes["status"])
        _validate(title=changes.get("title", task.title), prompt=changes.get("prompt", task.prompt))
        updated = await self._store.update(task.evolve(self._clock(), version=version, **changes))
        if updated.status is not task.status and self._feed is not None:
            await self._feed.publish(
                FeedNotice(
                    tenant_id=updated.tenant_id,
                    kind="status",
                    entity="task",
                    entity_id=updated.id,
                    status=updated.status.value,
                )
            )
        return updated

    async def delete(self, principal: Principal, task_id: uuid.UUID, version: int | None) -> None:
        principal.require_mutation()
        await self._store.delete(principal.tenant_id, task_id, version)


def _validate(*, title: str, prompt: str) -> None:
    if not title.strip() or len(title) > 200:
        raise ValidationFailed("a title is 1-200 characters", field="title")
    if not prompt.strip():
        raise ValidationFailed("the prompt must say what to do", field="prompt")
    if len(prompt) > MAX_PROMPT:
        raise ValidationFailed(f"the prompt is longer than {MAX_PROMPT} characters", field="prompt")
