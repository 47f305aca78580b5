"""Health, readiness and request ids through the real app and real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import psycopg
import pytest

from codeforge.container import Container
from codeforge.http.app import create_app
from codeforge.runtime import Runtime
from codeforge.settings import DatabaseSettings, Settings
from tests.support.app_client import AppClient


def settings_for(url: str) -> Settings:
    return Settings(database=DatabaseSettings(url=url))


@pytest.fixture
async def runtime(make_database: Callable[[], str]) -> AsyncIterator[Runtime]:
    runtime = Runtime(Container(settings=settings_for(make_database())))
    await runtime.start()
    yield runtime
    await runtime.stop("test finished")


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[AppClient]:
    async with AppClient(app=create_app(runtime)) as client:
        yield client


async def test_liveness_answers_ok(client: AppClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_reports_the_database_with_its_latency(client: AppClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["status"] == "up"
    assert body["checks"]["database"]["latency_ms"] >= 0


async def test_readiness_turns_503_when_the_database_goes_away(
    runtime: Runtime, client: AppClient, postgres_admin_url: str
) -> None:
    url = runtime.settings.database.url
    name = url.rsplit("/", 1)[-1]
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

    response = await client.get("/health/ready")
    assert response.status_code == 503
    database = response.json()["checks"]["database"]
    assert database["status"] == "down"
    assert database["error"]
    # Liveness is about the process, not its dependencies.
    assert (await client.get("/health")).status_code == 200


async def test_a_request_id_is_generated_echoed_and_sanitised(client: AppClient) -> None:
    generated = (await client.get("/health")).headers["x-request-id"]
    assert len(generated) == 32

    kept = await client.get("/health", headers={"X-Request-ID": "trace-42.a:b"})
    assert kept.headers["x-request-id"] == "trace-42.a:b"

    hostile = await client.get("/health", headers={"X-Request-ID": "x" * 500})
    assert hostile.headers["x-request-id"] != "x" * 500
    assert len(hostile.headers["x-request-id"]) == 32


async def test_errors_are_problem_json_carrying_the_request_id(client: AppClient) -> None:
    response = await client.get("/no/such/route", headers={"X-Request-ID": "req-404"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["x-request-id"] == "req-404"
    body = response.json()
    assert body["status"] == 404
    assert body["request_id"] == "req-404"
    assert "GET /no/such/route" in body["detail"]


async def test_an_id_that_is_not_a_uuid_is_named_in_the_404(client: AppClient) -> None:
    response = await client.get("/api/v1/runs/not-a-uuid")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "/api/v1/runs/not-a-uuid" in detail
    assert "UUID" in detail


async def test_concurrent_requests_keep_their_own_request_ids(client: AppClient) -> None:
    ids = [f"req-{i}" for i in range(50)]
    responses = await asyncio.gather(
        *(client.get("/health/ready", headers={"X-Request-ID": i}) for i in ids)
    )
    assert [r.headers["x-request-id"] for r in responses] == ids


async def test_the_openapi_schema_is_served(client: AppClient) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/health/ready" in schema["paths"]
