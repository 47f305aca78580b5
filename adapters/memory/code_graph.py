"""Code graphs in memory: the engine's own `CodeGraph` answers the queries.

Implements `codeforge.ports.code_graph.CodeGraphStore` (its docstring is the contract).
"""

from __future__ import annotations

import uuid

from codeforge.context.graph import CodeGraph
from codeforge.domain.code_graph import GraphData, GraphHit
from codeforge.ports.code_graph import check_graph_limit


class MemoryCodeGraphStore:
    def __init__(self) -> None:
        self._graphs: dict[uuid.UUID, tuple[str, CodeGraph]] = {}

    async def fingerprint(self, project_id: uuid.UUID) -> str | None:
        held = self._graphs.get(project_id)
        return held[0] if held else None

    async def replace(
        self, tenant_id: uuid.UUID, project_id: uuid.UUID, fingerprint: str, data: GraphData
    ) -> None:
        self._graphs[project_id] = (fingerprint, CodeGraph(data))

    def _graph(self, project_id: uuid.UUID) -> CodeGraph | None:
        held = self._graphs.get(project_id)
        return held[1] if held else None

    async def callers(self, project_id: uuid.UUID, spec: str, limit: int) -> list[GraphHit]:
        check_graph_limit(limit)
        graph = self._graph(project_id)
        return graph.callers(spec, limit) if graph else []

    async def callees(self, project_id: uuid.UUID, spec: str, limit: int) -> list[GraphHit]:
        check_graph_limit(limit)
        graph = self._graph(project_id)
        return graph.callees(spec, limit) if graph else []

    async def importers(self, project_id: uuid.UUID, path: str, limit: int) -> list[GraphHit]:
        check_graph_limit(limit)
        graph = self._graph(project_id)
        return graph.importers(path, limit) if graph else []

    async def neighbourhood(
        self, project_id: uuid.UUID, spec: str, hops: int, limit: int
    ) -> list[GraphHit]:
        check_graph_limit(limit, hops)
        graph = self._graph(project_id)
        return graph.neighbourhood([spec], hops, limit) if graph else []
