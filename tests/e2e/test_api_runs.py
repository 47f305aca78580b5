"""Starting runs, their events, idempotency, and the live streams (SSE, WebSocket)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psycopg
import pytest

from codeforge.domain.events import Event, RunCompleted, RunStarted
from codeforge.domain.keys import Role
from codeforge.ports.events import EventContext
from codeforge.runtime import Runtime
from tests.e2e.conftest import Headers, MakeKey
from tests.support.app_client import AppClient
from tests.support.repos import make_repo

MODEL = {"name": "gpt-test", "base_url": "http://127.0.0.1:9/v1"}


async def setup_task(
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    agent_limits: dict[str, Any] | None = None,
) -> dict[str, str]:
    async def post(path: str, body: dict[str, Any]) -> Any:
        response = await client.post(path, json=body, headers=admin)
        assert response.status_code == 201, response.text
        return response.json()

    await post("/api/v1/models", MODEL)
    agent = await post(
        "/api/v1/agents", {"name": "coder", "model": "gpt-test", "limits": agent_limits or {}}
    )
    source = make_repo(tmp_path / "src")
    project = await post("/api/v1/projects", {"name": "demo", "source": str(source)})
    task = await post(
        "/api/v1/tasks", {"project_id": project["id"], "title": "t", "prompt": "do the thing"}
    )
    return {"task_id": task["id"], "agent_id": agent["id"]}


async def append(runtime: Runtime, run: dict[str, Any], events: list[Event], after: int) -> None:
    store = await runtime.container.event_store()
    await store.append(
        uuid.UUID(run["id"]),
        events,
        expected_seq=after,
        context=EventContext(tenant_id=uuid.UUID(run["tenant_id"])),
    )


def started(worker: str = "w1") -> RunStarted:
    return RunStarted(worker=worker, lease_expires_at=datetime.now(UTC) + timedelta(minutes=2))


async def test_starting_a_run_writes_the_run_its_first_event_and_an_outbox_message(
    runtime: Runtime, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    ids = await setup_task(client, admin, tmp_path)
    response = await client.post(
        "/api/v1/runs", json=ids, headers={**admin, "X-Request-ID": "start-1"}
    )
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["status"] == "requested"
    assert run["last_seq"] == 1
    # The default execution mode is the sandbox chosen at start (bwrap where it works).
    choice = await runtime.container.sandbox_choice()
    assert run["mode"] == choice.kind.value
    assert run["deliver"] == "patch"

    events = (await client.get(f"/api/v1/runs/{run['id']}/events", headers=admin)).json()
    (first,) = events["items"]
    assert first["type"] == "RunRequested"
    assert first["seq"] == 1
    assert first["request_id"] == "start-1"
    assert first["data"]["task_id"] == ids["task_id"]

    url = runtime.settings.database.url
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT subject, payload->>'run_id', headers->>'X-Request-ID' FROM outbox"
        ).fetchall()
    assert rows == [("runs.start", run["id"], "start-1")]

    listed = await client.get("/api/v1/runs", params={"task_id": ids["task_id"]}, headers=admin)
    assert [r["id"] for r in listed.json()["items"]] == [run["id"]]


async def test_a_run_may_tighten_limits_but_never_loosen_them(
    client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    ids = await setup_task(client, admin, tmp_path, agent_limits={"max_steps": 30})
    looser = await client.post(
        "/api/v1/runs", json={**ids, "limits": {"max_steps": 500}}, headers=admin
    )
    assert looser.json()["limits"]["max_steps"] == 30
    tighter = await client.post(
        "/api/v1/runs",
        json={**ids, "limits": {"max_steps": 5, "max_cost_usd": "1.25"}},
        headers=admin,
    )
    assert tighter.json()["limits"] == {
        "max_steps": 5,
        "max_wall_seconds": None,
        "max_cost_usd": "1.25",
    }


async def test_bad_run_requests_are_refused_clearly(
    client: AppClient, admin: Headers, make_key: MakeKey, tmp_path: Path
) -> None:
    ids = await setup_task(client, admin, tmp_path)
    missing = await client.post(
        "/api/v1/runs", json={**ids, "task_id": str(uuid.uuid4())}, headers=admin
    )
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "task_id"
    bad_mode = await client.post("/api/v1/runs", json={**ids, "mode": "vm"}, headers=admin)
    assert bad_mode.status_code == 400
    viewer = await make_key(Role.VIEWER)
    assert (await client.post("/api/v1/runs", json=ids, headers=viewer)).status_code == 403
    other = await make_key(Role.ADMIN, tenant="other")
    assert (await client.post("/api/v1/runs", json=ids, headers=other)).status_code == 422


async def test_an_idempotency_key_replays_the_first_response(
    client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    ids = await setup_task(client, admin, tmp_path)
    headers = {**admin, "Idempotency-Key": "run-once"}
    first = await client.post("/api/v1/runs", json=ids, headers=headers)
    again = await client.post("/api/v1/runs", json=ids, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers

    changed = await client.post(
        "/api/v1/runs", json={**ids, "deliver": "commit-local"}, headers=headers
    )
    assert changed.status_code == 422
    assert "different request" in changed.json()["detail"]
    runs = (await client.get("/api/v1/runs", headers=admin)).json()["items"]
    assert len(runs) == 1


async def test_fifty_concurrent_posts_with_one_key_create_exactly_one_run(
    runtime: Runtime, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    ids = await setup_task(client, admin, tmp_path)
    headers = {**admin, "Idempotency-Key": "stampede"}
    answers = await asyncio.gather(
        *(client.post("/api/v1/runs", json=ids, headers=headers) for _ in range(50))
    )
    created = {a.json()["id"] for a in answers if a.status_code == 201}
    assert len(created) == 1
    assert all(a.status_code in (201, 409) for a in answers)
    with psycopg.connect(runtime.settings.database.url) as conn:
        (count,) = conn.execute("SELECT count(*) FROM runs").fetchone()  # type: ignore[misc]
        (outbox,) = conn.execute("SELECT count(*) FROM outbox").fetchone()  # type: ignore[misc]
    assert (count, outbox) == (1, 1)


async def test_other_tenants_cannot_read_a_run_or_its_events(
    client: AppClient, admin: Headers, make_key: MakeKey, tmp_path: Path
) -> None:
    ids = await setup_task(client, admin, tmp_path)
    run = (await client.post("/api/v1/runs", json=ids, headers=admin)).json()
    other = await make_key(Role.ADMIN, tenant="other")
    for path in ("", "/events"):
        assert (
            await client.get(f"/api/v1/runs/{run['id']}{path}", headers=other)
        ).status_code == 404
    task_events = await client.get(f"/api/v1/tasks/{ids['task_id']}/events", headers=other)
    assert task_events.status_code == 404


async def test_events_of_a_task_and_an_agent_span_their_runs(
    runtime: Runtime, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    ids = await setup_task(client, admin, tmp_path)
    one = (await client.post("/api/v1/runs", json=ids, headers=admin)).json()
    two = (await client.post("/api/v1/runs", json=ids, headers=admin)).json()
    await append(runtime, one, [started()], after=1)
    by_task = (await client.get(f"/api/v1/tasks/{ids['task_id']}/events", headers=admin)).json()
    assert [(e["run_id"], e["seq"]) for e in by_task["items"]] == [
        (one["id"], 1),
        (two["id"], 1),
        (one["id"], 2),
    ]
    rest = await client.get(
        f"/api/v1/agents/{ids['agent_id']}/events",
        params={"after": by_task["items"][0]["position"]},
        headers=admin,
    )
    assert [(e["run_id"], e["seq"]) for e in rest.json()["items"]] == [
        (two["id"], 1),
        (one["id"], 2),
    ]

    after_one = await client.get(
        f"/api/v1/runs/{one['id']}/events", params={"after": 1}, headers=admin
    )
    assert [e["type"] for e in after_one.json()["items"]] == ["RunStarted"]
    projection = (await client.get(f"/api/v1/runs/{one['id']}", headers=admin)).json()
    assert projection["status"] == "running"
    assert projection["lease_owner"] == "w1"


async def read_sse(lines: AsyncIterator[str], count: int) -> list[dict[str, str]]:
    """The next `count` SSE messages that carry data (comments are heartbeats)."""
    messages: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async for line in lines:
        if line == "":
            if "data" in current:
                messages.append(current)
                if len(messages) == count:
                    return messages
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            current[name] = value.removeprefix(" ")
    return messages


async def test_sse_streams_stored_events_live_and_resumes_after_last_event_id(
    runtime: Runtime, live_server: str, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    ids = await setup_task(client, admin, tmp_path)
    run = (await client.post("/api/v1/runs", json=ids, headers=admin)).json()
    url = f"{live_server}/api/v1/runs/{run['id']}/events/stream"

    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream("GET", url, headers=admin) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.aiter_lines()
            (backlog,) = await read_sse(lines, 1)
            assert (backlog["id"], backlog["event"]) == ("1", "RunRequested")
            await append(runtime, run, [started()], after=1)
            (live,) = await read_sse(lines, 1)
            assert (live["id"], live["event"]) == ("2", "RunStarted")
            assert json.loads(live["data"])["data"]["worker"] == "w1"

        # A reconnect with Last-Event-ID gets only what came after it, then the end.
        await append(runtime, run, [RunCompleted(summary="done")], after=2)
        async with http.stream("GET", url, headers={**admin, "Last-Event-ID": "2"}) as response:
            body = (await response.aread()).decode()
    assert "id: 3" in body
    assert "id: 1\n" not in body
    assert "id: 2\n" not in body
    assert "RunCompleted" in body


async def test_sse_heartbeats_while_idle_and_404_for_unknown_runs(
    live_server: str, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    ids = await setup_task(client, admin, tmp_path)
    run = (await client.post("/api/v1/runs", json=ids, headers=admin)).json()
    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream(
            "GET", f"{live_server}/api/v1/runs/{run['id']}/events/stream", headers=admin
        ) as response:
            seen: list[str] = []
            async for line in response.aiter_lines():
                seen.append(line)
                if line.startswith(":"):
                    break
        assert any(line.startswith(":") for line in seen)
        # A heartbeat is a comment only: an empty `data:` would be an empty message.
        assert "data: " not in seen
        missing = await http.get(
            f"{live_server}/api/v1/runs/{uuid.uuid4()}/events/stream", headers=admin
        )
        assert missing.status_code == 404


async def test_a_websocket_carries_the_same_events(
    runtime: Runtime, live_server: str, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    ids = await setup_task(client, admin, tmp_path)
    run = (await client.post("/api/v1/runs", json=ids, headers=admin)).json()
    ws_url = live_server.replace("http", "ws") + f"/api/v1/runs/{run['id']}/events/ws"
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url, headers=admin) as ws:
            first = await ws.receive_json(timeout=5)
            assert (first["type"], first["event"]["seq"]) == ("event", 1)
            await append(runtime, run, [started(), RunCompleted(summary="ok")], after=1)
            received = []
            while len(received) < 2:
                message = await ws.receive_json(timeout=5)
                if message["type"] == "event":
                    received.append(message["event"]["type"])
            assert received == ["RunStarted", "RunCompleted"]
            closing = await ws.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)

        with pytest.raises(aiohttp.WSServerHandshakeError):
            async with session.ws_connect(ws_url):
                pass


async def test_the_tenant_stream_carries_run_status_changes(
    runtime: Runtime, live_server: str, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    ids = await setup_task(client, admin, tmp_path)
    run = (await client.post("/api/v1/runs", json=ids, headers=admin)).json()
    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream(
            "GET", f"{live_server}/api/v1/events/stream", headers=admin
        ) as response:
            await asyncio.sleep(0.2)  # subscribed before the change
            await append(runtime, run, [started()], after=1)
            (change,) = await read_sse(response.aiter_lines(), 1)
    assert change["event"] == "status"
    body = json.loads(change["data"])
    assert (body["entity"], body["status"]) == ("run", "running")
    assert run["id"] in (body["entity_id"], body["run_id"])


async def test_secrets_never_reach_the_event_log(
    runtime: Runtime, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    runtime.services.secrets.set("DEPLOY_TOKEN", "tok-9f8e7d6c5b4a")
    ids = await setup_task(client, admin, tmp_path)
    run = await client.post(
        "/api/v1/runs",
        json={
            **ids,
            # Free text in a run's overrides: a deny rule's reason.
            "policy_overrides": {
                "rules": {
                    "deny": [{"rule": "Bash(deploy:*)", "reason": "use tok-9f8e7d6c5b4a to deploy"}]
                }
            },
        },
        headers=admin,
    )
    assert run.status_code == 201
    with psycopg.connect(runtime.settings.database.url) as conn:
        (payload,) = conn.execute("SELECT payload::text FROM run_events").fetchone()  # type: ignore[misc]
    assert "tok-9f8e7d6c5b4a" not in payload
    assert "use [REDACTED] to deploy" in payload


async def test_the_tenant_stream_carries_task_status_changes(
    live_server: str, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    ids = await setup_task(client, admin, tmp_path)
    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream(
            "GET", f"{live_server}/api/v1/events/stream", headers=admin
        ) as response:
            await asyncio.sleep(0.2)
            done = await client.patch(
                f"/api/v1/tasks/{ids['task_id']}",
                json={"version": 1, "status": "done"},
                headers=admin,
            )
            assert done.status_code == 200
            (change,) = await read_sse(response.aiter_lines(), 1)
    body = json.loads(change["data"])
    assert (body["entity"], body["entity_id"], body["status"]) == ("task", ids["task_id"], "done")
