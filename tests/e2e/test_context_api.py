"""Code intelligence through the HTTP API, on a registered project's workspace."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codeforge.domain.keys import Role
from codeforge.runtime import Runtime
from tests.e2e.conftest import Headers, MakeKey
from tests.support.app_client import AppClient
from tests.support.polyglot import write_polyglot


@pytest.fixture
async def project(client: AppClient, admin: Headers, tmp_path: Path) -> str:
    repo = write_polyglot(tmp_path / "polyglot")
    created = await client.post(
        "/api/v1/projects", json={"name": "poly", "source": str(repo)}, headers=admin
    )
    assert created.status_code == 201, created.text
    project_id: str = created.json()["id"]
    return project_id


async def test_the_repo_map_of_a_project_fits_its_budget_and_honours_the_focus(
    client: AppClient, admin: Headers, project: str
) -> None:
    base = f"/api/v1/projects/{project}"
    response = await client.get(
        f"{base}/repomap", params={"tokens": 300, "focus": ["py/app.py"]}, headers=admin
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert 0 < body["tokens"] <= 300
    assert body["budget"] == 300
    assert body["focus_files"] == ["py/app.py"]
    assert body["files"][0]["path"] == "py/widgets.py"
    assert "def make_widget(name):" in body["text"]
    assert {"name", "kind", "line", "end_line", "signature", "rank"} <= set(
        body["files"][0]["symbols"][0]
    )


async def test_search_grep_and_context_packs_answer_from_the_workspace(
    client: AppClient, admin: Headers, project: str
) -> None:
    base = f"/api/v1/projects/{project}"
    found = await client.get(
        f"{base}/search", params={"q": "render widget", "limit": 5}, headers=admin
    )
    assert found.status_code == 200, found.text
    body = found.json()
    assert len(body["hits"]) == 5
    assert "keyword" in body["signals"]
    assert any("widget" in h["symbol"].lower() for h in body["hits"])
    # The [embeddings] extra is installed for the tests: the first request may answer
    # before the model has embedded the project (and says so); later ones fuse it.
    deadline = asyncio.get_running_loop().time() + 120
    while "semantic" not in body["signals"]:
        assert "semantic index is being built" in body["notices"][0]
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.5)
        body = (
            await client.get(f"{base}/search", params={"q": "render widget"}, headers=admin)
        ).json()
    assert body["notices"] == []

    grep = await client.get(
        f"{base}/grep", params={"pattern": "make_?[wW]idget", "limit": 2}, headers=admin
    )
    assert grep.status_code == 200, grep.text
    assert len(grep.json()["matches"]) == 2
    assert grep.json()["truncated"] is True

    pack = await client.get(
        f"{base}/context-pack", params={"q": "make a widget", "tokens": 200}, headers=admin
    )
    assert pack.status_code == 200, pack.text
    assert 0 < pack.json()["tokens"] <= 200
    assert pack.json()["items"][0]["text"]


async def test_graph_queries_come_from_the_stored_graph(
    client: AppClient, admin: Headers, project: str, runtime: Runtime
) -> None:
    base = f"/api/v1/projects/{project}/graph"
    callers = await client.get(
        base, params={"kind": "callers", "symbol": "py/widgets.py:make_widget"}, headers=admin
    )
    assert callers.status_code == 200, callers.text
    assert [(h["path"], h["name"]) for h in callers.json()] == [
        ("py/app.py", "<module>"),
        ("py/app.py", "main_entry"),
    ]
    importers = await client.get(
        base, params={"kind": "importers", "symbol": "c/widgets.h"}, headers=admin
    )
    assert [h["path"] for h in importers.json()] == ["c/app.c", "c/widgets.c"]
    near = await client.get(
        base,
        params={"kind": "neighbours", "symbol": "py/app.py:main_entry", "hops": 1},
        headers=admin,
    )
    assert {h["hops"] for h in near.json()} == {1}
    pool = await runtime.container.db_pool()
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM code_edges WHERE project_id = %s", (project,)
        )
        row = await cursor.fetchone()
    assert row is not None
    assert row[0] > 0


async def test_bad_parameters_and_unknown_projects_are_clear_errors(
    client: AppClient, admin: Headers, project: str, make_key: MakeKey
) -> None:
    base = f"/api/v1/projects/{project}"
    assert (
        await client.get(f"{base}/repomap", params={"tokens": 0}, headers=admin)
    ).status_code == 400
    assert (await client.get(f"{base}/search", headers=admin)).status_code == 400
    bad = await client.get(f"{base}/grep", params={"pattern": "(unclosed"}, headers=admin)
    assert bad.status_code == 422
    assert "search failed" in bad.json()["detail"]
    unknown = await client.get(
        "/api/v1/projects/00000000-0000-0000-0000-000000000001/repomap", headers=admin
    )
    assert unknown.status_code == 404
    other_tenant = await make_key(Role.ADMIN, tenant="elsewhere")
    assert (await client.get(f"{base}/repomap", headers=other_tenant)).status_code == 404
    viewer = await make_key(Role.VIEWER)
    assert (await client.get(f"{base}/repomap", headers=viewer)).status_code == 200
