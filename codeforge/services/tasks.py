"""Tasks: what to do, in which project, and how to know it is done."""

from __future__ import annotations

import uuid
from typing import Any

from codeforge.domain.errors import ValidationFailed
from codeforge.domain.ids import new_id
from codeforge.domain.keys import Principal
from codeforge.domain.tasks import Task, TaskStatus
from codeforge.ports.events import FeedNotice, RunEventFeed
from codeforge.ports.stores import ProjectStore, TaskStore
from codeforge.services.catalog import Catalog
from codeforge.services.clock import Clock, utc_now

MAX_PROMPT = 100_000


class Tasks(Catalog[Task]):
    def __init__(
        self,
        store: TaskStore,
        projects: ProjectStore,
        feed: RunEventFeed | None = None,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(store, clock)
        self._projects = projects
        # Status changes go to the tenant's live feed, for dashboards.
        self._feed = feed

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

    def check_update(self, current: Task, changes: dict[str, Any]) -> None:
        if "status" in changes:
            changes["status"] = TaskStatus(changes["status"])
        _validate(
            title=changes.get("title", current.title), prompt=changes.get("prompt", current.prompt)
        )

    async def after_update(self, before: Task, after: Task) -> None:
        if after.status is not before.status and self._feed is not None:
            await self._feed.publish(
                FeedNotice(
                    tenant_id=after.tenant_id,
                    kind="status",
                    entity="task",
                    entity_id=after.id,
                    status=after.status.value,
                )
            )


def _validate(*, title: str, prompt: str) -> None:
    if not title.strip() or len(title) > 200:
        raise ValidationFailed("a title is 1-200 characters", field="title")
    if not prompt.strip():
        raise ValidationFailed("the prompt must say what to do", field="prompt")
    if len(prompt) > MAX_PROMPT:
        raise ValidationFailed(f"the prompt is longer than {MAX_PROMPT} characters", field="prompt")
