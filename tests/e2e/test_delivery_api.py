"""Configuring delivery through the API: projects' git hosts, and the checks a run request
passes before any money is spent (`deliver: branch` needs a remote, `pr` a git host).

No worker runs here (the `runtime` fixture): these are the API's answers.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from codeforge.runtime import Runtime
from tests.e2e.conftest import Headers
from tests.support.app_client import AppClient
from tests.support.repos import make_repo

MODEL = {"name": "gpt-test", "base_url": "http://127.0.0.1:9/v1"}
HOST = {"kind": "github", "repository": "acme/app", "token_secret": "github_token"}


async def post(client: AppClient, admin: Headers, path: str, body: Any) -> Any:
    response = await client.post(path, json=body, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


def bare(tmp_path: Path, name: str = "remote.git") -> Path:
    work = make_repo(tmp_path / f"{name}-seed", {"README.md": "hi\n"})
    target = tmp_path / name
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(target)], check=True)
    return target


async def task_in(
    client: AppClient, admin: Headers, source: Path | str, **project: Any
) -> dict[str, str]:
    agents = (await client.get("/api/v1/agents", headers=admin)).json()["items"]
    if not agents:
        await post(client, admin, "/api/v1/models", MODEL)
        agents = [await post(client, admin, "/api/v1/agents", {"name": "a", "model": "gpt-test"})]
    name = f"p{len((await client.get('/api/v1/projects', headers=admin)).json()['items'])}"
    created = await post(
        client, admin, "/api/v1/projects", {"name": name, "source": str(source), **project}
    )
    task = await post(
        client, admin, "/api/v1/tasks", {"project_id": created["id"], "title": "t", "prompt": "p"}
    )
    return {"task_id": task["id"], "agent_id": agents[0]["id"], "project_id": created["id"]}


async def test_a_project_keeps_its_git_host_and_can_change_or_drop_it(
    client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    ids = await task_in(client, admin, bare(tmp_path), git_host=HOST)
    url = f"/api/v1/projects/{ids['project_id']}"

    project = (await client.get(url, headers=admin)).json()
    assert project["git_host"] == {
        "kind": "github",
        "repository": "acme/app",
        "token_secret": "GITHUB_TOKEN",  # secret names are canonical (upper case)
        "api_url": "",
        "draft": True,
    }
    gitlab = {
        "kind": "gitlab",
        "repository": "group/sub/app",
        "token_secret": "GL",
        "api_url": "https://gitlab.example.com/api/v4",
        "draft": False,
    }
    changed = await client.patch(
        url, json={"version": project["version"], "git_host": gitlab}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["git_host"] == gitlab
    dropped = await client.patch(
        url, json={"version": changed.json()["version"], "git_host": None}, headers=admin
    )
    assert dropped.json()["git_host"] is None


async def test_a_git_host_that_cannot_work_is_refused_saying_what_to_change(
    client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    source = bare(tmp_path)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**HOST, "repository": "just-a-name"}, 422, "owner/name"),
        ({**HOST, "repository": "a/../b"}, 422, "owner/name"),
        ({**HOST, "kind": "gitlab", "repository": "x"}, 422, "group/project"),
        ({**HOST, "kind": "gitea"}, 422, "api_url is required for gitea"),
        ({**HOST, "api_url": "https://user:pw@ghe.example/api/v3"}, 422, "credentials"),
        ({**HOST, "api_url": "ftp://ghe.example"}, 422, "http(s) URL"),
        ({**HOST, "api_url": "https://ghe.example/api?x=1"}, 422, "http(s) URL"),
        ({**HOST, "token_secret": "not a name!"}, 422, "invalid secret name"),
        ({**HOST, "kind": "bitbucket"}, 400, "kind"),
        ({**HOST, "token": "ghp_inline"}, 400, "token"),
    ]
    for n, (host, status, said) in enumerate(cases):
        response = await client.post(
            "/api/v1/projects",
            json={"name": f"bad{n}", "source": str(source), "git_host": host},
            headers=admin,
        )
        assert response.status_code == status, (host, response.text)
        assert said in response.text, (host, response.text)
    assert (await client.get("/api/v1/projects", headers=admin)).json()["items"] == []


async def test_a_pr_run_without_a_git_host_is_refused_with_how_to_set_one(
    client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    ids = await task_in(client, admin, bare(tmp_path))

    response = await client.post(
        "/api/v1/runs",
        json={"task_id": ids["task_id"], "agent_id": ids["agent_id"], "deliver": "pr"},
        headers=admin,
    )

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "has none" in detail
    assert f"PATCH /api/v1/projects/{ids['project_id']}" in detail
    assert "git_host" in detail
    assert response.json()["errors"][0]["field"] == "deliver"
    runs = (await client.get("/api/v1/runs", headers=admin)).json()["items"]
    assert runs == []


async def test_a_branch_run_into_a_local_working_repository_is_refused(
    client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    working = make_repo(tmp_path / "mine")
    ids = await task_in(client, admin, working)

    response = await client.post(
        "/api/v1/runs",
        json={"task_id": ids["task_id"], "agent_id": ids["agent_id"], "deliver": "branch"},
        headers=admin,
    )

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "local working repository" in detail
    assert "commit-local" in detail
    # commit-local and patch stay possible for it.
    for mode in ("commit-local", "patch"):
        ok = await client.post(
            "/api/v1/runs",
            json={"task_id": ids["task_id"], "agent_id": ids["agent_id"], "deliver": mode},
            headers=admin,
        )
        assert ok.status_code == 201, ok.text


async def test_a_branch_run_to_a_bare_remote_or_a_url_is_accepted(
    runtime: Runtime, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    remote = bare(tmp_path)
    ids = await task_in(client, admin, remote)
    response = await client.post(
        "/api/v1/runs",
        json={"task_id": ids["task_id"], "agent_id": ids["agent_id"], "deliver": "branch"},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    assert response.json()["deliver"] == "branch"


async def test_a_run_whose_git_host_token_is_not_set_is_refused_naming_the_secret(
    runtime: Runtime, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    ids = await task_in(client, admin, bare(tmp_path), git_host=HOST)
    body = {"task_id": ids["task_id"], "agent_id": ids["agent_id"], "deliver": "pr"}

    refused = await client.post("/api/v1/runs", json=body, headers=admin)

    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert "GITHUB_TOKEN" in detail
    assert "CODEFORGE_SECRET_GITHUB_TOKEN" in detail
    assert "codeforge secrets set GITHUB_TOKEN" in detail

    runtime.services.secrets.set("GITHUB_TOKEN", "ghp_test_value_123")
    accepted = await client.post("/api/v1/runs", json=body, headers=admin)
    assert accepted.status_code == 201, accepted.text
    # `branch` pushes with the host's token too.
    branch = await client.post("/api/v1/runs", json=body | {"deliver": "branch"}, headers=admin)
    assert branch.status_code == 201, branch.text


async def test_a_pr_run_whose_local_source_is_gone_is_refused(
    client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    remote = bare(tmp_path)
    ids = await task_in(client, admin, remote)
    subprocess.run(["rm", "-rf", str(remote)], check=True)

    response = await client.post(
        "/api/v1/runs",
        json={"task_id": ids["task_id"], "agent_id": ids["agent_id"], "deliver": "branch"},
        headers=admin,
    )

    assert response.status_code == 422
    assert "no longer a git repository" in response.json()["detail"]
