"""A running CodeForge (real PostgreSQL, real git) behind an in-process HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from codeforge.container import Container
from codeforge.domain.keys import Role
from codeforge.http.app import create_app
from codeforge.runtime import Runtime
from codeforge.settings import (
    AgentSettings,
    ApiSettings,
    ContextSettings,
    DatabaseSettings,
    RateLimitSettings,
    SandboxSettings,
    Settings,
)
from tests.support.app_client import AppClient

Headers = dict[str, str]
MakeKey = Callable[..., Awaitable[Headers]]


def api_settings(url: str, data_dir: Path, **overrides: object) -> Settings:
    fields: dict[str, object] = {
        "data_dir": str(data_dir),
        "database": DatabaseSettings(url=url),
        # Tests fire many requests from one address; limits have their own tests.
        "rate_limit": RateLimitSettings(enabled=False),
        "api": ApiSettings(stream_heartbeat=0.5, idempotency_wait=5.0),
    }
    fields.update(overrides)
    return Settings(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def runtime(
    request: pytest.FixtureRequest, make_database: Callable[[], str], tmp_path: Path
) -> AsyncIterator[Runtime]:
    """The API without a worker: runs wait in `requested` unless a test executes them.

    Tests marked `executing` get CodeForge with its in-process worker instead (the
    native agent, the mount sandbox, a short stall window and wall time)."""
    if request.node.get_closest_marker("executing") is not None:
        settings = api_settings(
            make_database(),
            tmp_path / "data",
            sandbox=SandboxSettings(kind="mount"),
            agent=AgentSettings(stall_window=2, default_wall_seconds=60),
            # No embedding model for runs' prompts: loading one costs seconds of CPU per
            # runtime, and keyword, repo map and graph signals are what these tests read.
            context=ContextSettings(embeddings="none"),
        )
        runtime = Runtime(Container(settings=settings))
        await runtime.start()
    else:
        runtime = Runtime(Container(settings=api_settings(make_database(), tmp_path / "data")))
        await runtime.start(with_worker=False)
    yield runtime
    await runtime.stop("test finished")


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[AppClient]:
    async with AppClient(app=create_app(runtime)) as client:
        yield client


@pytest.fixture
def admin(runtime: Runtime) -> Headers:
    assert runtime.admin_key_file is not None
    return {"Authorization": f"Bearer {runtime.admin_key_file.read_text().strip()}"}


@pytest.fixture
def make_key(runtime: Runtime) -> MakeKey:
    async def make(role: Role = Role.MEMBER, tenant: str = "default") -> Headers:
        issued = await runtime.services.api_keys.create_for_tenant_name(
            name=f"{role.value} key", role=role, tenant=tenant
        )
        return {"Authorization": f"Bearer {issued.secret}"}

    return make


@contextlib.asynccontextmanager
async def serving(runtime: Runtime) -> AsyncIterator[str]:
    """The app on a real uvicorn socket in this event loop (for SSE and WebSockets)."""
    import uvicorn

    from tests.support.processes import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime), host="127.0.0.1", port=port, log_config=None, lifespan="on"
        )
    )
    # The test owns the signals, not uvicorn.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def live_server(runtime: Runtime) -> AsyncIterator[str]:
    async with serving(runtime) as url:
        yield url
