"""/api/v1/projects — and the project's git workspace."""

from __future__ import annotations

import uuid

from litestar import Controller
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from codeforge.domain.keys import Principal
from codeforge.domain.projects import Project
from codeforge.http.api.params import (
    Cursor,
    IdempotencyKey,
    Limit,
    Version,
    cursor_id,
    filters,
)
from codeforge.http.api.routes import delete, get, patch, post
from codeforge.http.api.schemas import CheckoutRequest, ListPage, ProjectCreate, ProjectUpdate
from codeforge.ports.vcs import BranchInfo, PullResult, RepoStatus
from codeforge.services.projects import Projects


class ProjectController(Controller):
    path = "/projects"
    tags = ["projects"]

    @post("/", summary="Register a git repository (cloned into a CodeForge workspace)")
    async def create(
        self,
        data: JSONBody[ProjectCreate],
        projects: NamedDependency[Projects],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Project:
        return await projects.create(principal, **data.changes())

    @get("/", summary="List projects")
    async def list_projects(
        self,
        projects: NamedDependency[Projects],
        principal: NamedDependency[Principal],
        limit: Limit = 50,
        cursor: Cursor = None,
        name: FromQuery[str | None] = None,
    ) -> ListPage[Project]:
        page = await projects.list(
            principal, limit=limit, after=cursor_id(cursor), filters=filters(name=name)
        )
        return ListPage(page.items, page.next_cursor)

    @get("/{project_id:uuid}", summary="Get a project")
    async def get_project(
        self,
        project_id: FromPath[uuid.UUID],
        projects: NamedDependency[Projects],
        principal: NamedDependency[Principal],
    ) -> Project:
        return await projects.get(principal, project_id)

    @patch("/{project_id:uuid}", summary="Change a project (send the version you read)")
    async def update(
        self,
        project_id: FromPath[uuid.UUID],
        data: JSONBody[ProjectUpdate],
        projects: NamedDependency[Projects],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> Project:
        return await projects.update(principal, project_id, data.version, data.changes())

    @delete("/{project_id:uuid}", summary="Remove a project and its workspace")
    async def remove(
        self,
        project_id: FromPath[uuid.UUID],
        projects: NamedDependency[Projects],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
        version: Version = None,
    ) -> None:
        await projects.delete(principal, project_id, version)

    @get("/{project_id:uuid}/git/status", summary="The workspace's branch, HEAD and changes")
    async def git_status(
        self,
        project_id: FromPath[uuid.UUID],
        projects: NamedDependency[Projects],
        principal: NamedDependency[Principal],
    ) -> RepoStatus:
        return await projects.git_status(principal, project_id)

    @get("/{project_id:uuid}/git/branches", summary="Local and remote-tracking branches")
    async def git_branches(
        self,
        project_id: FromPath[uuid.UUID],
        projects: NamedDependency[Projects],
        principal: NamedDependency[Principal],
    ) -> list[BranchInfo]:
        return await projects.git_branches(principal, project_id)

    @post("/{project_id:uuid}/git/pull", summary="Fast-forward the workspace from its source")
    async def git_pull(
        self,
        project_id: FromPath[uuid.UUID],
        projects: NamedDependency[Projects],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> PullResult:
        return await projects.git_pull(principal, project_id)

    @post("/{project_id:uuid}/git/checkout", summary="Check out a branch, tag or commit")
    async def git_checkout(
        self,
        project_id: FromPath[uuid.UUID],
        data: JSONBody[CheckoutRequest],
        projects: NamedDependency[Projects],
        principal: NamedDependency[Principal],
        idempotency_key: IdempotencyKey,
    ) -> RepoStatus:
        return await projects.git_checkout(principal, project_id, data.ref, create=data.create)
