"""GET /api/v1/runs/{id} answers from memory, and never with a run older than a change.

Each test first reads the run twice, so that the second read came from memory (the
cache's hit count says so), then changes it and reads again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from adapters.postgres.event_store import PostgresEventStore
from codeforge.domain.events import RunStarted
from codeforge.domain.keys import Role
from codeforge.ports.events import EventContext
from codeforge.runtime import Runtime
from codeforge.services.run_cache import RunCache
from tests.e2e.conftest import Headers, MakeKey
from tests.e2e.test_api_runs import setup_task
from tests.support.app_client import AppClient

# How soon another process's change must show: the feed's NOTIFY takes milliseconds;
# the cache's max_age (10 s) is far beyond it.
ELSEWHERE_BOUND = 1.0


@pytest.fixture
async def elsewhere(runtime: Runtime) -> AsyncIterator[PostgresEventStore]:
    """The event store as another CodeForge process has it: a pool of its own."""
    url = runtime.settings.database.url
    async with AsyncConnectionPool(url, min_size=1, max_size=2, open=False) as pool:
        await pool.open(wait=True)
        yield PostgresEventStore(pool)


async def cache_of(runtime: Runtime) -> RunCache:
    return (await runtime.container.event_store()).cache  # type: ignore[no-any-return]


async def read_twice(client: AppClient, headers: Headers, run_id: str) -> dict[str, Any]:
    for _ in range(2):
        response = await client.get(f"/api/v1/runs/{run_id}", headers=headers)
        assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_a_run_changed_through_the_api_is_read_back_changed_at_once(
    runtime: Runtime, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    cache = await cache_of(runtime)
    ids = await setup_task(client, admin, tmp_path)
    run = (await client.post("/api/v1/runs", json=ids, headers=admin)).json()
    hits = cache.hits
    assert (await read_twice(client, admin, run["id"]))["status"] == "requested"
    assert cache.hits > hits

    cancelled = await client.post(f"/api/v1/runs/{run['id']}/cancel", headers=admin)
    assert cancelled.status_code == 202

    after = (await client.get(f"/api/v1/runs/{run['id']}", headers=admin)).json()
    assert after["status"] == "cancelled"
    assert after["last_seq"] == cancelled.json()["last_seq"]


async def test_a_run_appended_to_through_the_container_store_is_read_back_at_once(
    runtime: Runtime, client: AppClient, admin: Headers, tmp_path: Path
) -> None:
    ids = await setup_task(client, admin, tmp_path)
    run = (await client.post("/api/v1/runs", json=ids, headers=admin)).json()
    await read_twice(client, admin, run["id"])
    store = await runtime.container.event_store()

    await store.append(
        uuid.UUID(run["id"]),
        [RunStarted(worker="w1", lease_expires_at=datetime.now(UTC) + timedelta(minutes=2))],
        expected_seq=1,
        context=EventContext(tenant_id=uuid.UUID(run["tenant_id"])),
    )

    after = (await client.get(f"/api/v1/runs/{run['id']}", headers=admin)).json()
    assert (after["status"], after["last_seq"]) == ("running", 2)


async def test_a_run_changed_by_another_process_is_read_changed_within_a_second(
    runtime: Runtime,
    client: AppClient,
    admin: Headers,
    tmp_path: Path,
    elsewhere: PostgresEventStore,
) -> None:
    cache = await cache_of(runtime)
    ids = await setup_task(client, admin, tmp_path)
    run = (await client.post("/api/v1/runs", json=ids, headers=admin)).json()
    hits = cache.hits
    await read_twice(client, admin, run["id"])
    assert cache.hits > hits

    await elsewhere.append(
        uuid.UUID(run["id"]),
        [RunStarted(worker="w2", lease_expires_at=datetime.now(UTC) + timedelta(minutes=2))],
        expected_seq=1,
        context=EventContext(tenant_id=uuid.UUID(run["tenant_id"])),
    )
    appended = time.monotonic()
    while True:
        body = (await client.get(f"/api/v1/runs/{run['id']}", headers=admin)).json()
        if body["last_seq"] == 2:
            break
        assert time.monotonic() - appended < ELSEWHERE_BOUND, "the change was not seen in time"
        await asyncio.sleep(0.005)
    assert body["status"] == "running"


async def test_another_tenant_never_reads_a_run_held_in_memory(
    runtime: Runtime, client: AppClient, admin: Headers, make_key: MakeKey, tmp_path: Path
) -> None:
    ids = await setup_task(client, admin, tmp_path)
    run = (await client.post("/api/v1/runs", json=ids, headers=admin)).json()
    await read_twice(client, admin, run["id"])
    other = await make_key(Role.ADMIN, tenant="other")

    for _ in range(3):
        response = await client.get(f"/api/v1/runs/{run['id']}", headers=other)
        assert response.status_code == 404
    assert (await client.get(f"/api/v1/runs/{run['id']}", headers=admin)).status_code == 200
