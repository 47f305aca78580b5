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
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from litestar.testing import AsyncTestClient

from codeforge.agent.backends.aider_install import AiderEnv
from codeforge.container import Container
from codeforge.http.app import create_app
from codeforge.ports.policy import Decision, PolicyDecision, ToolRequest
from codeforge.runtime import Runtime
from codeforge.settings import AgentSettings, AiderSettings, SandboxSettings
from tests.e2e.conftest import Headers, api_settings
from tests.e2e.test_agent_runs import CALC, PRICES, TEST, events_of, post, wait_for_end
from tests.support.aider import aider_env  # noqa: F401 - the session fixture
from tests.support.repos import git, make_repo
from tests.support.scripted_llm import ScriptedLLM, reply

pytestmark = pytest.mark.timeout(900)  # the first test may create aider's venv (~1 min)


def block(path: str, search: str, replace: str) -> str:
    """One edit in aider's diff format."""
    return f"{path}\n```\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n"


FIX = block("calc.py", "    return a - b\n", "    return a + b\n")


class DenySecrets:
    """A policy gate with one path rule: no edits or writes under secret/."""

    def __init__(self) -> None:
        self.requests: list[ToolRequest] = []

    async def decide(self, request: ToolRequest) -> PolicyDecision:
        self.requests.append(request)
        if request.category in ("edit", "write") and any(
            p == "secret" or p.startswith("secret/") for p in request.paths
        ):
            return PolicyDecision(
                decision=Decision.DENY,
                rule="Edit(secret/**)",
                scope="project",
                reason="secrets are not to be edited",
            )
        return PolicyDecision(decision=Decision.ALLOW, rule="*", scope="default")


@pytest.fixture
def gate() -> DenySecrets:
    return DenySecrets()


@pytest.fixture
async def runtime(
    make_database: Any, tmp_path: Path, aider_env: AiderEnv, gate: DenySecrets  # noqa: F811
) -> Any:
    settings = api_settings(
        make_database(),
        tmp_path / "data",
        sandbox=SandboxSettings(kind="mount"),
        agent=AgentSettings(default_wall_seconds=120),
        aider=AiderSettings(venv=aider_env.venv),
    )
    container = Container(settings=settings)
    container.policy_gate.override(providers.Object(gate))
    runtime = Runtime(container)
    await runtime.start()
    yield runtime
    await runtime.stop("test finished")


@pytest.fixture
async def client(runtime: Runtime) -> Any:
    async with AsyncTestClient(app=create_app(runtime)) as client:
        yield client


@pytest.fixture
def admin(runtime: Runtime) -> Headers:
    assert runtime.admin_key_file is not None
    return {"Authorization": f"Bearer {runtime.admin_key_file.read_text().strip()}"}


async def setup(
    client: AsyncTestClient,
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
        client, admin, "/api/v1/projects", {"name": "calc", "source": str(source), **(project or {})}
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
    client: AsyncTestClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
    gate: DenySecrets,
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
    assert [(r.tool, r.category, r.paths) for r in gate.requests] == [
        ("edit", "edit", ("calc.py",))
    ]
    completed = of(events, "ToolCallCompleted")
    edit = next(c for c in completed if c["tool"] == "edit")
    assert "+    return a + b" in edit["diff"]
    finished = next(c for c in completed if c["tool"] == "aider")
    assert finished["exit_code"] == 0 and finished["ok"] is True
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
