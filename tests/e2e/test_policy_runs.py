"""The policy in a real run: the scripted model drives the loop; the gate denies a
compound command with a denied part, the denial is recorded as `PolicyDecided` with the
rule, scope and reason, the model is told why, and the run goes on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from codeforge.container import Container
from codeforge.domain.runs import SandboxMode
from codeforge.http.app import create_app
from codeforge.ports.sandbox import SandboxUnavailable
from codeforge.runtime import Runtime
from codeforge.settings import AgentSettings, SandboxSettings
from tests.e2e.conftest import Headers, api_settings
from tests.e2e.test_agent_runs import events_of, post, setup, wait_for_end
from tests.support.app_client import AppClient
from tests.support.repos import git
from tests.support.scripted_llm import ScriptedLLM


@pytest.fixture
async def working(
    make_database: Callable[[], str], tmp_path: Path, scripted_llm: ScriptedLLM
) -> AsyncIterator[Runtime]:
    settings = api_settings(
        make_database(),
        tmp_path / "data",
        sandbox=SandboxSettings(kind="mount"),
        agent=AgentSettings(stall_window=3, default_wall_seconds=60),
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


def decided(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == "PolicyDecided"]


def completed(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == "ToolCallCompleted"]


async def test_a_denied_command_is_recorded_and_the_model_is_told_why(
    working: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    source: Path = ids.pop("source")
    marker = f"pushed-{tmp_path.name}"
    scripted_llm.reply(
        tool_calls=[("bash", {"command": f"git status && touch {marker} && git push origin main"})]
    )
    scripted_llm.reply(tool_calls=[("bash", {"command": "curl -fsSL https://example.com/x.sh"})])
    scripted_llm.reply(tool_calls=[("bash", {"command": "python3 -m unittest -q test_calc"})])
    scripted_llm.reply(tool_calls=[("finish", {"summary": "could not push; tests checked"})])
    run = await post(client, admin, "/api/v1/runs", ids)
    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "succeeded", done
    scripted_llm.assert_script_consumed()

    events = await events_of(client, admin, run["id"])
    push, fetch, tests, finish = decided(events)
    assert (push["decision"], push["rule"], push["scope"]) == (
        "deny",
        "Bash(git push:*)",
        "preset:headless-safe-sandbox",
    )
    assert "CodeForge delivers the run's work itself" in push["reason"]
    # On the mount sandbox the safe preset denies the network outright.
    assert (fetch["decision"], fetch["rule"]) == ("deny", "Network")
    assert (tests["decision"], tests["rule"]) == ("allow", "Bash(python3:*)")
    assert finish["decision"] == "allow"

    outputs = [c["output"] for c in completed(events)]
    assert outputs[0].startswith("denied by policy: `git push origin main` matches ")
    assert "(rule Bash(git push:*), preset:headless-safe-sandbox)" in outputs[0]
    assert outputs[1].startswith(
        "denied by policy: `curl -fsSL https://example.com/x.sh` reaches the network"
    )
    assert "Ran 1 test" in outputs[2]  # it ran (and fails: add() is not fixed here)
    # No part of the denied command ran: the file it would have made is not there.
    workspace = working.settings.data_path / "runs" / run["id"]
    assert not (workspace / marker).exists()
    assert git(source, "branch", "--list") == "* main"

    # What the model was sent after the denial: the reason, as the tool's result.
    after_push = scripted_llm.chat_requests[1].json["messages"][-1]
    assert after_push["role"] == "tool"
    assert "denied by policy" in after_push["content"]
    assert "CodeForge delivers the run's work itself" in after_push["content"]


async def test_a_projects_stored_profile_and_a_runs_overrides_decide_a_run(
    working: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    task = (await client.get(f"/api/v1/tasks/{ids['task_id']}", headers=admin)).json()
    project = (await client.get(f"/api/v1/projects/{task['project_id']}", headers=admin)).json()
    await post(
        client, admin, "/api/v1/policies",
        {"name": "calc-only", "project_id": project["id"],
         "document": "mode: acceptEdits\nrules:\n  deny:\n    - rule: Edit(test_*.py)\n"
                     "      reason: the tests are the spec\n"},
    )  # fmt: skip
    response = await client.patch(
        f"/api/v1/projects/{project['id']}",
        json={"version": project["version"], "policy_profile": "calc-only"},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    scripted_llm.reply(
        tool_calls=[
            ("edit", {"path": "test_calc.py", "old_string": "5)", "new_string": "-1)"}),
            ("edit", {"path": "calc.py", "old_string": "a - b", "new_string": "a + b"}),
        ]
    )
    scripted_llm.reply(tool_calls=[("bash", {"command": "rm -rf build"})])
    scripted_llm.reply(tool_calls=[("finish", {"summary": "fixed calc.py"})])
    run = await post(
        client,
        admin,
        "/api/v1/runs",
        {**ids, "policy_overrides": {"rules": {"deny": ["Bash(rm:*)"]}}},
    )
    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "succeeded", done
    events = await events_of(client, admin, run["id"])
    spec, fix, rm, _ = decided(events)
    assert (spec["decision"], spec["rule"], spec["scope"]) == ("deny", "Edit(test_*.py)", "project")
    assert "the tests are the spec" in spec["reason"]
    assert (fix["decision"], fix["scope"]) == ("allow", "project")  # acceptEdits
    assert (rm["decision"], rm["rule"], rm["scope"]) == ("deny", "Bash(rm:*)", "run")
    assert done["result"]["artifact"]["patch"]["files"] == ["calc.py"]


async def test_a_headless_run_never_approves_network_or_protected_asks_by_itself(
    working: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    # bwrap isolates files and processes, so headless rules approve ordinary command
    # asks there; the default profile still asks for the network and CI config, and
    # those only a person may approve.
    factory = working.container.sandbox_factories()[SandboxMode.BWRAP]
    try:
        await factory.check()
    except SandboxUnavailable as e:
        pytest.skip(f"bwrap cannot run here: {e}")
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    scripted_llm.reply(tool_calls=[("bash", {"command": "pip download nothing-here"})])
    scripted_llm.reply(tool_calls=[("bash", {"command": "echo ok > notes.txt && make -v"})])
    scripted_llm.reply(
        tool_calls=[("write_file", {"path": ".github/workflows/ci.yml", "content": "on: push\n"})]
    )
    scripted_llm.reply(tool_calls=[("finish", {"summary": "tried"})])
    run = await post(
        client,
        admin,
        "/api/v1/runs",
        {**ids, "mode": "bwrap", "policy_overrides": {"headless": True}},
    )
    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "succeeded", done
    events = await events_of(client, admin, run["id"])
    approvals = [e["data"] for e in events if e["type"] == "ApprovalDecided"]
    assert [(a["decision"], a["decided_by"]) for a in approvals] == [
        ("deny", "auto"),
        ("allow", "auto"),
        ("deny", "auto"),
    ], approvals
    assert "never approved automatically" in approvals[0]["reason"]
    assert "network" in approvals[0]["reason"]
    assert "protected" in approvals[2]["reason"]
    outputs = completed(events)
    assert "denied" in outputs[0]["output"]
    patch = await client.get(f"/api/v1/runs/{run['id']}/artifacts/patch", headers=admin)
    assert "notes.txt" in patch.text
    assert ".github" not in patch.text
