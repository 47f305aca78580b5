"""The CodeGraphStore contract, run against every adapter (memory, PostgreSQL).

The graph is the real one of the polyglot repository, built by the engine.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from psycopg_pool import AsyncConnectionPool

from adapters.memory.code_graph import MemoryCodeGraphStore
from adapters.postgres.code_graph import PostgresCodeGraphStore
from codeforge.context.engine import ContextEngine
from codeforge.domain.code_graph import GraphData
from codeforge.domain.errors import ValidationFailed
from codeforge.ports.code_graph import CodeGraphStore
from tests.support.polyglot import write_polyglot

pytestmark = pytest.mark.contract

NewProject = Callable[[], Awaitable[uuid.UUID]]


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> GraphData:
    root = tmp_path_factory.mktemp("graph")
    engine = ContextEngine(root / "cache")
    snapshot = engine.snapshot(write_polyglot(root / "repo"))
    return engine.graph_data(snapshot)


def pairs(hits: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(h.path, h.name) for h in hits]


class CodeGraphStoreContract:
    @pytest.fixture
    def store(self) -> CodeGraphStore:
        raise NotImplementedError

    @pytest.fixture
    def new_project(self) -> NewProject:
        raise NotImplementedError

    async def test_a_project_has_no_graph_until_one_is_stored(
        self, store: CodeGraphStore, new_project: NewProject
    ) -> None:
        project = await new_project()
        assert await store.fingerprint(project) is None
        assert await store.callers(project, "make_widget", 10) == []
        assert await store.neighbourhood(project, "make_widget", 2, 10) == []

    async def test_callers_and_callees_come_most_used_first(
        self, store: CodeGraphStore, new_project: NewProject, graph: GraphData
    ) -> None:
        project = await new_project()
        await store.replace(uuid.uuid4(), project, "fp-1", graph)
        assert await store.fingerprint(project) == "fp-1"
        assert pairs(await store.callers(project, "py/widgets.py:make_widget", 10)) == [
            ("py/app.py", "<module>"),
            ("py/app.py", "main_entry"),
        ]
        callees = await store.callees(project, "py/app.py:main_entry", 10)
        assert pairs(callees) == [  # tied on uses: by path, then line
            ("py/widgets.py", "render_widget"),
            ("py/widgets.py", "make_widget"),
        ]
        assert all(h.uses == 1 and h.line >= 1 for h in callees)
        everywhere = pairs(await store.callers(project, "makeWidget", 50))
        assert ("js/app.js", "mainEntry") in everywhere
        assert ("ts/app.ts", "mainEntry") in everywhere
        assert pairs(await store.callers(project, "makeWidget", 2)) == everywhere[:2]

    async def test_importers_of_a_file_are_listed_by_path(
        self, store: CodeGraphStore, new_project: NewProject, graph: GraphData
    ) -> None:
        project = await new_project()
        await store.replace(uuid.uuid4(), project, "fp", graph)
        assert pairs(await store.importers(project, "c/widgets.h", 10)) == [
            ("c/app.c", ""),
            ("c/widgets.c", ""),
        ]
        assert await store.importers(project, "nowhere.py", 10) == []

    async def test_the_neighbourhood_is_nearest_first_within_hops_and_limit(
        self, store: CodeGraphStore, new_project: NewProject, graph: GraphData
    ) -> None:
        project = await new_project()
        await store.replace(uuid.uuid4(), project, "fp", graph)
        one = await store.neighbourhood(project, "py/widgets.py:make_widget", 1, 50)
        assert {h.hops for h in one} == {1}
        assert ("py/app.py", "main_entry") in pairs(one)
        assert ("py/widgets.py", "make_widget") not in pairs(one)
        two = await store.neighbourhood(project, "py/widgets.py:make_widget", 2, 50)
        assert set(pairs(one)) < set(pairs(two))
        assert [h.hops for h in two] == sorted(h.hops for h in two)
        assert await store.neighbourhood(project, "py/widgets.py:make_widget", 2, 2) == two[:2]
        by_file = await store.neighbourhood(project, "py/app.py", 1, 50)
        assert ("py/widgets.py", "<module>") in pairs(by_file)  # through the import

    async def test_replace_swaps_the_whole_graph(
        self, store: CodeGraphStore, new_project: NewProject, graph: GraphData
    ) -> None:
        project = await new_project()
        await store.replace(uuid.uuid4(), project, "old", graph)
        smaller = GraphData(graph.paths, graph.symbols, [], [])
        await asyncio.gather(
            store.replace(uuid.uuid4(), project, "a", smaller),
            store.replace(uuid.uuid4(), project, "b", smaller),
        )
        assert await store.fingerprint(project) in {"a", "b"}
        assert await store.callers(project, "make_widget", 10) == []

    async def test_graphs_of_two_projects_are_apart(
        self, store: CodeGraphStore, new_project: NewProject, graph: GraphData
    ) -> None:
        first, second = await new_project(), await new_project()
        await store.replace(uuid.uuid4(), first, "fp", graph)
        assert await store.callers(second, "make_widget", 10) == []

    async def test_limits_out_of_range_are_refused(
        self, store: CodeGraphStore, new_project: NewProject
    ) -> None:
        project = await new_project()
        with pytest.raises(ValidationFailed):
            await store.callers(project, "x", 0)
        with pytest.raises(ValidationFailed):
            await store.neighbourhood(project, "x", 9, 10)


class TestMemoryCodeGraphStore(CodeGraphStoreContract):
    @pytest.fixture
    def store(self) -> CodeGraphStore:
        return MemoryCodeGraphStore()

    @pytest.fixture
    def new_project(self) -> NewProject:
        async def make() -> uuid.UUID:
            return uuid.uuid4()

        return make


@pytest.mark.integration
class TestPostgresCodeGraphStore(CodeGraphStoreContract):
    @pytest.fixture
    def store(self, pg_pool: AsyncConnectionPool) -> CodeGraphStore:
        return PostgresCodeGraphStore(pg_pool)

    @pytest.fixture
    def new_project(self, pg_pool: AsyncConnectionPool) -> NewProject:
        async def make() -> uuid.UUID:
            project_id = uuid.uuid4()
            now = datetime.now(UTC)
            async with pg_pool.connection() as conn:
                await conn.execute(
                    "INSERT INTO projects (id, tenant_id, name, source, source_kind,"
                    " created_at, updated_at) VALUES (%s, %s, %s, '/x', 'path', %s, %s)",
                    (project_id, uuid.uuid4(), f"p-{project_id.hex[:8]}", now, now),
                )
            return project_id

        return make

    async def test_a_deleted_project_takes_its_graph_with_it(
        self,
        store: CodeGraphStore,
        new_project: NewProject,
        graph: GraphData,
        pg_pool: AsyncConnectionPool,
    ) -> None:
        project = await new_project()
        await store.replace(uuid.uuid4(), project, "fp", graph)
        async with pg_pool.connection() as conn:
            await conn.execute("DELETE FROM projects WHERE id = %s", (project,))
            cursor = await conn.execute(
                "SELECT count(*) FROM code_symbols WHERE project_id = %s", (project,)
            )
            assert (await cursor.fetchone()) == (0,)
