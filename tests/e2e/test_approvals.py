"""Asks: a run waits for an approver, who answers through the API (or a timeout does).

The policy is configuration a user could write: a presets folder of its own whose
`ask-before-commands` preset is the default profile (edits allowed, every program
asked; shell builtins like `echo` need no approval under any profile, so the commands
here run programs). Everything is the real runtime: the policy engine, the worker, the
loop, the control subject, the scripted model.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from codeforge.container import Container
from codeforge.domain.keys import Role
from codeforge.http.app import create_app
from codeforge.runtime import Runtime
from codeforge.settings import AgentSettings, ApprovalSettings, PolicySettings, SandboxSettings
from tests.e2e.conftest import Headers, api_settings
from tests.e2e.test_agent_runs import events_of, post, setup, wait_for_end
from tests.support.app_client import AppClient
from tests.support.scripted_llm import ScriptedLLM

ASK_BEFORE_COMMANDS = """\
name: ask-before-commands
description: Edits allowed; every command needs an approver.
mode: acceptEdits
defaults:
  bash: ask
"""
ASKED = "defaults.bash: ask"


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[tuple[dict[str, Any], str]]]]:
    received: list[tuple[dict[str, Any], str]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((json.loads(body), self.headers.get("X-CodeForge-Signature", "")))
            received[-1][0]["_raw"] = body.decode()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def runtime_with(
    make_database: Callable[[], str], tmp_path: Path, webhook_url: str, **approvals: Any
) -> Runtime:
    presets = tmp_path / "presets"
    presets.mkdir(exist_ok=True)
    (presets / "ask-before-commands.yaml").write_text(ASK_BEFORE_COMMANDS)
    settings = api_settings(
        make_database(),
        tmp_path / "data",
        sandbox=SandboxSettings(kind="mount"),
        agent=AgentSettings(stall_window=5),
        approvals=ApprovalSettings(webhook_url=webhook_url, webhook_secret="HOOK_KEY", **approvals),
        policy=PolicySettings(presets_dir=str(presets), default_profile="ask-before-commands"),
    )
    return Runtime(Container(settings=settings))


@pytest.fixture
async def asking(
    make_database: Callable[[], str],
    tmp_path: Path,
    webhook: tuple[str, list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Runtime]:
    monkeypatch.setenv("CODEFORGE_SECRET_HOOK_KEY", "webhook-signing-key")
    runtime = runtime_with(make_database, tmp_path, webhook[0], timeout_seconds=30)
    await runtime.start()
    yield runtime
    await runtime.stop("test finished")


@pytest.fixture
async def client(asking: Runtime) -> AsyncIterator[AppClient]:
    async with AppClient(app=create_app(asking)) as client:
        yield client


@pytest.fixture
def admin(asking: Runtime) -> Headers:
    assert asking.admin_key_file is not None
    return {"Authorization": f"Bearer {asking.admin_key_file.read_text().strip()}"}


async def pending(client: AppClient, headers: Headers, run_id: str) -> dict[str, Any]:
    for _ in range(200):
        listed = (await client.get(f"/api/v1/runs/{run_id}/approvals", headers=headers)).json()
        waiting = [a for a in listed if a["state"] == "pending"]
        if waiting:
            return waiting[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no pending approval: {listed}")


async def test_a_run_waits_for_an_approver_and_an_approval_for_the_run_covers_the_next_ask(
    asking: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
    webhook: tuple[str, list[tuple[dict[str, Any], str]]],
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    scripted_llm.reply(tool_calls=[("bash", {"command": "touch first.txt"})])
    scripted_llm.reply(tool_calls=[("bash", {"command": "touch second.txt"})])
    scripted_llm.reply(tool_calls=[("finish", {"summary": "both ran"})])
    run = await post(client, admin, "/api/v1/runs", ids)

    ask = await pending(client, admin, run["id"])
    assert (ask["tool"], ask["command"], ask["rule"]) == ("bash", "touch first.txt", ASKED)
    waiting = (await client.get(f"/api/v1/runs/{run['id']}", headers=admin)).json()
    assert waiting["status"] == "awaiting_approval"
    # The approver was told, with a signed notice that says where to answer.
    notice, signature = webhook[1][0]
    assert notice["approval_id"] == ask["approval_id"]
    expected = hmac.new(b"webhook-signing-key", notice["_raw"].encode(), hashlib.sha256)
    assert signature == f"sha256={expected.hexdigest()}"

    answer = await client.post(
        f"/api/v1/runs/{run['id']}/approvals/{ask['approval_id']}",
        json={"decision": "allow", "scope": "run", "reason": "fine by me"},
        headers=admin,
    )
    assert answer.status_code == 202, answer.text
    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "succeeded", done
    events = await events_of(client, admin, run["id"])
    decided = [e["data"] for e in events if e["type"] == "ApprovalDecided"]
    assert [(d["decision"], d["scope"]) for d in decided] == [("allow", "run"), ("allow", "run")]
    assert decided[0]["decided_by"] not in ("", "auto", "timeout")  # the key that answered
    assert decided[1]["decided_by"] == "run-scope"
    assert [e["type"] for e in events].count("ApprovalRequested") == 1
    outputs = [e["data"]["ok"] for e in events if e["type"] == "ToolCallCompleted"]
    assert outputs == [True, True, True]
    again = await client.post(
        f"/api/v1/runs/{run['id']}/approvals/{ask['approval_id']}",
        json={"decision": "deny"},
        headers=admin,
    )
    assert again.status_code == 409


async def test_a_denied_ask_is_told_to_the_model_and_the_command_never_runs(
    asking: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    marker = tmp_path / "must-not-exist"
    scripted_llm.reply(tool_calls=[("bash", {"command": f"touch {marker}"})])
    scripted_llm.reply(tool_calls=[("finish", {"summary": "ok, not doing it"})])
    run = await post(client, admin, "/api/v1/runs", ids)
    ask = await pending(client, admin, run["id"])
    viewer = await asking.services.api_keys.create_for_tenant_name(
        name="viewer", role=Role.VIEWER, tenant="default"
    )
    refused = await client.post(
        f"/api/v1/runs/{run['id']}/approvals/{ask['approval_id']}",
        json={"decision": "allow"},
        headers={"Authorization": f"Bearer {viewer.secret}"},
    )
    assert refused.status_code == 403
    missing = await client.post(
        f"/api/v1/runs/{run['id']}/approvals/ap_nope", json={"decision": "allow"}, headers=admin
    )
    assert missing.status_code == 404
    await client.post(
        f"/api/v1/runs/{run['id']}/approvals/{ask['approval_id']}",
        json={"decision": "deny", "reason": "no touching"},
        headers=admin,
    )
    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "succeeded"
    completed = [
        e["data"]
        for e in await events_of(client, admin, run["id"])
        if e["type"] == "ToolCallCompleted"
    ]
    assert not completed[0]["ok"]
    assert "denied" in completed[0]["output"]
    assert "no touching" in completed[0]["output"]
    assert not marker.exists()
    last = scripted_llm.chat_requests[-1].json["messages"][-1]
    assert "denied" in last["content"]


async def test_an_unanswered_ask_times_out_to_a_denial(
    make_database: Callable[[], str],
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    runtime = runtime_with(make_database, tmp_path, "", timeout_seconds=0.5)
    await runtime.start()
    try:
        async with AppClient(app=create_app(runtime)) as client:
            assert runtime.admin_key_file is not None
            admin = {"Authorization": f"Bearer {runtime.admin_key_file.read_text().strip()}"}
            ids = await setup(client, admin, tmp_path, scripted_llm)
            ids.pop("source")
            scripted_llm.reply(tool_calls=[("bash", {"command": "date"})])
            scripted_llm.reply(tool_calls=[("finish", {"summary": "gave up"})])
            run = await post(client, admin, "/api/v1/runs", ids)
            done = await wait_for_end(client, admin, run["id"])
            events = await events_of(client, admin, run["id"])
    finally:
        await runtime.stop("test finished")
    assert done["status"] == "succeeded"
    [decided] = [e["data"] for e in events if e["type"] == "ApprovalDecided"]
    assert (decided["decision"], decided["decided_by"]) == ("deny", "timeout")


async def test_a_headless_run_decides_asks_by_the_auto_approval_rules(
    asking: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    scripted_llm.reply(tool_calls=[("bash", {"command": "date"})])
    scripted_llm.reply(tool_calls=[("finish", {"summary": "done"})])
    run = await post(client, admin, "/api/v1/runs", {**ids, "policy_overrides": {"headless": True}})
    done = await wait_for_end(client, admin, run["id"])
    assert done["status"] == "succeeded"
    events = await events_of(client, admin, run["id"])
    assert "ApprovalRequested" not in [e["type"] for e in events]
    [decided] = [e["data"] for e in events if e["type"] == "ApprovalDecided"]
    # The mount sandbox isolates nothing: a command there needs a person.
    assert (decided["decision"], decided["decided_by"]) == ("deny", "auto")
    assert "isolating sandbox" in decided["reason"]


async def test_the_audit_trail_says_who_requested_decided_and_delivered(
    asking: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    scripted_llm: ScriptedLLM,
) -> None:
    ids = await setup(client, admin, tmp_path, scripted_llm)
    ids.pop("source")
    scripted_llm.reply(tool_calls=[("bash", {"command": "touch x.txt"})])
    scripted_llm.reply(tool_calls=[("finish", {"summary": "wrote x"})])
    run = await post(client, admin, "/api/v1/runs", ids)
    ask = await pending(client, admin, run["id"])
    await client.post(
        f"/api/v1/runs/{run['id']}/approvals/{ask['approval_id']}",
        json={"decision": "allow"},
        headers=admin,
    )
    await wait_for_end(client, admin, run["id"])
    me = (await client.get("/api/v1/keys", headers=admin)).json()["items"][0]["id"]

    trail = (await client.get("/api/v1/audit", headers=admin)).json()
    rows = [(e["action"], e["who"], e["decision"], e["subject"]) for e in trail["items"]]
    assert rows == [
        ("RunRequested", me, None, "deliver patch"),
        ("PolicyDecided", me, "ask", "bash"),
        ("ApprovalDecided", me, "allow", ask["approval_id"]),
        ("PolicyDecided", me, "allow", "finish"),
        ("ArtifactStored", me, None, "patch"),
        ("RunCompleted", me, "succeeded", "patch"),
    ]
    approvals_only = (await client.get("/api/v1/audit?kind=approval", headers=admin)).json()
    assert [e["action"] for e in approvals_only["items"]] == ["ApprovalDecided"]
    later = (await client.get(f"/api/v1/audit?after={trail['next_after']}", headers=admin)).json()
    assert later["items"] == []
    other = await asking.services.api_keys.create_for_tenant_name(
        name="x", role=Role.ADMIN, tenant="elsewhere"
    )
    theirs = await client.get("/api/v1/audit", headers={"Authorization": f"Bearer {other.secret}"})
    assert theirs.json()["items"] == []
