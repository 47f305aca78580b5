"""Dead letters: recorded when the queue gives up, listed and replayed through the API.

The runtime's own queue (in-process) with a short retry delay, its own PostgreSQL, and the
`DeadLetters` service on top. The API is the full app: when the lead has wired
`DeadLetterController` into the API router it is tested as wired; until then the controller
is mounted on the same app behind the same authentication, so it is tested all the same.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, Router
from litestar.di import Provide

from adapters.memory.queue import MemoryQueue
from adapters.postgres.dead_letters import PostgresDeadLetterStore
from codeforge.container import Container
from codeforge.domain.commands import StartRun
from codeforge.domain.keys import Principal, Role
from codeforge.http.api.dead_letters import DeadLetterController
from codeforge.http.api.params import principal_of
from codeforge.http.app import create_app
from codeforge.http.security import Authentication, authentication_middleware
from codeforge.ports.dead_letters import DeadLetterStore, StoredDeadLetter
from codeforge.ports.queue import DeadLetter, Message
from codeforge.runtime import Runtime
from codeforge.services.dead_letters import DeadLetters
from codeforge.settings import QueueSettings
from tests.e2e.conftest import Headers, MakeKey, api_settings
from tests.support.app_client import AppClient

DLQ_PATH = "/api/v1/admin/dlq"


@pytest.fixture
async def runtime(make_database: Callable[[], str], tmp_path: Path) -> AsyncIterator[Runtime]:
    # Retries 50 ms apart, so a message is dead-lettered within a fraction of a second.
    settings = api_settings(
        make_database(), tmp_path / "data", queue=QueueSettings(retry_delay=0.05)
    )
    runtime = Runtime(Container(settings=settings))
    await runtime.start(with_worker=False)
    yield runtime
    await runtime.stop("test finished")


@pytest.fixture
async def queue(runtime: Runtime) -> MemoryQueue:
    queue = await runtime.container.queue()
    assert isinstance(queue, MemoryQueue)
    return queue


@pytest.fixture
async def store(runtime: Runtime) -> DeadLetterStore:
    return PostgresDeadLetterStore(await runtime.container.db_pool())


@pytest.fixture
async def dead_letters(
    runtime: Runtime, queue: MemoryQueue, store: DeadLetterStore
) -> AsyncIterator[DeadLetters]:
    wired = getattr(runtime.services, "dead_letters", None)
    if isinstance(wired, DeadLetters):
        yield wired  # started by the runtime
        return
    service = DeadLetters(store, queue, runtime.container.subjects())
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
async def client(runtime: Runtime, dead_letters: DeadLetters) -> AsyncIterator[AppClient]:
    app = create_app(runtime)
    if DLQ_PATH not in (app.openapi_schema.paths or {}):
        _mount_controller(app, runtime, dead_letters)
    async with AppClient(app=app) as client:
        yield client


def _mount_controller(app: Litestar, runtime: Runtime, dead_letters: DeadLetters) -> None:
    """What `api_router` does for every controller: the same guard and dependencies."""

    def provide(principal: Principal) -> DeadLetters:
        return dead_letters

    app.register(
        Router(
            path="/api/v1",
            route_handlers=[DeadLetterController],
            dependencies={
                "principal": Provide(principal_of, sync_to_thread=False),
                "dead_letters": Provide(provide, sync_to_thread=False),
            },
            middleware=[
                authentication_middleware(
                    lambda: Authentication(runtime.services.api_keys, runtime.services.sessions)
                )
            ],
        )
    )


async def eventually(
    probe: Callable[[], Awaitable[list[StoredDeadLetter]]], within: float = 5.0
) -> list[StoredDeadLetter]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = await probe()
        if found or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.02)


def dead_letter(subject: str, payload: bytes, **fields: Any) -> DeadLetter:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "subject": subject,
        "payload": payload,
        "headers": {"X-Request-ID": "req-dl"},
        "reason": "handler_failed",
        "error": "RuntimeError: worker exploded",
        "attempts": 4,
        "consumer": "wq-runs_start-test",
        "failed_at": datetime.now(UTC),
    }
    values.update(fields)
    return DeadLetter(**values)


def start_run_bytes(job: StartRun) -> bytes:
    return f'{{"run_id":"{job.run_id}","tenant_id":"{job.tenant_id}"}}'.encode()


# -- recording ----------------------------------------------------------------------------


async def test_a_message_whose_handler_keeps_failing_is_recorded_after_its_retries(
    queue: MemoryQueue, store: DeadLetterStore, dead_letters: DeadLetters
) -> None:
    attempts: list[int] = []

    async def fail(message: Message[StartRun]) -> None:
        attempts.append(message.attempt)
        raise RuntimeError("worker exploded")

    job = StartRun(run_id=uuid.uuid4(), tenant_id=uuid.uuid4())
    subscription = await queue.subscribe("runs.start", fail, mode="work_queue")
    try:
        await queue.publish("runs.start", job, {"X-Request-ID": "req-7"})
        [recorded] = await eventually(lambda: _all(store))
    finally:
        await subscription.stop()

    assert attempts == [1, 2, 3, 4]
    assert recorded.subject == "runs.start"
    assert (recorded.reason, recorded.attempts) == ("handler_failed", 4)
    assert recorded.error == "RuntimeError: worker exploded"
    assert queue.registry.decode("runs.start", recorded.payload) == job
    assert recorded.headers == {"X-Request-ID": "req-7"}
    assert (recorded.replayed_at, recorded.replay_count) == (None, 0)


async def test_an_invalid_payload_is_recorded_at_once_without_reaching_the_handler(
    queue: MemoryQueue, store: DeadLetterStore, dead_letters: DeadLetters
) -> None:
    handled: list[Message[StartRun]] = []

    async def handle(message: Message[StartRun]) -> None:
        handled.append(message)

    subscription = await queue.subscribe("runs.start", handle, mode="work_queue")
    try:
        # A publisher on another schema: the adapter's raw publish skips the registry's check.
        queue.broker.publish("runs.start", b'{"job": 1, "\xff"}', {}, "work_queue")
        [recorded] = await eventually(lambda: _all(store))
    finally:
        await subscription.stop()

    assert handled == []
    assert (recorded.reason, recorded.attempts) == ("invalid_payload", 1)
    assert recorded.payload == b'{"job": 1, "\xff"}'
    assert "StartRun" in recorded.error


async def test_dead_letters_waiting_before_the_recorder_starts_are_recorded_when_it_does(
    runtime: Runtime, queue: MemoryQueue, store: DeadLetterStore
) -> None:
    waiting = dead_letter("runs.start", b"{}")
    await queue.publish("runs.start.dlq", waiting)
    service = DeadLetters(store, queue, runtime.container.subjects())

    await service.start()
    try:
        recorded = await eventually(lambda: _all(store))
    finally:
        await service.stop()

    assert [x.letter for x in recorded] == [waiting]


async def _all(store: DeadLetterStore) -> list[StoredDeadLetter]:
    return (await store.list(limit=200)).items


# -- the API ------------------------------------------------------------------------------


async def test_admins_list_get_and_page_dead_letters_with_the_payload_as_text_and_base64(
    client: AppClient, admin: Headers, store: DeadLetterStore
) -> None:
    job = StartRun(run_id=uuid.uuid4(), tenant_id=uuid.uuid4())
    letters = [dead_letter("runs.start", start_run_bytes(job)) for _ in range(3)]
    control = dead_letter("runs.control.abc", b"\xffbinary", reason="invalid_payload", attempts=1)
    for x in [*letters, control]:
        await store.record(x, at=datetime.now(UTC))

    first = await client.get(DLQ_PATH, params={"limit": 2}, headers=admin)
    assert first.status_code == 200, first.text
    second = await client.get(
        DLQ_PATH, params={"limit": 2, "cursor": first.json()["next_cursor"]}, headers=admin
    )
    listed = [item["id"] for item in first.json()["items"] + second.json()["items"]]
    assert listed == [str(x.id) for x in [control, *reversed(letters)]]
    assert second.json()["next_cursor"] is None

    only = await client.get(DLQ_PATH, params={"subject": "runs.control.*"}, headers=admin)
    assert [item["id"] for item in only.json()["items"]] == [str(control.id)]

    one = await client.get(f"{DLQ_PATH}/{control.id}", headers=admin)
    assert one.status_code == 200
    body = one.json()
    assert body["payload_text"] == "\ufffdbinary"
    assert base64.b64decode(body["payload_base64"]) == b"\xffbinary"
    assert {k: body[k] for k in ("subject", "reason", "attempts", "replay_count")} == {
        "subject": "runs.control.abc",
        "reason": "invalid_payload",
        "attempts": 1,
        "replay_count": 0,
    }


async def test_a_replay_publishes_the_original_message_and_is_noted(
    client: AppClient, admin: Headers, queue: MemoryQueue, store: DeadLetterStore
) -> None:
    job = StartRun(run_id=uuid.uuid4(), tenant_id=uuid.uuid4())
    letter = dead_letter(
        "runs.start",
        start_run_bytes(job),
        headers={"X-Request-ID": "req-orig", "Retry-Count": "3", "X-Extra": "kept"},
    )
    await store.record(letter, at=datetime.now(UTC))
    received: asyncio.Queue[Message[StartRun]] = asyncio.Queue()

    async def handle(message: Message[StartRun]) -> None:
        await received.put(message)

    subscription = await queue.subscribe("runs.start", handle, mode="work_queue")
    try:
        replay = await client.post(f"{DLQ_PATH}/{letter.id}/replay", headers=admin)
        assert replay.status_code == 200, replay.text
        message = await asyncio.wait_for(received.get(), 5)
    finally:
        await subscription.stop()

    assert message.payload == job
    assert (message.request_id, message.retry_count) == ("req-orig", 0)
    assert message.headers.get("X-Extra") == "kept"
    assert replay.json()["replay_count"] == 1
    assert replay.json()["replayed_at"] is not None
    assert (await store.get(letter.id)).replay_count == 1


async def test_a_letter_that_can_never_be_delivered_is_not_replayed(
    client: AppClient, admin: Headers, queue: MemoryQueue, store: DeadLetterStore
) -> None:
    letter = dead_letter("runs.start", b"{not json", reason="invalid_payload", attempts=1)
    await store.record(letter, at=datetime.now(UTC))
    handled: list[Message[StartRun]] = []

    async def handle(message: Message[StartRun]) -> None:
        handled.append(message)

    subscription = await queue.subscribe("runs.start", handle, mode="work_queue")
    try:
        replay = await client.post(f"{DLQ_PATH}/{letter.id}/replay", headers=admin)
        await asyncio.sleep(0.1)
    finally:
        await subscription.stop()

    assert replay.status_code == 422
    assert "can never be delivered" in replay.json()["detail"]
    assert handled == []
    assert (await store.get(letter.id)).replay_count == 0


async def test_an_unknown_letter_is_404_and_a_foreign_cursor_is_422(
    client: AppClient, admin: Headers
) -> None:
    missing = uuid.uuid4()

    assert (await client.get(f"{DLQ_PATH}/{missing}", headers=admin)).status_code == 404
    assert (await client.post(f"{DLQ_PATH}/{missing}/replay", headers=admin)).status_code == 404
    bad = await client.get(DLQ_PATH, params={"cursor": str(missing)}, headers=admin)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "cursor"


@pytest.mark.parametrize(
    ("role", "tenant"),
    [
        (Role.MEMBER, "default"),
        (Role.VIEWER, "default"),
        # An admin, but of another tenant: dead letters hold every tenant's messages.
        (Role.ADMIN, "other-team"),
    ],
)
async def test_only_admins_of_the_default_tenant_may_see_or_replay_dead_letters(
    client: AppClient,
    make_key: MakeKey,
    store: DeadLetterStore,
    role: Role,
    tenant: str,
) -> None:
    letter = dead_letter("runs.start", b"{}")
    await store.record(letter, at=datetime.now(UTC))
    headers = await make_key(role, tenant)

    assert (await client.get(DLQ_PATH, headers=headers)).status_code == 403
    assert (await client.get(f"{DLQ_PATH}/{letter.id}", headers=headers)).status_code == 403
    replay = await client.post(f"{DLQ_PATH}/{letter.id}/replay", headers=headers)
    assert replay.status_code == 403
    assert (await store.get(letter.id)).replay_count == 0


async def test_the_dead_letter_routes_need_a_key(client: AppClient) -> None:
    assert (await client.get(DLQ_PATH)).status_code == 401
