"""Runs executed end to end: the scripted model drives the real loop, tools, sandbox and git.

A repository with a failing unit test; the model (a scripted OpenAI-compatible server
driving the real HTTP adapter) reads the file, edits it, runs the tests through bash and
finishes. The run must end `succeeded` with a patch that makes the test pass, every step
in the event log, live over SSE, with its cost in the ledger — and the user's repository
untouched.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from codeforge.domain.runs import SandboxMode
from codeforge.http.app import create_app
from codeforge.ports.sandbox import SandboxUnavailable
from codeforge.runtime import Runtime
from tests.e2e.conftest import Headers, serving
from tests.support.app_client import AppClient
from tests.support.repos import git, make_repo
from tests.support.scripted_llm import ScriptedLLM

CALC = "def add(a, b):\n    return a - b\n"
TEST = (
    "import unittest\n\nfrom calc import add\n\n\n"
    "class AddTest(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n\n"
    'if __name__ == "__main__":\n    unittest.main()\n'
)
PRICES = {"input_price_per_mtok": "2.5", "output_price_per_mtok": "10"}

pytestmark = pytest.mark.executing


async def post(client: AppClient, headers: Headers, path: str, body: Any) -> Any:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code in (201, 202), response.text
    return response.json()


async def setup(
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    llm: ScriptedLLM,
    *,
    model: dict[str, Any] | None = None,
    agent_limits: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
    project: dict[str, Any] | None = None,
) -> dict[str, Any]:
    files = {"calc.py": CALC, "test_calc.py": TEST, **(files or {})}
    source = make_repo(tmp_path / "user-repo", files)
    await post(
        client,
        admin,
        "/api/v1/models",
        model
        or {"name": "scripted", "base_url": llm.base_url, "model": "scripted-model", **PRICES},
    )
    agent = await post(
        client,
        admin,
        "/api/v1/agents",
        {"name": "coder", "model": "scripted", "limits": agent_limits or {}},
    )
    project = await post(
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
            "project_id": project["id"],
            "title": "Fix add",
            "prompt": "add() subtracts; make it add.",
            "acceptance_criteria": ["python3 -m unittest passes"],
        },
    )
    return {"task_id": task["id"], "agent_id": agent["id"], "source": source}


def fix_script(llm: ScriptedLLM, *, test_command: str = "python3 -m unittest -v test_calc") -> None:
    llm.reply("Let me look at the code.", tool_calls=[("read_file", {"path": "calc.py"})])
    llm.reply(
        tool_calls=[
            (
                "edit",
                {"path": "calc.py", "old_string": "return a - b", "new_string": "return a + b"},
            )
        ]
    )
    llm.reply(tool_calls=[("bash", {"command": test_command})])
    llm.reply(tool_calls=[("finish", {"summary": "add() now adds; the unit test passes"})])


async def wait_for_end(
    client: AppClient, headers: Headers, run_id: str, timeout: float = 60
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        run = (await client.get(f"/api/v1/runs/{run_id}", headers=headers)).json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return run
        assert asyncio.get_running_loop().time() < deadline, run
        await asyncio.sleep(0.1)


async def events_of(client: AppClient, headers: Headers, run_id: str) -> list[dict[str, Any]]:
    return (await client.get(f"/api/v1/runs/{run_id}/events", headers=headers)).json()["items"]


async def test_a_run_fixes_a_failing_test_and_delivers_a_patch_that_makes_it_pass(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    source: Path = ids.pop("source")
    user_head = git(source, "rev-parse", "HEAD")
    fix_script(scripted_llm, test_command="sleep 0.5; python3 -m unittest -v test_calc")
    run = await post(client, admin, "/api/v1/runs", ids)

    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["summary"] == "add() now adds; the unit test passes"
    assert done["steps"] == 4
    scripted_llm.assert_script_consumed()

    events = await events_of(client, admin, run["id"])
    kinds = [e["type"] for e in events]
    for expected in [
        "RunRequested", "RunStarted", "WorkspacePrepared", "PromptAssembled", "ModelResponded",
        "ToolCallRequested", "PolicyDecided", "ToolCallCompleted", "CheckpointCreated",
        "ArtifactStored", "RunCompleted",
    ]:  # fmt: skip
        assert expected in kinds, expected
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    completed = [e["data"] for e in events if e["type"] == "ToolCallCompleted"]
    assert [c["tool"] for c in completed] == ["read_file", "edit", "bash", "finish"]
    assert "1\tdef add(a, b):" in completed[0]["output"]
    assert "+    return a + b" in completed[1]["diff"]
    assert completed[2]["exit_code"] == 0
    assert "OK" in completed[2]["output"]
    prompt = next(e["data"] for e in events if e["type"] == "PromptAssembled")
    assert "Fix add" in prompt["user"]
    assert "calc.py" in prompt["system"]  # the file tree

    # The patch applies to the user's repository and makes the test pass.
    patch = await client.get(f"/api/v1/runs/{run['id']}/artifacts/patch", headers=admin)
    assert patch.status_code == 200
    assert patch.headers["content-type"].startswith("text/x-diff")
    check = tmp_path / "check"
    subprocess.run(["git", "clone", "-q", str(source), str(check)], check=True)
    subprocess.run(["git", "apply"], input=patch.content, cwd=check, check=True)
    tests = subprocess.run(["python3", "-m", "unittest", "-q", "test_calc"], cwd=check)
    assert tests.returncode == 0
    # The user's repository was never touched.
    assert git(source, "rev-parse", "HEAD") == user_head
    assert git(source, "status", "--porcelain") == ""
    assert "return a - b" in (source / "calc.py").read_text()

    # Every model call was paid for, and the ledger, the events and the run agree.
    costs = [Decimal(e["data"]["cost_usd"]) for e in events if e["type"] == "ModelResponded"]
    assert len(costs) == 4
    assert all(c > 0 for c in costs)
    assert Decimal(done["cost_usd"]) == sum(costs)
    report = (await client.get("/api/v1/costs?group=run", headers=admin)).json()
    [mine] = [t for t in report["totals"] if t["key"] == run["id"]]
    assert Decimal(mine["cost_usd"]) == sum(costs)
    assert Decimal(mine["held_usd"]) == 0
    assert mine["calls"] == 4

    # What the model was sent: tools, the task, and the tool results of earlier steps.
    requests = scripted_llm.chat_requests
    assert {t["function"]["name"] for t in requests[0].json["tools"]} >= {
        "read_file",
        "edit",
        "bash",
        "finish",
    }
    last = requests[-1].json["messages"]
    assert last[-1]["role"] == "tool"
    assert "OK" in last[-1]["content"]


async def test_every_stored_event_and_live_output_arrive_on_the_sse_stream(
    runtime: Runtime,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    async with serving(runtime) as base:
        assert runtime.admin_key_file is not None
        headers = {"Authorization": f"Bearer {runtime.admin_key_file.read_text().strip()}"}
        async with AppClient(app=create_app(runtime)) as client:
            ids = await setup(client, headers, tmp_path, scripted_llm)
        ids.pop("source")
        fix_script(
            scripted_llm,
            test_command="echo testing now; sleep 1; python3 -m unittest -v test_calc",
        )
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.post(f"{base}/api/v1/runs", json=ids) as created:
                run = await created.json()
            stored: list[int] = []
            deltas: list[dict[str, Any]] = []
            async with http.get(f"{base}/api/v1/runs/{run['id']}/events/stream") as stream:
                event = data = ident = None
                async for raw in stream.content:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                    elif line.startswith("id:"):
                        ident = line[3:].strip()
                    elif line == "" and data is not None:
                        if event == "delta":
                            assert ident is None  # live output carries no id
                            deltas.append(json.loads(data))
                        else:
                            stored.append(int(ident or 0))
                        event = data = ident = None
            async with http.get(f"{base}/api/v1/runs/{run['id']}/events") as response:
                log = (await response.json())["items"]
    assert stored == [e["seq"] for e in log]
    assert log[-1]["type"] == "RunCompleted"
    stdout = "".join(d["text"] for d in deltas if d["stream"] == "stdout")
    assert "testing now" in stdout
    assert any(d["stream"] == "model" for d in deltas)


async def test_commit_local_commits_on_the_runs_branch_in_codeforges_clone(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    source: Path = ids.pop("source")
    fix_script(scripted_llm)
    run = await post(client, admin, "/api/v1/runs", {**ids, "deliver": "commit-local"})
    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "succeeded", done
    artifact = done["result"]["artifact"]
    branch = artifact["branch"]
    assert branch == f"codeforge/run-{run['id']}"
    clone = runtime.settings.data_path / "workspaces" / done["tenant_id"] / "calc"
    assert git(clone, "rev-parse", branch) == artifact["commit"]
    assert "return a + b" in git(clone, "show", f"{branch}:calc.py")
    assert git(clone, "log", "-1", "--format=%an %s", branch) == "CodeForge Fix add"
    assert git(source, "branch", "--list", branch) == ""  # nothing was pushed to the user


async def test_cancel_stops_a_running_command_within_a_second(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    # In the workspace: the default policy denies changes outside it on mount.
    marker = f"still-running-{tmp_path.name}"
    scripted_llm.reply(tool_calls=[("bash", {"command": f"sleep 30; touch {marker}"})])
    run = await post(client, admin, "/api/v1/runs", ids)
    for _ in range(100):
        kinds = [e["type"] for e in await events_of(client, admin, run["id"])]
        if "PolicyDecided" in kinds:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the command is running
    started = asyncio.get_running_loop().time()
    await post(client, admin, f"/api/v1/runs/{run['id']}/cancel", {"reason": "changed my mind"})
    done = await wait_for_end(client, admin, run["id"], timeout=5)
    assert asyncio.get_running_loop().time() - started < 1.5
    assert done["status"] == "cancelled"
    assert done["result"]["summary"] == "changed my mind"
    await asyncio.sleep(0.2)
    out = subprocess.run(["pgrep", "-f", f"touch {marker}"], capture_output=True, text=True)
    assert out.stdout.strip() == ""


async def test_a_run_stops_before_a_call_its_budget_cannot_cover(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    fix_script(scripted_llm)
    run = await post(client, admin, "/api/v1/runs", {**ids, "limits": {"max_cost_usd": "0.00001"}})
    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "failed"
    assert done["result"]["summary"] == "budget_exceeded"
    assert "left" in done["result"]["artifact"]["detail"]
    assert scripted_llm.chat_requests == []  # refused before any call


async def test_an_unpriced_model_is_refused_for_a_budgeted_run(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    model = {"name": "scripted", "base_url": scripted_llm.base_url, "model": "scripted-model"}
    ids = await setup(client, admin, tmp_path, scripted_llm, model=model)
    ids.pop("source")
    run = await post(client, admin, "/api/v1/runs", {**ids, "limits": {"max_cost_usd": "5"}})
    done = await wait_for_end(client, admin, run["id"])
    assert done["result"]["summary"] == "budget_exceeded"
    assert "has no price" in done["result"]["artifact"]["detail"]
    assert scripted_llm.chat_requests == []


async def test_max_steps_and_stalls_end_a_run_with_their_reason(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    # The same read over and over: stall window 2 -> a nudge after 2, stopped after 4 more.
    scripted_llm.responder = lambda request: _read_again()
    run = await post(client, admin, "/api/v1/runs", ids)
    done = await wait_for_end(client, admin, run["id"])
    assert (done["status"], done["result"]["summary"]) == ("failed", "stalled")
    events = await events_of(client, admin, run["id"])
    nudges = [e for e in events if e["type"] == "AgentNudged"]
    assert [n["data"]["reason"] for n in nudges] == ["stalled"]

    limited = await post(client, admin, "/api/v1/runs", {**ids, "limits": {"max_steps": 1}})
    done = await wait_for_end(client, admin, limited["id"])
    assert (done["status"], done["result"]["summary"]) == ("failed", "max_steps")
    assert done["steps"] == 1


def _read_again() -> Any:
    from tests.support.scripted_llm import reply

    return reply(tool_calls=[("read_file", {"path": "calc.py"})])


async def test_a_model_error_ends_the_run_with_the_providers_reason(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    scripted_llm.fail(401)
    run = await post(client, admin, "/api/v1/runs", ids)
    done = await wait_for_end(client, admin, run["id"])
    assert (done["status"], done["result"]["summary"]) == ("failed", "model_error")
    assert "key" in done["result"]["artifact"]["detail"].lower()


async def test_bad_tool_calls_are_told_to_the_model_and_the_run_goes_on(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    scripted_llm.reply(tool_calls=[("read_file", '{"path": "calc.py"')])  # broken JSON
    scripted_llm.reply(tool_calls=[("no_such_tool", {})])
    # Two failing steps in a row (the stall window here): one corrective message.
    scripted_llm.reply(tool_calls=[("write_file", {"path": "notes.txt", "content": "hi\n"})])
    scripted_llm.reply(tool_calls=[("read_file", {"path": "../../etc/passwd"})])
    scripted_llm.reply(
        tool_calls=[("edit", {"path": "calc.py", "old_string": "nope", "new_string": "x"})]
    )
    scripted_llm.reply(tool_calls=[("finish", {"summary": "gave up politely"})])
    run = await post(client, admin, "/api/v1/runs", ids)
    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "succeeded", done
    events = await events_of(client, admin, run["id"])
    outputs = [e["data"]["output"] for e in events if e["type"] == "ToolCallCompleted"]
    assert "not valid JSON" in outputs[0]
    assert "unknown tool 'no_such_tool'" in outputs[1]
    assert outputs[2].startswith("created notes.txt")
    assert "must not contain '..'" in outputs[3]
    assert "not found in calc.py" in outputs[4]
    nudges = [e["data"]["reason"] for e in events if e["type"] == "AgentNudged"]
    assert nudges == ["stalled", "stalled"]
    assert done["result"]["artifact"]["patch"]["files"] == ["notes.txt"]


async def test_old_tool_output_is_compacted_near_the_context_window(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    small = {
        "name": "scripted", "base_url": scripted_llm.base_url, "model": "scripted-model",
        "context_window": 6000, **PRICES,
    }  # fmt: skip
    big = "".join(f"value_{n} = {n} * 2  # a line of a long module\n" for n in range(400))
    ids = await setup(client, admin, tmp_path, scripted_llm, model=small, files={"big.py": big})
    ids.pop("source")
    for start in range(1, 400, 50):  # eight different pages: exploring, not stalling
        scripted_llm.reply(
            tool_calls=[
                ("read_file", {"path": "big.py", "start_line": start, "end_line": start + 49})
            ]
        )
    scripted_llm.reply(tool_calls=[("finish", {"summary": "read it all"})])
    run = await post(client, admin, "/api/v1/runs", ids)
    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "succeeded", done
    events = await events_of(client, admin, run["id"])
    compactions = [e["data"] for e in events if e["type"] == "ContextCompacted"]
    assert compactions
    assert compactions[0]["tokens_after"] < compactions[0]["tokens_before"]
    last = scripted_llm.chat_requests[-1].json["messages"]
    assert any("elided to fit the context window" in (m.get("content") or "") for m in last)
    assert last[1]["content"].startswith("Task: Fix add")  # the task is always kept


@pytest.mark.parametrize("mode", ["bwrap", "hybrid"])
async def test_the_same_fix_in_an_isolating_sandbox(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
    mode: str,
) -> None:
    factory = runtime.container.sandbox_factories()[SandboxMode(mode)]
    try:
        await factory.check()
    except SandboxUnavailable as e:
        pytest.skip(f"{mode} cannot run here: {e}")
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    fix_script(scripted_llm)
    run = await post(client, admin, "/api/v1/runs", {**ids, "mode": mode})
    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "succeeded", done
    assert done["mode"] == mode
    events = await events_of(client, admin, run["id"])
    assert "CheckpointCreated" in [e["type"] for e in events]
    bash = [e["data"] for e in events if e["type"] == "ToolCallCompleted"][2]
    assert bash["exit_code"] == 0, bash["output"]
    patch = await client.get(f"/api/v1/runs/{run['id']}/artifacts/patch", headers=admin)
    assert "+    return a + b" in patch.text


async def test_the_prompt_carries_the_repo_map_and_the_agent_can_search_the_code(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    scripted_llm.reply(tool_calls=[("find_context", {"query": "where is the add function"})])
    scripted_llm.reply(tool_calls=[("code_graph", {"symbol": "add", "relation": "callers"})])
    scripted_llm.reply(tool_calls=[("finish", {"summary": "looked around"})])
    run = await post(client, admin, "/api/v1/runs", ids)
    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "succeeded", done
    events = await events_of(client, admin, run["id"])
    [pack] = [e["data"] for e in events if e["type"] == "ContextPackBuilt"]
    assert pack["provider"] == "repo-map+retrieval"
    assert any(i["path"] == "calc.py" for i in pack["items"])
    prompt = next(e["data"] for e in events if e["type"] == "PromptAssembled")
    assert "Repository map" in prompt["system"]
    assert "def add(a, b)" in prompt["system"]
    tools = {t["function"]["name"] for t in scripted_llm.chat_requests[0].json["tools"]}
    assert {"find_context", "code_graph"} <= tools
    found, graph = [e["data"]["output"] for e in events if e["type"] == "ToolCallCompleted"][:2]
    assert "calc.py:1-" in found
    assert "def add(a, b):" in found
    assert "test_calc.py" in graph
