"""Runs done by a real `aider` (backend: aider), driven end to end through the API.

aider (its own venv, made once per checkout: tests/support/aider.py) runs in the run's
sandbox in network mode llm; the only model it can reach is CodeForge's LLM proxy on
the worker's unix socket, with the run's token; the proxy forwards to the scripted
OpenAI-compatible server. aider parses the SEARCH/REPLACE blocks of the scripted
replies and really edits the files. The runs must be budgeted and recorded like
native ones, checkpointed at each of aider's turns, and held to the policy gate.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from dependency_injector import providers

from codeforge.agent.backends.aider_install import AiderEnv
from codeforge.container import Container
from codeforge.domain.runs import SandboxMode
from codeforge.http.app import create_app
from codeforge.ports.sandbox import SandboxUnavailable
from codeforge.runtime import Runtime
from codeforge.settings import AgentSettings, AiderSettings, PolicySettings, SandboxSettings
from tests.e2e.conftest import Headers, api_settings, serving
from tests.e2e.test_agent_runs import CALC, PRICES, TEST, events_of, post, wait_for_end
from tests.support.app_client import AppClient
from tests.support.docker_engine import docker_factory, engine
from tests.support.repos import git, make_repo
from tests.support.scripted_llm import ScriptedLLM, reply

pytestmark = pytest.mark.timeout(900)  # the first test may create aider's venv (~1 min)


def block(path: str, search: str, replace: str) -> str:
    """One edit in aider's diff format."""
    return f"{path}\n```\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n"


FIX = block("calc.py", "    return a - b\n", "    return a + b\n")


# The policy is configuration a user could write: a presets folder whose one preset,
# the default profile, allows edits but none under secret/.
DENY_SECRETS = """\
name: deny-secrets
description: Edits allowed, except under secret/.
mode: acceptEdits
rules:
  deny:
    - rule: Edit(secret/**)
      reason: secrets are not to be edited
"""


@pytest.fixture
async def runtime(
    request: pytest.FixtureRequest,
    make_database: Any,
    tmp_path: Path,
    aider_env: AiderEnv,
) -> Any:
    presets = tmp_path / "presets"
    presets.mkdir(exist_ok=True)
    (presets / "deny-secrets.yaml").write_text(DENY_SECRETS)
    settings = api_settings(
        make_database(),
        tmp_path / "data",
        sandbox=SandboxSettings(kind="mount"),
        agent=AgentSettings(default_wall_seconds=120),
        aider=AiderSettings(venv=aider_env.venv),
        policy=PolicySettings(presets_dir=str(presets), default_profile="deny-secrets"),
    )
    container = Container(settings=settings)
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("mode") == "docker":
        # The test engine and image (the host's /usr bound read-only), docker runs only.
        try:
            engine()
        except SandboxUnavailable as e:
            pytest.skip(f"no docker engine: {e}")
        factories = dict(container.sandbox_factories())
        factories[SandboxMode.DOCKER] = docker_factory()
        container.sandbox_factories.override(providers.Object(factories))
    runtime = Runtime(container)
    await runtime.start()
    yield runtime
    await runtime.stop("test finished")


@pytest.fixture
async def client(runtime: Runtime) -> Any:
    async with AppClient(app=create_app(runtime)) as client:
        yield client


@pytest.fixture
def admin(runtime: Runtime) -> Headers:
    assert runtime.admin_key_file is not None
    return {"Authorization": f"Bearer {runtime.admin_key_file.read_text().strip()}"}


async def setup(
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    llm: ScriptedLLM,
    *,
    files: dict[str, str] | None = None,
    project: dict[str, Any] | None = None,
) -> dict[str, Any]:
    files = {"calc.py": CALC, "test_calc.py": TEST, **(files or {})}
    source = make_repo(tmp_path / "user-repo", files)
    await post(
        client,
        admin,
        "/api/v1/models",
        {"name": "scripted", "base_url": llm.base_url, "model": "scripted-model", **PRICES},
    )
    agent = await post(
        client, admin, "/api/v1/agents", {"name": "aider", "model": "scripted", "backend": "aider"}
    )
    made = await post(
        client,
        admin,
        "/api/v1/projects",
        {"name": "calc", "source": str(source), **(project or {})},
    )
    task = await post(
        client,
        admin,
        "/api/v1/tasks",
        {
            "project_id": made["id"],
            "title": "Fix add",
            "prompt": "add() in calc.py subtracts; make it add.",
            "acceptance_criteria": ["python3 -m unittest passes"],
        },
    )
    return {"task_id": task["id"], "agent_id": agent["id"], "source": source}


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == kind]


