"""CRUD of projects, tasks, agents and models through the HTTP API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from codeforge.runtime import Runtime
from tests.e2e.conftest import Headers
from tests.support.app_client import AppClient
from tests.support.repos import make_repo

MODEL = {
    "name": "gpt-test",
    "base_url": "http://127.0.0.1:9/v1",
    "input_price_per_mtok": "2.5",
    "output_price_per_mtok": "10",
}


async def post_ok(client: AppClient, path: str, body: dict[str, Any], h: Headers) -> Any:
    response = await client.post(path, json=body, headers=h)
    assert response.status_code == 201, response.text
    return response.json()


async def project(client: AppClient, admin: Headers, tmp_path: Path, name: str = "demo") -> Any:
    source = make_repo(tmp_path / f"src-{name}")
    return await post_ok(client, "/api/v1/projects", {"name": name, "source": str(source)}, admin)


async def test_a_model_round_trips_with_exact_prices(client: AppClient, admin: Headers) -> None:
    created = await post_ok(client, "/api/v1/models", MODEL, admin)
    assert created["input_price_per_mtok"] == "2.5"
    assert created["model"] == "gpt-test"  # defaults to the name
    assert created["source"] == "api"
    assert created["version"] == 1
    fetched = (await client.get(f"/api/v1/models/{created['id']}", headers=admin)).json()
    assert fetched == created


async def test_updates_need_the_current_version_and_bump_it(
    client: AppClient, admin: Headers
) -> None:
    model = await post_ok(client, "/api/v1/models", MODEL, admin)
    url = f"/api/v1/models/{model['id']}"
    updated = await client.patch(url, json={"version": 1, "context_window": 8000}, headers=admin)
    assert updated.status_code == 200
    assert updated.json()["version"] == 2
    assert updated.json()["context_window"] == 8000

    stale = await client.patch(url, json={"version": 1, "context_window": 9000}, headers=admin)
    assert stale.status_code == 409
    assert "changed by someone else" in stale.json()["detail"]
    assert (await client.get(url, headers=admin)).json()["context_window"] == 8000


async def test_concurrent_updates_from_one_version_let_exactly_one_win(
    client: AppClient, admin: Headers
) -> None:
    model = await post_ok(client, "/api/v1/models", MODEL, admin)
    url = f"/api/v1/models/{model['id']}"
    answers = await asyncio.gather(
        *(
            client.patch(url, json={"version": 1, "context_window": 1000 + i}, headers=admin)
            for i in range(10)
        )
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] + [409] * 9


async def test_unknown_fields_and_wrong_types_are_400_naming_the_field(
    client: AppClient, admin: Headers
) -> None:
    unknown = await client.post("/api/v1/models", json={**MODEL, "temprature": 1}, headers=admin)
    assert unknown.status_code == 400
    assert "temprature" in unknown.json()["detail"]

    wrong = await client.post(
        "/api/v1/models", json={**MODEL, "context_window": "big"}, headers=admin
    )
    assert wrong.status_code == 400
    assert "context_window" in wrong.json()["detail"]

    not_json = await client.post(
        "/api/v1/models", content=b"{nope", headers={**admin, "content-type": "application/json"}
    )
    assert not_json.status_code == 400


async def test_rule_violations_are_422_naming_the_field(client: AppClient, admin: Headers) -> None:
    bad_url = await client.post(
        "/api/v1/models", json={**MODEL, "base_url": "ftp://x"}, headers=admin
    )
    assert bad_url.status_code == 422
    assert bad_url.json()["errors"][0]["field"] == "base_url"

    no_model = await client.post(
        "/api/v1/agents", json={"name": "coder", "model": "unregistered"}, headers=admin
    )
    assert no_model.status_code == 422
    assert "unregistered" in no_model.json()["detail"]


async def test_duplicate_names_are_409(client: AppClient, admin: Headers) -> None:
    await post_ok(client, "/api/v1/models", MODEL, admin)
    again = await client.post("/api/v1/models", json=MODEL, headers=admin)
    assert again.status_code == 409
    assert again.json()["errors"][0]["field"] == "name"


async def test_lists_page_with_a_cursor_and_filter(client: AppClient, admin: Headers) -> None:
    for i in range(5):
        await post_ok(client, "/api/v1/models", {**MODEL, "name": f"m{i}"}, admin)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/models", params=params, headers=admin)).json()
        seen += [m["name"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"m{i}" for i in range(5)]

    only = (await client.get("/api/v1/models", params={"name": "m3"}, headers=admin)).json()
    assert [m["name"] for m in only["items"]] == ["m3"]
    bad = await client.get("/api/v1/models", params={"cursor": "garbage"}, headers=admin)
    assert bad.status_code == 422
    too_many = await client.get("/api/v1/models", params={"limit": 5000}, headers=admin)
    assert too_many.status_code == 400


async def test_config_models_are_read_only_through_the_api(
    runtime: Runtime, client: AppClient, admin: Headers
) -> None:
    from codeforge.settings import ModelSettings

    await runtime.services.models.load_from_config(
        [ModelSettings(name="from-config", base_url="http://127.0.0.1:9/v1")]
    )
    listed = await client.get("/api/v1/models", params={"source": "config"}, headers=admin)
    (model,) = listed.json()["items"]
    assert model["name"] == "from-config"
    url = f"/api/v1/models/{model['id']}"
    change = await client.patch(
        url, json={"version": model["version"], "context_window": 5}, headers=admin
    )
    assert change.status_code == 403
    assert "config" in change.json()["detail"]
    assert (await client.delete(url, headers=admin)).status_code == 403


async def test_agents_tasks_and_projects_work_end_to_end(
    client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    await post_ok(client, "/api/v1/models", MODEL, admin)
    agent = await post_ok(
        client,
        "/api/v1/agents",
        {"name": "coder", "model": "gpt-test", "limits": {"max_steps": 30}},
        admin,
    )
    assert agent["limits"]["max_steps"] == 30
    proj = await project(client, admin, tmp_path)
    assert proj["default_branch"] == "main"
    assert proj["source_kind"] == "path"
    task = await post_ok(
        client,
        "/api/v1/tasks",
        {
            "project_id": proj["id"],
            "title": "Add a health check",
            "prompt": "Add GET /health returning 200.",
            "acceptance_criteria": ["pytest passes"],
        },
        admin,
    )
    assert task["status"] == "open"
    by_project = await client.get("/api/v1/tasks", params={"project_id": proj["id"]}, headers=admin)
    assert [t["id"] for t in by_project.json()["items"]] == [task["id"]]

    done = await client.patch(
        f"/api/v1/tasks/{task['id']}", json={"version": 1, "status": "done"}, headers=admin
    )
    assert done.json()["status"] == "done"
    bad_status = await client.patch(
        f"/api/v1/tasks/{task['id']}", json={"version": 2, "status": "finished"}, headers=admin
    )
    assert bad_status.status_code in (400, 422)

    orphan = await client.post(
        "/api/v1/tasks",
        json={"project_id": agent["id"], "title": "x", "prompt": "y"},
        headers=admin,
    )
    assert orphan.status_code == 404

    removed = await client.delete(f"/api/v1/tasks/{task['id']}", headers=admin)
    assert removed.status_code == 204
    assert (await client.get(f"/api/v1/tasks/{task['id']}", headers=admin)).status_code == 404


async def test_deleting_with_a_stale_version_is_409(client: AppClient, admin: Headers) -> None:
    model = await post_ok(client, "/api/v1/models", MODEL, admin)
    url = f"/api/v1/models/{model['id']}"
    await client.patch(url, json={"version": 1, "context_window": 10}, headers=admin)
    stale = await client.delete(url, params={"version": 1}, headers=admin)
    assert stale.status_code == 409
    assert (await client.delete(url, params={"version": 2}, headers=admin)).status_code == 204
