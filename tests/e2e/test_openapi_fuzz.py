"""Every operation of the OpenAPI schema, fuzzed against a real server.

No 5xx, and every answer as documented.

Schemathesis reads `/schema/openapi.json` from a real uvicorn server on
127.0.0.1 (in a thread of this process, with its own event loop, on a fresh
migrated database, rate limits off) and sends each operation generated
requests — valid ones (half of them aimed at objects that exist, so bodies of
200s get checked too) and invalid ones — with the admin key. Each response
must not be a 5xx and must conform to the schema: a documented status code,
the documented content type, a body matching the documented schema, the
documented headers.

The streaming endpoints (SSE and the websocket) never end a response, so they
are not fuzzed here; they have tests of their own.

Bounded: `EXAMPLES` per operation and `BUDGET_SECONDS` for the whole module.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from codeforge.container import Container
from codeforge.http.app import create_app
from codeforge.runtime import Runtime
from codeforge.settings import ApiSettings, DatabaseSettings, RateLimitSettings, Settings
from tests.support.repos import make_repo

# Deeper runs by hand: CODEFORGE_FUZZ_EXAMPLES=300 CODEFORGE_FUZZ_BUDGET=1800 pytest ...
EXAMPLES = int(os.environ.get("CODEFORGE_FUZZ_EXAMPLES", "30"))
BUDGET_SECONDS = float(os.environ.get("CODEFORGE_FUZZ_BUDGET", "120"))
SCHEMA_PATH = "/schema/openapi.json"
# Responses that never end: Server-Sent Events, and the websocket (not in the schema).
STREAMING = {
    ("GET", "/api/v1/runs/{run_id}/events/stream"),
    ("GET", "/api/v1/events/stream"),
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def _operations() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation; the app builds its schema without a database."""
    app = create_app(Runtime(Container(settings=Settings())))
    paths = app.openapi_schema.to_schema()["paths"]
    methods = {"get", "put", "post", "patch", "delete"}
    return [
        (method.upper(), path)
        for path, item in paths.items()
        for method in item
        if method in methods and (method.upper(), path) not in STREAMING
    ]


OPERATIONS = _operations()


# -- the server -------------------------------------------------------------------


class ServerThread:
    """CodeForge behind uvicorn, in a thread with an event loop of its own."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.admin_key = ""
        self._server: uvicorn.Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fuzz-server", daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(timeout=90) or self._error is not None:
            raise RuntimeError("the server did not start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout=60)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        runtime = Runtime(Container(settings=self._settings))
        try:
            await runtime.start(with_worker=False)
            assert runtime.admin_key_file is not None
            self.admin_key = runtime.admin_key_file.read_text().strip()
            config = uvicorn.Config(
                create_app(runtime), log_config=None, access_log=False, lifespan="on"
            )
            self._server = uvicorn.Server(config)
            serving = asyncio.create_task(self._server.serve(sockets=[self._sock]))
            # uvicorn says it is listening only through this flag.
            while not self._server.started and not serving.done():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            self._ready.set()
            await serving
        finally:
            await runtime.stop("fuzz finished")


@pytest.fixture(scope="module")
def server(
    make_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerThread]:
    data = tmp_path_factory.mktemp("fuzz")
    settings = Settings(
        data_dir=str(data / "data"),
        database=DatabaseSettings(url=make_database()),
        # Thousands of requests from one address; rate limits have tests of their own.
        rate_limit=RateLimitSettings(enabled=False),
        api=ApiSettings(stream_heartbeat=0.5, idempotency_wait=2.0),
    )
    with ServerThread(settings) as running:
        yield running


@pytest.fixture(scope="module")
def auth(server: ServerThread) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.admin_key}"}


@pytest.fixture(scope="module")
def known_ids(
    server: ServerThread, auth: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """One object of each kind, so generated requests can also name something that exists."""
    repo = make_repo(tmp_path_factory.mktemp("fuzz-repo") / "repo")
    with httpx.Client(base_url=server.base_url, headers=auth, timeout=30) as http:

        def create(path: str, body: dict[str, Any]) -> str:
            response = http.post(path, json=body)
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

        model = create("/api/v1/models", {"name": "fuzz-model", "base_url": "http://127.0.0.1:9"})
        project = create("/api/v1/projects", {"name": "fuzz-project", "source": str(repo)})
        task = create(
            "/api/v1/tasks", {"project_id": project, "title": "fuzz", "prompt": "do things"}
        )
        agent = create("/api/v1/agents", {"name": "fuzz-agent", "model": "fuzz-model"})
        run = create("/api/v1/runs", {"task_id": task, "agent_id": agent})
        key = http.post("/api/v1/keys", json={"name": "fuzz key"}).json()["key"]["id"]
    return {
        "model_id": model,
        "project_id": project,
        "task_id": task,
        "agent_id": agent,
        "run_id": run,
        "key_id": str(key),
    }


@pytest.fixture(scope="module")
def api_schema(server: ServerThread) -> Any:
    return schemathesis.openapi.from_url(server.base_url + SCHEMA_PATH, timeout=30)


@pytest.fixture(scope="module")
def deadline() -> float:
    return time.monotonic() + BUDGET_SECONDS


# -- the fuzzing ------------------------------------------------------------------


def _strategy(operation: Any, method: str, known: dict[str, str]) -> Any:
    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    path_names = {p.name for p in operation.path_parameters}
    # Deleting the shared objects would turn every later request into a 404.
    if path_names and path_names <= known.keys() and method != "DELETE":
        strategies.append(
            operation.as_strategy(
                GenerationMode.POSITIVE, path_parameters={n: known[n] for n in path_names}
            )
        )
    with contextlib.suppress(Exception):
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    return st.one_of(strategies)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_an_operation_answers_as_documented_and_never_with_a_server_error(
    method: str,
    path: str,
    server: ServerThread,
    api_schema: Any,
    auth: dict[str, str],
    known_ids: dict[str, str],
    deadline: float,
) -> None:
    if time.monotonic() > deadline:
        pytest.skip(f"the fuzzing budget of {BUDGET_SECONDS:g} s is spent")
    operation = api_schema[path][method]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(operation, method, known_ids))
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call(base_url=server.base_url, headers=auth, timeout=30)
        case.validate_response(response, checks=CHECKS, headers=auth)

    fuzz()
