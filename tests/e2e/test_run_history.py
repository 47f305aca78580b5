"""Pause, resume, rewind, fork and replay: a run's history is something a user can use."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from codeforge.runtime import Runtime
from tests.e2e.conftest import Headers
from tests.e2e.test_agent_runs import events_of, fix_script, post, setup, wait_for_end
from tests.support.app_client import AppClient
from tests.support.scripted_llm import ScriptedLLM, reply

pytestmark = pytest.mark.executing


async def wait_status(client: AppClient, headers: Headers, run_id: str, status: str) -> Any:
    for _ in range(200):
        run = (await client.get(f"/api/v1/runs/{run_id}", headers=headers)).json()
        if run["status"] == status:
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"the run stayed {run['status']}, never {status}")


async def wait_event(client: AppClient, headers: Headers, run_id: str, kind: str) -> Any:
    for _ in range(200):
        found = [e for e in await events_of(client, headers, run_id) if e["type"] == kind]
        if found:
            return found[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} in the run")


def tool_results(request: dict[str, Any]) -> list[str]:
    return [m.get("content") or "" for m in request["messages"] if m["role"] == "tool"]


async def test_a_paused_run_resumes_and_is_told_its_command_was_interrupted(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    scripted_llm.reply(tool_calls=[("bash", {"command": "sleep 30"})])

    def after_resume(request: Any) -> Any:
        assert "interrupted" in tool_results(request)[-1]
        return reply(tool_calls=[("finish", {"summary": "done after the pause"})])

    scripted_llm.responder = after_resume
    run = await post(client, admin, "/api/v1/runs", ids)
    await wait_event(client, admin, run["id"], "PolicyDecided")
    await asyncio.sleep(0.3)
    paused = await client.post(
        f"/api/v1/runs/{run['id']}/pause", json={"reason": "lunch"}, headers=admin
    )
    assert paused.status_code == 202
    suspended = await wait_status(client, admin, run["id"], "suspended")
    assert suspended["lease_owner"] is None
    reason = (await wait_event(client, admin, run["id"], "RunSuspended"))["data"]["reason"]
    assert reason == "paused by user: lunch"
    # Paused, not queued again: it stays suspended until someone resumes it.
    await asyncio.sleep(1.0)
    assert (await client.get(f"/api/v1/runs/{run['id']}", headers=admin)).json()[
        "status"
    ] == "suspended"

    resumed = await client.post(f"/api/v1/runs/{run['id']}/resume", headers=admin)
    assert resumed.status_code == 202
    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["summary"] == "done after the pause"
    kinds = [e["type"] for e in await events_of(client, admin, run["id"])]
    assert kinds.count("RunResumed") == 1
    assert "RunResumeRequested" in kinds
    again = await client.post(f"/api/v1/runs/{run['id']}/resume", headers=admin)
    assert again.status_code == 409


async def test_rewind_shows_what_it_will_delete_then_takes_files_and_conversation_back(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    scripted_llm.reply(tool_calls=[("write_file", {"path": "a.txt", "content": "A\n"})])
    scripted_llm.reply(tool_calls=[("write_file", {"path": "b.txt", "content": "B\n"})])
    scripted_llm.reply(
        tool_calls=[("edit", {"path": "calc.py", "old_string": "a - b", "new_string": "a * b"})]
    )
    scripted_llm.reply(tool_calls=[("bash", {"command": "sleep 30"})])
    run = await post(client, admin, "/api/v1/runs", ids)
    await wait_event(client, admin, run["id"], "PolicyDecided")
    for _ in range(100):
        kinds = [e["type"] for e in await events_of(client, admin, run["id"])]
        if kinds.count("CheckpointCreated") == 3 and kinds.count("PolicyDecided") == 4:
            break
        await asyncio.sleep(0.05)
    await client.post(f"/api/v1/runs/{run['id']}/pause", headers=admin)
    await wait_status(client, admin, run["id"], "suspended")

    events = await events_of(client, admin, run["id"])
    first_write = next(e for e in events if e["type"] == "CheckpointCreated")["data"]["after_seq"]
    url = f"/api/v1/runs/{run['id']}/rewind"
    plan = (
        await client.post(url, json={"to_seq": first_write, "dry_run": True}, headers=admin)
    ).json()
    assert not plan["applied"]
    assert sorted((c["path"], c["action"]) for c in plan["changes"]) == [
        ("b.txt", "delete"),
        ("calc.py", "write"),  # back to the base's version
    ]
    assert (await client.get(f"/api/v1/runs/{run['id']}", headers=admin)).json()[
        "status"
    ] == "suspended"
    bad = await client.post(url, json={"to_seq": 1}, headers=admin)
    assert bad.status_code == 422

    def after_rewind(request: Any) -> Any:
        results = tool_results(request)
        assert len(results) == 1  # only the first write remains in the conversation
        assert results[0].startswith("created a.txt")
        return reply(tool_calls=[("finish", {"summary": "rewound and finished"})])

    scripted_llm.responder = after_rewind
    applied = (await client.post(url, json={"to_seq": first_write}, headers=admin)).json()
    assert applied["applied"]
    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "succeeded", done
    patch = (await client.get(f"/api/v1/runs/{run['id']}/artifacts/patch", headers=admin)).text
    assert "+A" in patch
    assert "b.txt" not in patch
    assert "calc.py" not in patch
    restored = await wait_event(client, admin, run["id"], "CheckpointRestored")
    assert restored["data"]["reason"] == f"rewound to seq {first_write}"
    running = await client.post(url, json={"to_seq": first_write}, headers=admin)
    assert running.status_code == 409  # ended runs are not rewound: fork them


async def test_a_fork_continues_another_run_from_one_of_its_events_on_its_own_branch(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    scripted_llm.reply(tool_calls=[("write_file", {"path": "a.txt", "content": "A\n"})])
    scripted_llm.reply(tool_calls=[("write_file", {"path": "b.txt", "content": "B\n"})])
    scripted_llm.reply(tool_calls=[("finish", {"summary": "source done"})])
    source = await post(client, admin, "/api/v1/runs", ids)
    assert (await wait_for_end(client, admin, source["id"]))["status"] == "succeeded"
    events = await events_of(client, admin, source["id"])
    at = next(e for e in events if e["type"] == "CheckpointCreated")["data"]["after_seq"]

    def fork_step(request: Any) -> Any:
        assert [r[:9] for r in tool_results(request)] == ["created a"]
        return reply(tool_calls=[("write_file", {"path": "c.txt", "content": "C\n"})])

    scripted_llm.respond(fork_step)
    scripted_llm.reply(tool_calls=[("finish", {"summary": "fork done"})])
    fork = await post(client, admin, f"/api/v1/runs/{source['id']}/fork", {"at_seq": at})
    done = await wait_for_end(client, admin, fork["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["artifact"]["branch"] == f"codeforge/run-{fork['id']}"
    patch = (await client.get(f"/api/v1/runs/{fork['id']}/artifacts/patch", headers=admin)).text
    assert "+A" in patch
    assert "+C" in patch
    assert "b.txt" not in patch
    # The source is untouched.
    source_patch = (
        await client.get(f"/api/v1/runs/{source['id']}/artifacts/patch", headers=admin)
    ).text
    assert "c.txt" not in source_patch
    first = (await events_of(client, admin, fork["id"]))[0]["data"]
    assert (first["forked_from"], first["fork_seq"]) == (source["id"], at)


async def test_a_replay_reproduces_a_run_and_reports_what_came_out_differently(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    fix_script(scripted_llm)
    source = await post(client, admin, "/api/v1/runs", ids)
    assert (await wait_for_end(client, admin, source["id"]))["status"] == "succeeded"
    calls_before = len(scripted_llm.chat_requests)

    replay = await post(client, admin, f"/api/v1/runs/{source['id']}/replay", {})
    done = await wait_for_end(client, admin, replay["id"])
    assert done["status"] == "succeeded", done
    assert (done["result"]["artifact"]["replay_of"], done["result"]["artifact"]["diverged"]) == (
        source["id"],
        0,
    )
    assert len(scripted_llm.chat_requests) == calls_before  # no model was called
    assert done["cost_usd"] in ("0", "0.0", 0)
    replay_patch = (
        await client.get(f"/api/v1/runs/{replay['id']}/artifacts/patch", headers=admin)
    ).text
    source_patch = (
        await client.get(f"/api/v1/runs/{source['id']}/artifacts/patch", headers=admin)
    ).text
    assert replay_patch == source_patch

    # A run whose command depends on the moment cannot replay the same.
    scripted_llm.reply(tool_calls=[("bash", {"command": "date +%s%N"})])
    scripted_llm.reply(tool_calls=[("finish", {"summary": "told the time"})])
    timely = await post(client, admin, "/api/v1/runs", ids)
    assert (await wait_for_end(client, admin, timely["id"]))["status"] == "succeeded"
    again = await post(client, admin, f"/api/v1/runs/{timely['id']}/replay", {})
    done = await wait_for_end(client, admin, again["id"])
    assert done["result"]["artifact"]["diverged"] == 1
    [diverged] = [
        e["data"]
        for e in await events_of(client, admin, again["id"])
        if e["type"] == "ReplayDiverged"
    ]
    assert (diverged["tool"], diverged["field"]) == ("bash", "output")
    assert diverged["recorded"] != diverged["replayed"]
