"""Runs delivered to git hosts, end to end through the API.

The scripted model fixes a failing test (as in `test_agent_runs.py`); the run is then
delivered as a pushed branch to a local bare repository, or as a pull request on a
scripted GitHub, GitLab or Gitea (real git over HTTP, each host's real REST API shapes).
Every failure ends the run `delivery_failed` with a reason a person can act on, and the
patch stays downloadable.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from codeforge.container import Container
from codeforge.http.app import create_app
from codeforge.runtime import Runtime
from codeforge.settings import AgentSettings, DeliverySettings, HttpSettings, SandboxSettings
from tests.e2e.conftest import Headers, api_settings
from tests.e2e.test_agent_runs import CALC, PRICES, TEST, events_of, fix_script, post, wait_for_end
from tests.support.app_client import AppClient
from tests.support.repos import git, make_repo
from tests.support.scripted_git_host import KINDS, ScriptedGitHost
from tests.support.scripted_llm import ScriptedLLM, reply

PUBLIC_URL = "https://codeforge.example"
SUMMARY = "add() now adds; the unit test passes"
FILES = {"calc.py": CALC, "test_calc.py": TEST}


@pytest.fixture
async def working(
    make_database: Callable[[], str], tmp_path: Path, scripted_llm: ScriptedLLM
) -> AsyncIterator[Runtime]:
    settings = api_settings(
        make_database(),
        tmp_path / "data",
        sandbox=SandboxSettings(kind="mount"),
        agent=AgentSettings(stall_window=2, default_wall_seconds=60),
        delivery=DeliverySettings(host_max_retries=1),
        http=HttpSettings(public_url=PUBLIC_URL + "/"),
    )
    runtime = Runtime(Container(settings=settings))
    await runtime.start()
    yield runtime
    await runtime.stop("test finished")


@pytest.fixture
async def client(working: Runtime) -> AsyncIterator[AppClient]:
    async with AppClient(app=create_app(working)) as client:
        yield client


@pytest.fixture
def admin(working: Runtime) -> Headers:
    assert working.admin_key_file is not None
    return {"Authorization": f"Bearer {working.admin_key_file.read_text().strip()}"}


async def task_for(
    client: AppClient,
    admin: Headers,
    llm: ScriptedLLM,
    source: str,
    git_host: dict[str, Any] | None = None,
) -> dict[str, str]:
    await post(
        client,
        admin,
        "/api/v1/models",
        {"name": "scripted", "base_url": llm.base_url, "model": "scripted-model", **PRICES},
    )
    agent = await post(client, admin, "/api/v1/agents", {"name": "coder", "model": "scripted"})
    body: dict[str, Any] = {"name": "calc", "source": source}
    if git_host is not None:
        body["git_host"] = git_host
    project = await post(client, admin, "/api/v1/projects", body)
    task = await post(
        client,
        admin,
        "/api/v1/tasks",
        {
            "project_id": project["id"],
            "title": "Fix add",
            "prompt": "add() subtracts; make it add.",
            "acceptance_criteria": ["python3 -m unittest passes"],
        },
    )
    return {"task_id": task["id"], "agent_id": agent["id"]}


async def deliver(
    client: AppClient, admin: Headers, llm: ScriptedLLM, ids: dict[str, str], mode: str
) -> dict[str, Any]:
    fix_script(llm)
    run = await post(client, admin, "/api/v1/runs", ids | {"deliver": mode})
    done: dict[str, Any] = await wait_for_end(client, admin, run["id"])
    llm.assert_script_consumed()
    return done


def bare_remote(tmp_path: Path) -> Path:
    seed = make_repo(tmp_path / "seed", FILES)
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(remote)], check=True)
    return remote


async def assert_patch_kept(client: AppClient, admin: Headers, run_id: str) -> None:
    patch = await client.get(f"/api/v1/runs/{run_id}/artifacts/patch", headers=admin)
    assert patch.status_code == 200
    assert "+    return a + b" in patch.text


# ---------------------------------------------------------------------------- branch


async def test_a_branch_run_pushes_the_fix_to_the_projects_bare_remote(
    client: AppClient, admin: Headers, tmp_path: Path, scripted_llm: ScriptedLLM
) -> None:
    remote = bare_remote(tmp_path)
    main_before = git(remote, "rev-parse", "main")
    ids = await task_for(client, admin, scripted_llm, str(remote))

    done = await deliver(client, admin, scripted_llm, ids, "branch")

    assert done["status"] == "succeeded", done
    branch = f"codeforge/run-{done['id']}"
    artifact = done["result"]["artifact"]
    assert artifact["pushed"] == {
        "remote": str(remote),
        "branch": branch,
        "commit": git(remote, "rev-parse", branch),
    }
    assert artifact["commit"] == artifact["pushed"]["commit"]
    assert "return a + b" in git(remote, "show", f"{branch}:calc.py")
    assert git(remote, "log", "-1", "--format=%an <%ae>%n%s", branch) == (
        "CodeForge <codeforge@localhost>\nFix add"
    )
    assert git(remote, "rev-parse", "main") == main_before  # only the run's branch moved
    events = await events_of(client, admin, done["id"])
    [pushed] = [e["data"] for e in events if e["type"] == "BranchPushed"]
    assert pushed == {
        "remote": str(remote),
        "branch": branch,
        "commit": artifact["commit"],
        "created": True,
    }
    kinds = [e["type"] for e in events]
    assert kinds.index("ArtifactStored") < kinds.index("BranchPushed") < kinds.index("RunCompleted")


async def test_a_branch_refused_by_the_remotes_hook_fails_the_run_and_keeps_the_patch(
    client: AppClient, admin: Headers, tmp_path: Path, scripted_llm: ScriptedLLM
) -> None:
    remote = bare_remote(tmp_path)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'refusing: codeforge/* branches are protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    ids = await task_for(client, admin, scripted_llm, str(remote))

    done = await deliver(client, admin, scripted_llm, ids, "branch")

    assert done["status"] == "failed"
    assert done["result"]["summary"] == "delivery_failed"
    detail = done["result"]["artifact"]["detail"]
    assert f"codeforge/run-{done['id']} could not be pushed" in detail
    assert "refusing: codeforge/* branches are protected" in detail
    assert "pre-receive hook declined" in detail
    assert f"GET /api/v1/runs/{done['id']}/artifacts/patch" in detail
    await assert_patch_kept(client, admin, done["id"])
    assert git(remote, "branch", "--list", "codeforge/*") == ""


# ---------------------------------------------------------------------------- pull requests


@pytest.fixture(params=KINDS)
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with ScriptedGitHost(request.param, tmp_path / "host") as server:
        server.create_repository("acme/app", FILES)
        yield server


def host_config(host: ScriptedGitHost, **changes: Any) -> dict[str, Any]:
    return {
        "kind": host.kind,
        "repository": "acme/app",
        "token_secret": "HOST_TOKEN",
        "api_url": host.api_url,
        **changes,
    }


async def test_a_pr_run_opens_one_pull_request_and_a_second_run_of_the_task_opens_none(
    working: Runtime,
    client: AppClient,
    admin: Headers,
    scripted_llm: ScriptedLLM,
    host: ScriptedGitHost,
) -> None:
    working.services.secrets.set("HOST_TOKEN", host.token)
    ids = await task_for(client, admin, scripted_llm, host.clone_url("acme/app"), host_config(host))

    first = await deliver(client, admin, scripted_llm, ids, "pr")

    assert first["status"] == "succeeded", first
    branch = f"codeforge/run-{first['id']}"
    [pull] = host.pulls("acme/app")
    assert (pull.head, pull.base, pull.draft, pull.state) == (branch, "main", True, "open")
    prefix = {"github": "", "gitlab": "Draft: ", "gitea": "WIP: "}[host.kind]
    assert pull.title == f"{prefix}Fix add"
    assert pull.body.startswith(SUMMARY)
    assert "**Fix add**" in pull.body
    assert "> add() subtracts; make it add." in pull.body
    assert "- [ ] python3 -m unittest passes" in pull.body
    assert f"[{first['id']}]({PUBLIC_URL}/runs/{first['id']})" in pull.body
    assert f"<!-- codeforge:task={ids['task_id']} -->" in pull.body
    assert (
        "return a + b"
        in subprocess.run(
            ["git", "-C", str(host.root / "acme/app.git"), "show", f"{branch}:calc.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    opened = first["result"]["artifact"]["pull_request"]
    assert opened["number"] == pull.number
    assert opened["draft"] is True
    assert opened["existing"] is False
    events = await events_of(client, admin, first["id"])
    [event] = [e["data"] for e in events if e["type"] == "PullRequestOpened"]
    assert event | {"url": ""} == {
        "host": host.kind,
        "url": "",
        "number": pull.number,
        "head": branch,
        "base": "main",
        "draft": True,
        "existing": False,
    }
    assert event["url"] == opened["url"]
    assert host.token not in json.dumps(events)
    posts = [r for r in host.api_requests if r.method == "POST"]
    assert len(posts) == 1

    second = await deliver(client, admin, scripted_llm, ids, "pr")

    assert second["status"] == "succeeded", second
    assert len(host.pulls("acme/app")) == 1, "no second pull request for the task"
    again = second["result"]["artifact"]["pull_request"]
    assert again == opened | {"existing": True}
    assert "already has an open pull request" in second["result"]["summary"]
    assert f"codeforge/run-{second['id']}" in host.branches("acme/app")  # still pushed
    assert len([r for r in host.api_requests if r.method == "POST"]) == 1


async def test_a_pr_run_opens_a_ready_pull_request_when_the_project_says_so(
    working: Runtime,
    client: AppClient,
    admin: Headers,
    scripted_llm: ScriptedLLM,
    tmp_path: Path,
) -> None:
    with ScriptedGitHost("gitlab", tmp_path / "host") as host:
        host.create_repository("acme/app", FILES)
        working.services.secrets.set("HOST_TOKEN", host.token)
        ids = await task_for(
            client, admin, scripted_llm, host.clone_url("acme/app"), host_config(host, draft=False)
        )

        done = await deliver(client, admin, scripted_llm, ids, "pr")

        assert done["status"] == "succeeded", done
        [pull] = host.pulls("acme/app")
        assert (pull.title, pull.draft) == ("Fix add", False)


FAILURES: dict[str, tuple[str, str]] = {
    # case: (kind of host, what the run's detail must say)
    "wrong_token": ("github", "the token was refused"),
    "api_unauthorized": ("gitlab", "refused the token (HTTP 401)"),
    "forbidden": ("gitea", "does not let this token do that"),
    "protected_branch": ("github", "GH006: Protected branch update failed"),
    "rate_limited": ("gitlab", "rate limit was reached (HTTP 429)"),
    "validation": ("github", "Validation Failed"),
    "remote_gone": ("gitea", "does not exist or cannot be seen"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
async def test_a_delivery_failure_ends_the_run_delivery_failed_with_the_patch_kept(
    working: Runtime,
    client: AppClient,
    admin: Headers,
    scripted_llm: ScriptedLLM,
    tmp_path: Path,
    case: str,
) -> None:
    kind, said = FAILURES[case]
    with ScriptedGitHost(kind, tmp_path / "host") as host:  # type: ignore[arg-type]
        host.create_repository("acme/app", FILES)
        token = "wrong-token-ZQ81x" if case == "wrong_token" else host.token
        working.services.secrets.set("HOST_TOKEN", token)
        ids = await task_for(
            client, admin, scripted_llm, host.clone_url("acme/app"), host_config(host)
        )
        if case == "api_unauthorized":
            host.fail(401, endpoint="list")
        elif case == "forbidden":
            host.fail(403, endpoint="create")
        elif case == "protected_branch":
            host.protect("acme/app", "GH006: Protected branch update failed for codeforge/*.")
        elif case == "rate_limited":
            host.rate_limited(retry_after=3600)
        elif case == "validation":
            host.fail(422, endpoint="create")
        elif case == "remote_gone":
            host.delete_repository("acme/app")

        done = await deliver(client, admin, scripted_llm, ids, "pr")

        assert done["status"] == "failed", done
        assert done["result"]["summary"] == "delivery_failed"
        detail = done["result"]["artifact"]["detail"]
        assert said in detail, detail
        assert token not in detail
        assert "artifacts/patch" in detail
        await assert_patch_kept(client, admin, done["id"])
        assert host.pulls() == []
        events = await events_of(client, admin, done["id"])
        assert "PullRequestOpened" not in [e["type"] for e in events]
        assert token not in json.dumps(events)


async def test_two_runs_of_a_task_finishing_together_open_one_pull_request(
    working: Runtime,
    client: AppClient,
    admin: Headers,
    scripted_llm: ScriptedLLM,
    tmp_path: Path,
) -> None:
    steps = [
        reply(tool_calls=[("read_file", {"path": "calc.py"})]),
        reply(
            tool_calls=[("edit", {"path": "calc.py", "old_string": "a - b", "new_string": "a + b"})]
        ),
        reply(tool_calls=[("finish", {"summary": SUMMARY})]),
    ]
    # Each run's conversation says where it is: both runs follow the same script at once.
    scripted_llm.responder = lambda body: steps[
        sum(1 for m in body["messages"] if m["role"] == "assistant")
    ]
    with ScriptedGitHost("github", tmp_path / "host") as host:
        host.create_repository("acme/app", FILES)
        working.services.secrets.set("HOST_TOKEN", host.token)
        ids = await task_for(
            client, admin, scripted_llm, host.clone_url("acme/app"), host_config(host)
        )
        runs = [await post(client, admin, "/api/v1/runs", ids | {"deliver": "pr"}) for _ in "ab"]
        done = [await wait_for_end(client, admin, run["id"], timeout=120) for run in runs]

        assert [d["status"] for d in done] == ["succeeded", "succeeded"], done
        [pull] = host.pulls("acme/app")
        opened = [d["result"]["artifact"]["pull_request"] for d in done]
        assert sorted(o["existing"] for o in opened) == [False, True]
        assert {o["number"] for o in opened} == {pull.number}
        assert {f"codeforge/run-{d['id']}" for d in done} <= set(host.branches("acme/app"))