async def test_aider_edits_the_file_through_the_proxy_and_the_run_delivers_the_patch(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    source: Path = ids.pop("source")
    scripted_llm.reply("I will make add() add.\n\n" + FIX)
    run = await post(client, admin, "/api/v1/runs", ids)
    done = await wait_for_end(client, admin, run["id"], timeout=120)
    assert done["status"] == "succeeded", done["result"]
    assert done["result"]["summary"] == "aider changed 1 file(s): calc.py"
    scripted_llm.assert_script_consumed()

    # What reached the model: aider's streamed request, through the proxy, with the
    # model's own id and key (not the run token), the task inside, calc.py in the chat.
    [request] = scripted_llm.chat_requests
    assert request.json["stream"] is True
    assert request.json["model"] == "scripted-model"
    assert "cfr_" not in request.headers.get("Authorization", "")
    sent = "\n".join(str(m["content"]) for m in request.json["messages"])
    assert "add() in calc.py subtracts" in sent
    assert "return a - b" in sent  # calc.py was added to aider's chat: it saw the file
    assert "SEARCH" in sent  # aider's own edit-format instructions

    events = await events_of(client, admin, run["id"])
    kinds = [e["type"] for e in events]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    [prompt] = of(events, "PromptAssembled")
    assert prompt["tools"] == ["aider"]
    assert prompt["sources"]["chat_files"] == ["calc.py"]
    requested = of(events, "ToolCallRequested")
    assert [(r["tool"], r["call_id"]) for r in requested] == [
        ("aider", "aider-1"),
        ("edit", "aider-1-t1-1"),
    ]
    assert requested[1]["arguments"] == {"path": "calc.py", "by": "aider", "deleted": False}
    [decided] = of(events, "PolicyDecided")
    assert (decided["decision"], decided["tool"]) == ("allow", "edit")
    assert decided["scope"] == "preset:deny-secrets"
    completed = of(events, "ToolCallCompleted")
    edit = next(c for c in completed if c["tool"] == "edit")
    assert "+    return a + b" in edit["diff"]
    finished = next(c for c in completed if c["tool"] == "aider")
    assert finished["exit_code"] == 0
    assert finished["ok"] is True
    assert "Applied edit to calc.py" in finished["output"]
    assert finished["touched_paths"] == ["calc.py"]
    [checkpoint] = of(events, "CheckpointCreated")
    assert checkpoint["changed"] == ["calc.py"]
    # The checkpoint follows the edit's record, which follows the model's reply.
    assert kinds.index("ModelResponded") < kinds.index("CheckpointCreated")
    assert kinds[-1] == "RunCompleted"

    # The proxy recorded the call and its cost; the run, the ledger and the events agree.
    [responded] = of(events, "ModelResponded")
    assert "return a + b" in responded["content"]
    cost = Decimal(responded["cost_usd"])
    assert cost > 0
    assert Decimal(done["cost_usd"]) == cost
    assert done["steps"] == 1
    report = (await client.get("/api/v1/costs?group=run", headers=admin)).json()
    [mine] = [t for t in report["totals"] if t["key"] == run["id"]]
    assert (Decimal(mine["cost_usd"]), mine["calls"], Decimal(mine["held_usd"])) == (cost, 1, 0)

    # The patch, delivered like the native backend's, makes the test pass.
    patch = await client.get(f"/api/v1/runs/{run['id']}/artifacts/patch", headers=admin)
    assert patch.status_code == 200
    assert "+    return a + b" in patch.text
    assert ".aider" not in patch.text  # aider's history files stayed in its private HOME
    check = tmp_path / "check"
    subprocess.run(["git", "clone", "-q", str(source), str(check)], check=True)
    subprocess.run(["git", "apply"], input=patch.content, cwd=check, check=True)
    tests = subprocess.run(["python3", "-m", "unittest", "-q", "test_calc"], cwd=check)
    assert tests.returncode == 0
    assert "return a - b" in (source / "calc.py").read_text()  # the user's repo untouched
    assert git(source, "status", "--porcelain") == ""

    # A replay would have aider call the real model through the proxy: refused, saying so.
    replay = await post(client, admin, f"/api/v1/runs/{run['id']}/replay", {})
    refused = await wait_for_end(client, admin, replay["id"], timeout=60)
    assert (refused["status"], refused["result"]["summary"]) == ("failed", "invalid_run")
    assert "cannot be replayed" in refused["result"]["artifact"]["detail"]
    assert len(scripted_llm.chat_requests) == 1


@pytest.mark.parametrize("mode", ["bwrap", "hybrid", "docker"])
async def test_a_path_the_policy_denies_is_reverted_and_fails_the_run(
    mode: str,
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    """bwrap and docker: aider sees only the system, the workspace and its venv (read-only),
    and can reach only the proxy (hybrid: the same, writing into a layer merged when it
    exits). Its edits under secret/ are reverted and the run fails with why."""
    secret = "token = 'do not touch'\n"
    ids = await setup(
        client,
        admin,
        tmp_path,
        scripted_llm,
        files={"secret/token.py": secret},
    )
    ids.pop("source")
    scripted_llm.reply(
        "Fixing add, and the token too.\n\n"
        + FIX
        + "\n"
        + block("secret/token.py", "token = 'do not touch'\n", "token = 'leaked'\n")
        + "\n"
        + block("secret/new.py", "", "stolen = True\n")
    )
    run = await post(client, admin, "/api/v1/runs", {**ids, "mode": mode})
    done = await wait_for_end(client, admin, run["id"], timeout=120)
    assert (done["status"], done["result"]["summary"]) == ("failed", "policy_denied"), done
    detail = done["result"]["artifact"]["detail"]
    assert "secret/token.py, which the policy denies" in detail
    assert "Edit(secret/**)" in detail
    assert "reverted" in detail

    events = await events_of(client, admin, run["id"])
    decided = {d["call_id"]: d for d in of(events, "PolicyDecided")}
    requested = {
        r["arguments"]["path"]: r for r in of(events, "ToolCallRequested") if r["tool"] != "aider"
    }
    assert {p: (r["tool"], decided[r["call_id"]]["decision"]) for p, r in requested.items()} == {
        "calc.py": ("edit", "allow"),
        "secret/new.py": ("write_file", "deny"),
        "secret/token.py": ("edit", "deny"),
    }
    completed = {c["call_id"]: c for c in of(events, "ToolCallCompleted")}
    denied = completed[requested["secret/token.py"]["call_id"]]
    assert denied["ok"] is False
    assert "reverted" in denied["output"]
    assert "+token = 'leaked'" in denied["diff"]  # what aider tried, on record
    # The worktree and the checkpoint hold the allowed edit and nothing of the denied ones.
    worktree = Path(of(events, "WorkspacePrepared")[0]["path"])
    assert (worktree / "secret" / "token.py").read_text() == secret
    assert not (worktree / "secret" / "new.py").exists()
    assert "return a + b" in (worktree / "calc.py").read_text()
    [checkpoint] = of(events, "CheckpointCreated")
    assert checkpoint["changed"] == ["calc.py"]
    patch = await client.get(f"/api/v1/runs/{run['id']}/artifacts/patch", headers=admin)
    assert "+    return a + b" in patch.text
    assert "secret" not in patch.text
    aider = next(c for c in completed.values() if c["tool"] == "aider")
    assert aider["ok"] is False


async def test_each_turn_is_checkpointed_and_failing_gates_go_back_to_aider(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(
        client,
        admin,
        tmp_path,
        scripted_llm,
        project={"gates": {"tests": "python3 -m unittest -q test_calc", "max_attempts": 2}},
    )
    ids.pop("source")
    # Turn 1: one edit applies, one does not match: aider applies the first and asks
    # again (its reflection). Turn 2: nothing more. The gates fail (add still
    # subtracts): their output goes back to aider, whose third call fixes it.
    scripted_llm.reply(
        block(
            "calc.py", "def add(a, b):\n", "def sub(a, b):\n    return a - b\n\n\ndef add(a, b):\n"
        )
        + "\n"
        + block("calc.py", "    return a * b\n", "    return a + b\n")
    )
    scripted_llm.reply("The first edit is in; I have nothing more.")
    scripted_llm.reply(
        block("calc.py", "def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n")
    )
    run = await post(client, admin, "/api/v1/runs", ids)
    done = await wait_for_end(client, admin, run["id"], timeout=180)
    assert done["status"] == "succeeded", done["result"]
    scripted_llm.assert_script_consumed()
    assert done["steps"] == 3

    events = await events_of(client, admin, run["id"])
    kinds = [e["type"] for e in events]
    aiders = [r for r in of(events, "ToolCallRequested") if r["tool"] == "aider"]
    assert [a["call_id"] for a in aiders] == ["aider-1", "aider-2"]
    assert "quality gates did not pass" in aiders[1]["arguments"]["message"]
    assert (
        "FAIL" in aiders[1]["arguments"]["message"] or "Error" in aiders[1]["arguments"]["message"]
    )
    checks = of(events, "QualityGatesChecked")
    assert [c["passed"] for c in checks] == [False, True]
    checkpoints = of(events, "CheckpointCreated")
    assert len(checkpoints) == 2
    # The first checkpoint was made at the second call, before it went to the model.
    first = kinds.index("CheckpointCreated")
    responded = [i for i, k in enumerate(kinds) if k == "ModelResponded"]
    assert responded[0] < first < responded[1]
    assert checkpoints[0]["changed"] == ["calc.py"]
    # What the model was told: the failed edit (aider's reflection), then the gates.
    requests = scripted_llm.chat_requests
    assert "SearchReplaceNoExactMatch" in str(requests[1].json["messages"][-1]["content"])
    assert "quality gates did not pass" in str(requests[2].json["messages"])
    patch = await client.get(f"/api/v1/runs/{run['id']}/artifacts/patch", headers=admin)
    assert "+def sub(a, b):" in patch.text
    assert "+def add(a, b):\n+    return a + b\n" in patch.text


async def test_a_spent_budget_stops_aider_at_once_with_budget_exceeded(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    scripted_llm.reply(FIX)
    started = time.monotonic()
    run = await post(client, admin, "/api/v1/runs", {**ids, "limits": {"max_cost_usd": "0.00001"}})
    done = await wait_for_end(client, admin, run["id"], timeout=60)
    assert (done["status"], done["result"]["summary"]) == ("failed", "budget_exceeded"), done
    assert time.monotonic() - started < 30  # not aider retrying 402s for a minute
    assert scripted_llm.chat_requests == []  # the proxy refused before any upstream call
    events = await events_of(client, admin, run["id"])
    assert of(events, "ModelResponded") == []
    [aider] = [c for c in of(events, "ToolCallCompleted") if c["tool"] == "aider"]
    assert aider["ok"] is False
    assert Decimal(done["cost_usd"]) == 0


async def test_cancel_stops_aider_while_it_waits_for_the_model(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    scripted_llm.add(reply(FIX, delay=60))
    run = await post(client, admin, "/api/v1/runs", ids)
    await scripted_llm.wait_for_async(lambda llm: len(llm.chat_requests) == 1, timeout=60)
    started = time.monotonic()
    await post(client, admin, f"/api/v1/runs/{run['id']}/cancel", {"reason": "enough"})
    done = await wait_for_end(client, admin, run["id"], timeout=10)
    assert done["status"] == "cancelled"
    assert time.monotonic() - started < 5
    await asyncio.sleep(0.3)
    # No aider left behind (its command line names its message file).
    left = subprocess.run(
        ["pgrep", "-f", "codeforge-aider-message"], capture_output=True, text=True
    )
    assert left.stdout.strip() == ""


@pytest.fixture
def unreachable_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip with no configuration and an index nobody listens on: PyPI out of reach."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")


async def test_when_aider_cannot_be_installed_the_run_fails_saying_why(
    make_database: Any,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
    unreachable_index: None,
) -> None:
    settings = api_settings(
        make_database(),
        tmp_path / "data",
        sandbox=SandboxSettings(kind="mount"),
        aider=AiderSettings(install_timeout=120),  # managed: <data>/tools/aider-<version>
    )
    runtime = Runtime(Container(settings=settings))
    await runtime.start()
    try:
        async with AppClient(app=create_app(runtime)) as client:
            assert runtime.admin_key_file is not None
            admin = {"Authorization": f"Bearer {runtime.admin_key_file.read_text().strip()}"}
            ready = (await client.get("/health/ready")).json()
            assert ready["checks"]["aider"]["status"] == "up"
            assert "not installed yet" in ready["checks"]["aider"]["detail"]
            ids = await setup(client, admin, tmp_path, scripted_llm)
            ids.pop("source")
            started = time.monotonic()
            run = await post(client, admin, "/api/v1/runs", ids)
            done = await wait_for_end(client, admin, run["id"], timeout=150)
            took = time.monotonic() - started
            assert (done["status"], done["result"]["summary"]) == (
                "failed",
                "backend_unavailable",
            )
            detail = done["result"]["artifact"]["detail"]
            assert "pip install failed" in detail
            assert "package index reachable" in detail
            assert took < 120, took  # pip's own timeouts and retries, not a hang
            assert scripted_llm.chat_requests == []
            # No half-made venv is left to be trusted, and readiness says what happened.
            tools = tmp_path / "data" / "tools"
            assert not (tools / f"aider-{settings.aider.version}").exists()
            ready = (await client.get("/health/ready")).json()
            assert ready["status"] == "ready"  # native runs go on
            assert "aider not installed: pip install failed" in ready["checks"]["aider"]["detail"]
            # A second run within a minute gets the same answer at once, without a retry.
            again = await post(client, admin, "/api/v1/runs", ids)
            started = time.monotonic()
            done = await wait_for_end(client, admin, again["id"], timeout=30)
            assert done["result"]["summary"] == "backend_unavailable"
            assert time.monotonic() - started < 10
    finally:
        await runtime.stop("test finished")


async def test_the_runs_max_steps_refuses_aiders_next_call(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    # An edit that does not match: aider would ask again, but the run has one call.
    scripted_llm.reply(block("calc.py", "    return a * b\n", "    return a + b\n"))
    run = await post(client, admin, "/api/v1/runs", {**ids, "limits": {"max_steps": 1}})
    done = await wait_for_end(client, admin, run["id"], timeout=60)
    assert (done["status"], done["result"]["summary"]) == ("failed", "max_steps"), done["result"]
    assert done["steps"] == 1
    assert len(scripted_llm.chat_requests) == 1


async def test_aiders_output_streams_live_and_its_calls_stream_through_the_proxy(
    runtime: Runtime, tmp_path: Path, scripted_llm: ScriptedLLM
) -> None:
    async with serving(runtime) as base:
        assert runtime.admin_key_file is not None
        headers = {"Authorization": f"Bearer {runtime.admin_key_file.read_text().strip()}"}
        async with AppClient(app=create_app(runtime)) as client:
            ids = await setup(client, headers, tmp_path, scripted_llm)
        ids.pop("source")
        scripted_llm.reply("Making add() add.\n\n" + FIX, chunk_size=4)
        deltas: list[dict[str, Any]] = []
        stored: list[str] = []
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(f"{base}/api/v1/runs", json=ids) as created:
                run = await created.json()
            async with http.get(f"{base}/api/v1/runs/{run['id']}/events/stream") as stream:
                event = data = None
                async for raw in stream.content:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                    elif line == "" and data is not None:
                        if event == "delta":
                            deltas.append(json.loads(data))
                        else:
                            stored.append(event or "")
                        event = data = None
    assert stored[-1] == "RunCompleted"
    stdout = "".join(d["text"] for d in deltas if d["stream"] == "stdout")
    assert {d["call_id"] for d in deltas if d["stream"] == "stdout"} == {"aider-1"}
    assert "Applied edit to calc.py" in stdout
    assert "Making add() add." in stdout  # the model's streamed reply, as aider printed it
    # The upstream call was streamed too (the proxy relays aider's stream: true).
    assert scripted_llm.chat_requests[0].json["stream"] is True
