"""What the benchmarks share: servers in processes of their own, a load generator, the figures.

Servers run as separate processes (CodeForge as the real `codeforge serve`, the
baseline as a bare Litestar app under the same uvicorn settings), so the load
generator in the test process never competes with them for the GIL — only for
the machine's cores, which the figures say how busy they kept.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from adapters.postgres.pool import open_pool
from codeforge.settings import PoolSettings
from tests.support.processes import CODEFORGE, codeforge_env, free_port
from tests.support.repos import make_repo

HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The baseline: Litestar's JSON path with nothing of CodeForge's (no middleware,
# guards, database or logging), served by uvicorn exactly as codeforge.serve
# serves CodeForge. It answers GET /bare/{uuid} with the JSON object in argv[2].
BARE_SERVER = """
import json, sys, uuid
import uvicorn
from litestar import Litestar, get

BODY = json.loads(sys.argv[2])

@get("/bare/{item_id:uuid}")
async def bare(item_id: uuid.UUID) -> dict:
    return BODY

@get("/health")
async def health() -> dict:
    return {"status": "ok"}

app = Litestar([bare, health], openapi_config=None, logging_config=None, debug=False)
uvicorn.Server(uvicorn.Config(
    app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False,
    server_header=False, lifespan="on", timeout_graceful_shutdown=10,
)).run()
"""


# -- servers ----------------------------------------------------------------------


class ServerProcess:
    """A server process whose output goes to a file; stopped with SIGTERM."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, port: int) -> None:
        self.port = port
        self.base_url = f"http://{HOST}:{port}"
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_until_up(self, path: str = "/health", timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.base_url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.base_url}{path} did not answer in {timeout:g} s")

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class CodeforgeServer:
    process: ServerProcess
    database_url: str
    headers: dict[str, str]

    @property
    def base_url(self) -> str:
        return self.process.base_url


@pytest.fixture
def codeforge_server(make_database: Callable[[], str], tmp_path: Path) -> Iterator[CodeforgeServer]:
    """`codeforge serve` on a fresh database, rate limits off, logging as shipped (info, JSON)."""
    url = make_database()
    data = tmp_path / "data"
    port = free_port()
    env = codeforge_env(
        CODEFORGE_DATABASE__URL=url,
        CODEFORGE_DATA_DIR=str(data),
        CODEFORGE_HTTP__PORT=str(port),
        CODEFORGE_RATE_LIMIT__ENABLED="false",
    )
    process = ServerProcess([CODEFORGE, "serve"], env, tmp_path / "codeforge.log", port)
    try:
        process.wait_until_up()
        key = (data / "admin-key").read_text().strip()
        yield CodeforgeServer(process, url, {"Authorization": f"Bearer {key}"})
    finally:
        process.stop()


@pytest.fixture
def start_bare_server(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], ServerProcess]]:
    """Start the baseline server answering with `body`."""
    started: list[ServerProcess] = []

    def start(body: dict[str, Any]) -> ServerProcess:
        port = free_port()
        args = [sys.executable, "-c", BARE_SERVER, str(port), json.dumps(body)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = ServerProcess(args, env, tmp_path / f"bare-{port}.log", port)
        started.append(process)
        process.wait_until_up()
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
async def server_pool(codeforge_server: CodeforgeServer) -> AsyncIterator[AsyncConnectionPool]:
    """A pool of the test process on the server's database (to append as a worker would)."""
    async for pool in open_pool(
        codeforge_server.database_url, PoolSettings(min_size=1, max_size=4)
    ):
        yield pool


async def seed_run(server: CodeforgeServer, repo_dir: Path) -> dict[str, Any]:
    """A run created through the API (model, project, task, agent, run); its JSON."""
    repo = make_repo(repo_dir)
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=server.headers, timeout=30
    ) as http:

        async def create(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = await http.post(path, json=body)
            assert response.status_code == 201, response.text
            created: dict[str, Any] = response.json()
            return created

        await create("/api/v1/models", {"name": "bench-model", "base_url": "http://127.0.0.1:9"})
        project = await create("/api/v1/projects", {"name": "bench", "source": str(repo)})
        task = await create(
            "/api/v1/tasks", {"project_id": project["id"], "title": "bench", "prompt": "go"}
        )
        agent = await create("/api/v1/agents", {"name": "bench-agent", "model": "bench-model"})
        return await create("/api/v1/runs", {"task_id": task["id"], "agent_id": agent["id"]})


# -- load -------------------------------------------------------------------------


@dataclass
class LoadResult:
    requests: int
    failures: int
    seconds: float
    server_cpu: float
    latencies: list[float] = field(repr=False)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def server_cpu_share(self) -> float:
        """Of one core, how much the server process used while under load."""
        return self.server_cpu / self.seconds

    def latency_ms(self, quantile: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


async def load(
    server: ServerProcess,
    path: str,
    headers: dict[str, str],
    *,
    connections: int,
    seconds: float,
    warmup: float = 1.0,
) -> LoadResult:
    """GET `path` over `connections` keep-alive connections for `seconds` (after a warm-up).

    A minimal HTTP/1.1 client on asyncio streams, one request in flight per
    connection: it costs far less CPU per request than a general-purpose client,
    so the servers, not the generator, set the pace.
    """
    head = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{server.port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (head + "\r\n").encode()
    counting = False
    stop = False
    done = 0
    failures = 0
    latencies: list[float] = []

    async def connection() -> None:
        nonlocal done, failures
        reader, writer = await asyncio.open_connection(HOST, server.port)
        try:
            while not stop:
                started = time.perf_counter()
                writer.write(request)
                response_head = await reader.readuntil(b"\r\n\r\n")
                length = _content_length(response_head)
                await reader.readexactly(length)
                if counting:
                    done += 1
                    latencies.append(time.perf_counter() - started)
                    if response_head[9:12] != b"200":
                        failures += 1
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    await asyncio.sleep(warmup)
    counting = True
    cpu_before = server.cpu_seconds()
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    counting = False
    elapsed = time.perf_counter() - started
    cpu = server.cpu_seconds() - cpu_before
    stop = True
    await asyncio.gather(*workers)
    return LoadResult(done, failures, elapsed, cpu, latencies)


def _content_length(head: bytes) -> int:
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    raise AssertionError(f"a response without Content-Length: {head!r}")


# -- figures ----------------------------------------------------------------------


def report(title: str, **figures: object) -> None:
    """Print one benchmark's figures (make bench runs with -s), one per line."""
    print(f"\n=== {title}")
    for name, value in figures.items():
        shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
        print(f"  {name.replace('_', ' ')}: {shown}")


def require(goal_met: bool, message: str) -> None:
    """Fail the benchmark with just `message` (its figures are already printed)."""
    if not goal_met:
        pytest.fail(f"goal missed: {message}", pytrace=False)


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))]
