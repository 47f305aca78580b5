"""Quality gates: the definition of done runs in the sandbox when the agent says it is done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codeforge.runtime import Runtime
from tests.e2e.conftest import Headers
from tests.e2e.test_agent_runs import events_of, fix_script, post, setup, wait_for_end
from tests.support.app_client import AppClient
from tests.support.repos import git
from tests.support.scripted_llm import ScriptedLLM

TESTS = "python3 -m unittest -q test_calc"
pytestmark = pytest.mark.executing

FIX = {"path": "calc.py", "old_string": "return a - b", "new_string": "return a + b"}


async def test_passing_gates_let_the_run_succeed(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(
        client, admin, tmp_path, scripted_llm,
        project={"gates": {"tests": TESTS, "lint": "python3 -m py_compile calc.py"}},
    )  # fmt: skip
    ids.pop("source")
    fix_script(scripted_llm)
    run = await post(client, admin, "/api/v1/runs", ids)
    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "succeeded", done
    [checked] = [
        e["data"]
        for e in await events_of(client, admin, run["id"])
        if e["type"] == "QualityGatesChecked"
    ]
    assert checked["passed"]
    assert [(r["name"], r["passed"]) for r in checked["results"]] == [
        ("tests", True),
        ("lint", True),
    ]


async def test_a_failing_gate_sends_the_agent_back_to_work_with_its_output(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm, project={"gates": {"tests": TESTS}})
    ids.pop("source")
    scripted_llm.reply(tool_calls=[("finish", {"summary": "surely done"})])  # too early
    scripted_llm.reply(tool_calls=[("edit", FIX)])
    scripted_llm.reply(tool_calls=[("finish", {"summary": "fixed for real"})])
    run = await post(client, admin, "/api/v1/runs", ids)
    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["summary"] == "fixed for real"
    events = await events_of(client, admin, run["id"])
    checks = [e["data"] for e in events if e["type"] == "QualityGatesChecked"]
    assert [(c["attempt"], c["passed"]) for c in checks] == [(1, False), (2, True)]
    [nudge] = [e["data"] for e in events if e["type"] == "AgentNudged"]
    assert nudge["reason"] == "quality_gates"
    assert "FAILED" in nudge["message"]  # unittest's own report
    assert "call finish again" in nudge["message"]
    # The model saw it as the next message.
    second = scripted_llm.chat_requests[1].json["messages"]
    assert second[-1]["role"] == "user"
    assert "quality gates did not pass" in second[-1]["content"]


async def test_gates_failing_every_attempt_roll_the_worktree_back_and_keep_the_attempt(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    gates = {"tests": TESTS, "max_attempts": 1, "rollback_on_gate_fail": True}
    ids = await setup(client, admin, tmp_path, scripted_llm, project={"gates": gates})
    ids.pop("source")
    scripted_llm.reply(tool_calls=[("write_file", {"path": "calc.py", "content": "broken(\n"})])
    scripted_llm.reply(tool_calls=[("finish", {"summary": "done?"})])
    run = await post(client, admin, "/api/v1/runs", ids)
    done = await wait_for_end(client, admin, run["id"])
    assert (done["status"], done["result"]["summary"]) == ("failed", "quality_gates_failed")
    events = await events_of(client, admin, run["id"])
    [rolled] = [e["data"] for e in events if e["type"] == "WorkspaceRolledBack"]
    assert rolled["kept_as"] == "failed-attempt"
    assert "calc.py" in rolled["paths"]
    kept = await client.get(f"/api/v1/runs/{run['id']}/artifacts/failed-attempt", headers=admin)
    assert "+broken(" in kept.text
    missing = await client.get(f"/api/v1/runs/{run['id']}/artifacts/patch", headers=admin)
    assert missing.status_code == 404  # the worktree is back at its base: nothing to deliver
    worktree = runtime.settings.data_path / "runs" / run["id"]
    assert git(worktree, "status", "--porcelain") == ""


async def test_a_change_over_the_diff_cap_fails_its_gate(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    gates: dict[str, Any] = {"max_diff_lines": 3, "max_attempts": 1}
    ids = await setup(client, admin, tmp_path, scripted_llm, project={"gates": gates})
    ids.pop("source")
    big = "".join(f"line {n}\n" for n in range(10))
    scripted_llm.reply(tool_calls=[("write_file", {"path": "big.txt", "content": big})])
    scripted_llm.reply(tool_calls=[("finish", {"summary": "wrote a lot"})])
    run = await post(client, admin, "/api/v1/runs", ids)
    done = await wait_for_end(client, admin, run["id"])
    assert done["result"]["summary"] == "quality_gates_failed"
    assert "10 changed lines (at most 3)" in done["result"]["artifact"]["detail"]
