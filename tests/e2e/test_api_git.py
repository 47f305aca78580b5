"""Registering repositories and working their git workspaces through the API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codeforge.runtime import Runtime
from tests.e2e.conftest import Headers
from tests.support.app_client import AppClient
from tests.support.repos import commit_file, git, make_bare_remote, make_repo


async def register(client: AppClient, admin: Headers, name: str, source: Path | str) -> object:
    return await client.post(
        "/api/v1/projects", json={"name": name, "source": str(source)}, headers=admin
    )


def workspaces(runtime: Runtime) -> list[Path]:
    root = runtime.settings.data_path / "workspaces"
    return [p for p in root.glob("*/*")] if root.exists() else []


async def test_a_project_from_a_bare_remote_can_be_pulled_and_checked_out(
    runtime: Runtime, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    remote = make_bare_remote(tmp_path / "remote.git", tmp_path / "upstream")
    created = await register(client, admin, "svc", remote)
    assert created.status_code == 201, created.text
    project_id = created.json()["id"]
    base = f"/api/v1/projects/{project_id}/git"

    status = (await client.get(f"{base}/status", headers=admin)).json()
    assert status["branch"] == "main"
    assert status["clean"] is True
    branches = (await client.get(f"{base}/branches", headers=admin)).json()
    assert {"main", "origin/main"} <= {b["name"] for b in branches}

    new_head = commit_file(tmp_path / "upstream", "app.py", "print('hi')\n")
    git(tmp_path / "upstream", "push", "-q", "origin", "main")
    pulled = await client.post(f"{base}/pull", headers=admin)
    assert pulled.status_code == 201, pulled.text
    assert pulled.json()["after"] == new_head
    assert (await client.get(f"{base}/status", headers=admin)).json()["head"] == new_head

    checkout = await client.post(
        f"{base}/checkout", json={"ref": "feature/x", "create": True}, headers=admin
    )
    assert checkout.status_code == 201, checkout.text
    assert checkout.json()["branch"] == "feature/x"


async def test_checkout_refuses_a_dirty_workspace_and_keeps_the_changes(
    runtime: Runtime, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    source = make_repo(tmp_path / "src", {"a.txt": "one\n"})
    git(source, "branch", "other")
    project_id = (await register(client, admin, "dirty", source)).json()["id"]
    (workspace,) = workspaces(runtime)
    (workspace / "a.txt").write_text("local edit\n")

    refused = await client.post(
        f"/api/v1/projects/{project_id}/git/checkout", json={"ref": "other"}, headers=admin
    )
    assert refused.status_code == 409
    assert "a.txt" in refused.json()["detail"]
    assert (workspace / "a.txt").read_text() == "local edit\n"

    unknown = await client.post(
        f"/api/v1/projects/{project_id}/git/checkout", json={"ref": "nope"}, headers=admin
    )
    assert unknown.status_code in (404, 409)
    injected = await client.post(
        f"/api/v1/projects/{project_id}/git/checkout", json={"ref": "--force"}, headers=admin
    )
    assert injected.status_code == 422


@pytest.mark.parametrize(
    ("source", "status"),
    [
        ("https://127.0.0.1:1/missing.git", 422),
        ("/definitely/not/here", 404),
        ("relative/path", 422),
        ("ext::sh -c touch% /tmp/pwned", 422),
        ("--upload-pack=touch /tmp/pwned", 422),
        ("https://user:hunter2@example.com/repo.git", 422),
    ],
)
async def test_a_bad_source_is_a_clear_4xx_and_leaves_nothing_behind(
    runtime: Runtime, client: AppClient, admin: Headers, source: str, status: int
) -> None:
    response = await register(client, admin, "bad", source)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert "hunter2" not in response.text
    assert (await client.get("/api/v1/projects", headers=admin)).json()["items"] == []
    assert workspaces(runtime) == []


async def test_a_folder_that_is_not_a_repository_is_refused(
    runtime: Runtime, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    response = await register(client, admin, "plain", plain)
    assert response.status_code == 422
    assert "not a git repository" in response.json()["detail"].lower()
    assert workspaces(runtime) == []


async def test_registering_never_touches_the_users_work_tree(
    client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    source = make_repo(tmp_path / "mine")
    (source / "wip.txt").write_text("uncommitted\n")
    before = git(source, "status", "--porcelain"), git(source, "rev-parse", "HEAD")
    assert (await register(client, admin, "mine", source)).status_code == 201
    assert (git(source, "status", "--porcelain"), git(source, "rev-parse", "HEAD")) == before


async def test_two_registrations_of_one_name_at_once_create_one_project(
    runtime: Runtime, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    source = make_repo(tmp_path / "src")
    answers = await asyncio.gather(*(register(client, admin, "twin", source) for _ in range(4)))
    codes = sorted(a.status_code for a in answers)  # type: ignore[attr-defined]
    assert codes.count(201) == 1
    assert all(code == 409 for code in codes if code != 201)
    listed = (await client.get("/api/v1/projects", headers=admin)).json()["items"]
    assert [p["name"] for p in listed] == ["twin"]
    assert len(workspaces(runtime)) == 1


async def test_deleting_a_project_removes_its_workspace(
    runtime: Runtime, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    project_id = (await register(client, admin, "gone", make_repo(tmp_path / "s"))).json()["id"]
    assert len(workspaces(runtime)) == 1
    assert (await client.delete(f"/api/v1/projects/{project_id}", headers=admin)).status_code == 204
    assert workspaces(runtime) == []
    status = await client.get(f"/api/v1/projects/{project_id}/git/status", headers=admin)
    assert status.status_code == 404
