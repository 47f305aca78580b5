"""Code intelligence over a project's workspace: what the API serves.

The project is looked up in the caller's tenant first (another tenant's project is
"not found"), then the engine works on its workspace clone. Graph queries go to the
`CodeGraphStore` (PostgreSQL when served), which is rebuilt from the engine whenever
the workspace's file-set fingerprint differs from the stored one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from codeforge.context.engine import ContextEngine
from codeforge.context.grep import GrepResults
from codeforge.context.pack import ContextPack, SearchResults
from codeforge.context.repomap import RepoMap
from codeforge.domain.code_graph import GraphHit
from codeforge.domain.errors import NotFound
from codeforge.domain.keys import Principal
from codeforge.ports.code_graph import CodeGraphStore, check_graph_limit
from codeforge.services.projects import Projects

GraphQuery = Literal["callers", "callees", "importers", "neighbours"]


class ProjectContext:
    def __init__(
        self,
        projects: Projects,
        engine: ContextEngine,
        graphs: CodeGraphStore,
        *,
        vector_wait: float = 5.0,
    ) -> None:
        self._projects = projects
        self._engine = engine
        self._graphs = graphs
        # A request waits this long for a project's first semantic index, then answers
        # without it (saying so) while the index is finished in the background.
        self._vector_wait = vector_wait

    async def _workspace(self, principal: Principal, project_id: uuid.UUID) -> Path:
        project = await self._projects.get(principal, project_id)
        workspace = self._projects.workspace(project)
        if not await asyncio.to_thread(workspace.is_dir):
            raise NotFound(
                f"the workspace of project {project.name!r} is missing; "
                "delete and register the project again"
            )
        return workspace

    async def repo_map(
        self,
        principal: Principal,
        project_id: uuid.UUID,
        *,
        tokens: int,
        focus: Sequence[str] = (),
        query: str = "",
    ) -> RepoMap:
        workspace = await self._workspace(principal, project_id)
        return await asyncio.to_thread(
            self._engine.repo_map, workspace, tokens=tokens, focus=focus, query=query
        )

    async def search(
        self, principal: Principal, project_id: uuid.UUID, query: str, *, limit: int
    ) -> SearchResults:
        workspace = await self._workspace(principal, project_id)
        return await self._engine.search(
            workspace, query, limit=limit, wait_for_vectors=self._vector_wait
        )

    async def grep(
        self,
        principal: Principal,
        project_id: uuid.UUID,
        pattern: str,
        *,
        limit: int,
        fixed: bool = False,
        ignore_case: bool = False,
    ) -> GrepResults:
        workspace = await self._workspace(principal, project_id)
        return await asyncio.to_thread(
            self._engine.grep, workspace, pattern, limit=limit, fixed=fixed, ignore_case=ignore_case
        )

    async def context_pack(
        self,
        principal: Principal,
        project_id: uuid.UUID,
        query: str,
        *,
        token_budget: int,
        focus: Sequence[str] = (),
    ) -> ContextPack:
        workspace = await self._workspace(principal, project_id)
        return await self._engine.context_pack(
            workspace,
            query,
            focus=focus,
            token_budget=token_budget,
            wait_for_vectors=self._vector_wait,
        )

    async def graph(
        self,
        principal: Principal,
        project_id: uuid.UUID,
        query: GraphQuery,
        spec: str,
        *,
        hops: int = 2,
        limit: int = 50,
    ) -> list[GraphHit]:
        check_graph_limit(limit, hops)
        workspace = await self._workspace(principal, project_id)
        snapshot = await asyncio.to_thread(self._engine.snapshot, workspace)
        if await self._graphs.fingerprint(project_id) != snapshot.fingerprint:
            data = await asyncio.to_thread(self._engine.graph_data, snapshot)
            await self._graphs.replace(principal.tenant_id, project_id, snapshot.fingerprint, data)
        match query:
            case "callers":
                return await self._graphs.callers(project_id, spec, limit)
            case "callees":
                return await self._graphs.callees(project_id, spec, limit)
            case "importers":
                return await self._graphs.importers(project_id, spec, limit)
            case "neighbours":
                return await self._graphs.neighbourhood(project_id, spec, hops, limit)
