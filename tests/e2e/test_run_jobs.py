"""A started run reaches the queue through the outbox, even across a queue outage."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import psycopg

from codeforge.domain.commands import StartRun
from codeforge.ports.queue import Message
from codeforge.runtime import Runtime
from tests.e2e.conftest import Headers
from tests.e2e.test_api_runs import setup_task
from tests.support.app_client import AppClient


def published_at(url: str, run_id: str) -> list[object]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT published_at FROM outbox WHERE payload->>'run_id' = %s", (run_id,)
        ).fetchall()
    return [r[0] for r in rows]


async def test_a_started_run_is_published_as_a_start_job_and_marked_sent(
    runtime: Runtime, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    queue = await runtime.container.queue()
    received: asyncio.Queue[Message[StartRun]] = asyncio.Queue()

    async def handle(message: Message[StartRun]) -> None:
        await received.put(message)

    subscription = await queue.subscribe("runs.start", handle, mode="work_queue")
    try:
        ids = await setup_task(client, admin, tmp_path)
        run = await client.post(
            "/api/v1/runs", json=ids, headers={**admin, "X-Request-ID": "job-1"}
        )
        assert run.status_code == 201
        message = await asyncio.wait_for(received.get(), 5)
    finally:
        await subscription.stop()
    assert message.payload == StartRun(
        run_id=uuid.UUID(run.json()["id"]), tenant_id=uuid.UUID(run.json()["tenant_id"])
    )
    assert message.request_id == "job-1"
    url = runtime.settings.database.url
    for _ in range(50):
        if all(published_at(url, run.json()["id"])):
            break
        await asyncio.sleep(0.05)
    assert all(published_at(url, run.json()["id"]))


async def test_readiness_reports_the_queue_and_its_breaker(
    runtime: Runtime, client: AppClient
) -> None:
    body = (await client.get("/health/ready")).json()
    assert body["checks"]["queue"]["status"] == "up"
    assert body["checks"]["queue"]["detail"] == "connected; publish breaker closed"

    breaker = runtime.container.publish_breaker()
    failing = breaker.snapshot().failure_threshold

    async def outage() -> None:
        from codeforge.ports.queue import QueueUnavailable

        raise QueueUnavailable("down")

    for _ in range(failing):
        with contextlib.suppress(Exception):
            await breaker.call(outage)
    body = (await client.get("/health/ready")).json()
    assert body["status"] == "unavailable"
    assert "circuit breaker" in body["checks"]["queue"]["error"]


async def test_a_queue_outage_delays_jobs_and_never_loses_them(
    runtime: Runtime, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    queue = await runtime.container.queue()
    relay = await runtime.container.outbox_relay()
    await relay.stop()  # the test drives the relay by hand
    ids = await setup_task(client, admin, tmp_path)
    run_id = (await client.post("/api/v1/runs", json=ids, headers=admin)).json()["id"]

    real_publish = queue.publish

    async def broken(*args: object, **kwargs: object) -> None:
        from codeforge.ports.queue import QueueUnavailable

        raise QueueUnavailable("the broker is down")

    queue.publish = broken  # type: ignore[method-assign]
    try:
        assert await relay.relay_once() == 0
    finally:
        queue.publish = real_publish  # type: ignore[method-assign]
    url = runtime.settings.database.url
    assert published_at(url, run_id) == [None]

    # After its back-off the entry is claimed again and goes out.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE outbox SET claimed_until = now() - interval '1 second'")
    received: list[Message[StartRun]] = []

    async def handle(message: Message[StartRun]) -> None:
        received.append(message)

    subscription = await queue.subscribe("runs.start", handle, mode="work_queue")
    try:
        assert await relay.relay_once() == 1
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.02)
    finally:
        await subscription.stop()
    assert [str(m.payload.run_id) for m in received] == [run_id]
    assert published_at(url, run_id) != [None]


async def test_a_policy_demanding_isolation_without_it_is_reported_at_start(
    make_database: object, tmp_path: Path
) -> None:
    from codeforge.container import Container
    from codeforge.http.app import create_app
    from codeforge.settings import SandboxSettings
    from tests.e2e.conftest import api_settings

    settings = api_settings(
        make_database(),  # type: ignore[operator]
        tmp_path / "data",
        sandbox=SandboxSettings(kind="mount", require_isolation=True),
    )
    runtime = Runtime(Container(settings=settings))
    await runtime.start()
    try:
        async with AppClient(app=create_app(runtime)) as client:
            ready = await client.get("/health/ready")
        assert ready.status_code == 503
        sandbox = ready.json()["checks"]["sandbox"]
        assert sandbox["status"] == "down"
        assert "install bubblewrap" in sandbox["error"]
    finally:
        await runtime.stop()


async def test_a_started_run_is_taken_by_the_worker_and_executed_once(
    make_database: object, tmp_path: Path
) -> None:
    from dependency_injector import providers

    from codeforge.container import Container
    from codeforge.http.app import create_app
    from tests.e2e.conftest import api_settings
    from tests.integration.test_run_worker import ScriptedAgent

    agent = ScriptedAgent()
    agent.finish.set()
    container = Container(settings=api_settings(make_database(), tmp_path / "data"))  # type: ignore[operator]
    container.run_executor.override(providers.Object(agent))
    runtime = Runtime(container)
    await runtime.start()
    try:
        assert runtime.admin_key_file is not None
        admin = {"Authorization": f"Bearer {runtime.admin_key_file.read_text().strip()}"}
        async with AppClient(app=create_app(runtime)) as client:
            ids = await setup_task(client, admin, tmp_path)
            run = (await client.post("/api/v1/runs", json=ids, headers=admin)).json()
            for _ in range(100):
                current = (await client.get(f"/api/v1/runs/{run['id']}", headers=admin)).json()
                if current["status"] == "succeeded":
                    break
                await asyncio.sleep(0.05)
            assert current["status"] == "succeeded"
            events = await client.get(f"/api/v1/runs/{run['id']}/events", headers=admin)
        assert [e["type"] for e in events.json()["items"]] == [
            "RunRequested",
            "RunStarted",
            "RunCompleted",
        ]
        assert agent.executions == [uuid.UUID(run["id"])]
    finally:
        await runtime.stop()


def test_codeforge_worker_refuses_the_in_process_queue(tmp_path: Path) -> None:
    from tests.support.processes import codeforge_env, run_codeforge

    result = run_codeforge(["worker"], codeforge_env(CODEFORGE_DATA_DIR=str(tmp_path)))
    assert result.returncode == 2
    assert "queue.kind: nats" in result.stderr


async def test_cancelling_a_waiting_run_ends_it_at_once_and_an_ended_one_is_409(
    runtime: Runtime, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    ids = await setup_task(client, admin, tmp_path)
    run = (await client.post("/api/v1/runs", json=ids, headers=admin)).json()
    cancelled = await client.post(
        f"/api/v1/runs/{run['id']}/cancel", json={"reason": "wrong task"}, headers=admin
    )
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["result"]["summary"] == "wrong task"
    again = await client.post(f"/api/v1/runs/{run['id']}/cancel", headers=admin)
    assert again.status_code == 409


async def test_cancelling_a_running_run_reaches_its_worker_within_a_second(
    make_database: object, tmp_path: Path
) -> None:
    from dependency_injector import providers

    from codeforge.container import Container
    from codeforge.http.app import create_app
    from tests.e2e.conftest import api_settings
    from tests.integration.test_run_worker import ScriptedAgent

    agent = ScriptedAgent()  # works until told to finish or cancelled
    container = Container(settings=api_settings(make_database(), tmp_path / "data"))  # type: ignore[operator]
    container.run_executor.override(providers.Object(agent))
    runtime = Runtime(container)
    await runtime.start()
    try:
        assert runtime.admin_key_file is not None
        admin = {"Authorization": f"Bearer {runtime.admin_key_file.read_text().strip()}"}
        async with AppClient(app=create_app(runtime)) as client:
            ids = await setup_task(client, admin, tmp_path)
            run = (await client.post("/api/v1/runs", json=ids, headers=admin)).json()
            await asyncio.wait_for(agent.started.get(), 5)
            await asyncio.sleep(0.1)  # the worker listens on the run's control subject
            loop = asyncio.get_running_loop()
            asked = loop.time()
            accepted = await client.post(f"/api/v1/runs/{run['id']}/cancel", headers=admin)
            assert accepted.status_code == 202
            assert accepted.json()["status"] == "running"
            while True:
                current = (await client.get(f"/api/v1/runs/{run['id']}", headers=admin)).json()
                if current["status"] == "cancelled" or loop.time() - asked > 1.0:
                    break
                await asyncio.sleep(0.02)
        assert current["status"] == "cancelled"
    finally:
        await runtime.stop()
