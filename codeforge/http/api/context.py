"""/api/v1/projects/{id}/repomap, /search, /grep, /context-pack, /graph — code intelligence."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from codeforge.context.grep import GrepResults
from codeforge.context.pack import ContextPack, SearchResults
from codeforge.context.projects import GraphQuery, ProjectContext
from codeforge.context.repomap import RepoMap
from codeforge.domain.code_graph import GraphHit
from codeforge.domain.keys import Principal
from codeforge.http.api.routes import get

Tokens = Annotated[int, QueryParameter(ge=1, le=200_000, description="Token budget (1-200000).")]
Focus = Annotated[
    list[str] | None,
    QueryParameter(description="Files (paths in the project) or symbols to rank around."),
]
Query = Annotated[str, QueryParameter(min_length=1, max_length=2000, description="The query.")]
TaskText = Annotated[
    str, QueryParameter(max_length=2000, description="Task text: names in it are boosted.")
]
Pattern = Annotated[
    str, QueryParameter(min_length=1, max_length=500, description="An extended regex.")
]
Results = Annotated[int, QueryParameter(ge=1, le=200, description="Results at most (1-200).")]
GraphResults = Annotated[int, QueryParameter(ge=1, le=500, description="Results at most (1-500).")]
Hops = Annotated[int, QueryParameter(ge=1, le=5, description="With neighbours: how far (1-5).")]
Spec = Annotated[
    str,
    QueryParameter(
        min_length=1,
        max_length=500,
        description="A symbol (`name` or `path:name`) or, for importers, a file's path.",
    ),
]


class ContextController(Controller):
    path = "/projects/{project_id:uuid}"
    tags = ["code intelligence"]

    @get("/repomap", summary="The workspace's most relevant signatures, ranked, within a budget")
    async def repomap(
        self,
        project_id: FromPath[uuid.UUID],
        context: NamedDependency[ProjectContext],
        principal: NamedDependency[Principal],
        tokens: Tokens = 1024,
        focus: Focus = None,
        task: TaskText = "",
    ) -> RepoMap:
        return await context.repo_map(
            principal, project_id, tokens=tokens, focus=focus or [], query=task
        )

    @get("/search", summary="Hybrid code search: keyword, semantic, repo map and graph, fused")
    async def search(
        self,
        project_id: FromPath[uuid.UUID],
        context: NamedDependency[ProjectContext],
        principal: NamedDependency[Principal],
        q: Query,
        limit: Results = 20,
    ) -> SearchResults:
        return await context.search(principal, project_id, q, limit=limit)

    @get("/grep", summary="Lines matching a regular expression, within a strict budget")
    async def grep(
        self,
        project_id: FromPath[uuid.UUID],
        context: NamedDependency[ProjectContext],
        principal: NamedDependency[Principal],
        pattern: Pattern,
        limit: Results = 50,
        fixed: FromQuery[bool] = False,
        ignore_case: FromQuery[bool] = False,
    ) -> GrepResults:
        return await context.grep(
            principal, project_id, pattern, limit=limit, fixed=fixed, ignore_case=ignore_case
        )

    @get("/context-pack", summary="The best code for a query, with its text, within a budget")
    async def context_pack(
        self,
        project_id: FromPath[uuid.UUID],
        context: NamedDependency[ProjectContext],
        principal: NamedDependency[Principal],
        q: Query,
        tokens: Tokens = 4000,
        focus: Focus = None,
    ) -> ContextPack:
        return await context.context_pack(
            principal, project_id, q, token_budget=tokens, focus=focus or []
        )

    @get("/graph", summary="Callers, callees, importers or neighbours in the code graph")
    async def graph(
        self,
        project_id: FromPath[uuid.UUID],
        context: NamedDependency[ProjectContext],
        principal: NamedDependency[Principal],
        kind: FromQuery[GraphQuery],
        symbol: Spec,
        hops: Hops = 2,
        limit: GraphResults = 50,
    ) -> list[GraphHit]:
        return await context.graph(principal, project_id, kind, symbol, hops=hops, limit=limit)
