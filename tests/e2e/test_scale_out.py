"""Scale-out: one API process and worker processes sharing NATS JetStream and PostgreSQL.

Jobs go API -> outbox -> JetStream -> a worker, each run executed exactly once; a
worker killed mid-run stops renewing its lease, the reaper (in the API process)
suspends the run and queues it again, and another worker resumes it — for the
native agent from its log and its latest checkpoint, on another host too
(ARCHITECTURE.md, "Workers, leases, control").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.nats.server import find_or_start_nats
from tests.e2e.test_agent_runs import CALC, PRICES, TEST, fix_script
from tests.support.processes import CodeforgeProcess, codeforge_env, free_port
from tests.support.repos import make_repo
from tests.support.scripted_llm import ScriptedLLM, reply

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def nats_url() -> Iterator[str]:
    url = os.environ.get("CODEFORGE_TEST_NATS_URL", "nats://127.0.0.1:4222")
    with find_or_start_nats(url) as found:
        yield found


@pytest.fixture
def cluster_env(
    nats_url: str, make_database: Callable[[], str], tmp_path: Path
) -> Iterator[dict[str, str]]:
    stream = f"CFTEST{uuid.uuid4().hex[:10].upper()}"
    yield codeforge_env(
        CODEFORGE_DATABASE__URL=make_database(),
        CODEFORGE_DATA_DIR=str(tmp_path / "data"),
        CODEFORGE_QUEUE__KIND="nats",
        CODEFORGE_QUEUE__URL=nats_url,
        CODEFORGE_QUEUE__STREAM_NAME=stream,
        CODEFORGE_QUEUE__RELAY_INTERVAL="0.2",
        CODEFORGE_FEED__KIND="nats",
        CODEFORGE_API__STREAM_HEARTBEAT="0.5",
        CODEFORGE_WORKER__LEASE_SECONDS="2",
        CODEFORGE_WORKER__HEARTBEAT_SECONDS="0.5",
        CODEFORGE_WORKER__REAPER_INTERVAL="0.5",
        CODEFORGE_RATE_LIMIT__ENABLED="false",
    )
    asyncio.run(_delete_streams(nats_url, stream))


async def _delete_streams(url: str, stream: str) -> None:
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for suffix in ("_WORK", "_FANOUT"):
            # A stream that was never created is fine.
            with contextlib.suppress(Exception):
                await js.delete_stream(stream + suffix)
    finally:
        await nc.close()


class WorkerProcess:
    def __init__(self, env: dict[str, str], agent_seconds: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.worker_main"],
            env={**env, "CODEFORGE_TEST_AGENT_SECONDS": str(agent_seconds)},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        self.worker_id = ""
        for line in self.proc.stdout:
            if '"worker ready"' in line:
                self.worker_id = line.split('"worker": "')[1].split('"')[0]
                break
            assert time.monotonic() < deadline, "the worker did not start"
        assert self.worker_id, "the worker exited before it was ready"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def started() -> Iterator[list[Any]]:
    processes: list[Any] = []
    yield processes
    for process in processes:
        process.stop()


def api(env: dict[str, str], started: list[Any]) -> tuple[str, dict[str, str]]:
    port = free_port()
    process = CodeforgeProcess(["serve", "--no-worker", "--port", str(port)], env)
    started.append(process)
    base = f"http://127.0.0.1:{port}"
    process.wait_for_http(f"{base}/health/ready")
    key = (Path(env["CODEFORGE_DATA_DIR"]) / "admin-key").read_text().strip()
    return base, {"Authorization": f"Bearer {key}"}


def seed(http: httpx.Client, repo: Path) -> dict[str, str]:
    def post(path: str, body: dict[str, Any]) -> Any:
        response = http.post(path, json=body)
        assert response.status_code == 201, response.text
        return response.json()

    post("/api/v1/models", {"name": "m", "base_url": "http://127.0.0.1:9/v1"})
    agent = post("/api/v1/agents", {"name": "a", "model": "m"})
    project = post("/api/v1/projects", {"name": "p", "source": str(make_repo(repo))})
    task = post("/api/v1/tasks", {"project_id": project["id"], "title": "t", "prompt": "p"})
    return {"task_id": task["id"], "agent_id": agent["id"]}


def read_until(lines: Iterator[str], wanted: str, timeout: float = 30) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    for line in lines:
        seen.append(line)
        if line == wanted:
            return seen
        assert time.monotonic() < deadline, f"no {wanted!r} in {seen}"
    raise AssertionError(f"the stream ended before {wanted!r}: {seen}")


def wait_until(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_jobs_spread_over_worker_processes_run_exactly_once_and_a_killed_worker_is_reaped(
    cluster_env: dict[str, str], started: list[Any], tmp_path: Path
) -> None:
    base, admin = api(cluster_env, started)
    workers = [WorkerProcess(cluster_env, 0.3) for _ in range(2)]
    started.extend(workers)
    with httpx.Client(base_url=base, headers=admin, timeout=30) as http:
        assert http.get("/health/ready").json()["checks"]["queue"]["status"] == "up"
        ids = seed(http, tmp_path / "repo")
        runs = [http.post("/api/v1/runs", json=ids).json()["id"] for _ in range(8)]

        def statuses() -> dict[str, str]:
            items = http.get("/api/v1/runs", params={"limit": 200}).json()["items"]
            return {r["id"]: r["status"] for r in items}

        wait_until(lambda: all(statuses().get(r) == "succeeded" for r in runs))
        owners = []
        for run_id in runs:
            events = http.get(f"/api/v1/runs/{run_id}/events").json()["items"]
            started_events = [e for e in events if e["type"] == "RunStarted"]
            assert len(started_events) == 1, events
            owners.append(started_events[0]["data"]["worker"])
        assert set(owners) <= {w.worker_id for w in workers}

        # A worker dies holding a run: its lease runs out, the reaper suspends the run and
        # queues it again, and the next worker resumes it.
        for w in workers:
            w.stop()
        slow = WorkerProcess(cluster_env, 60)
        started.append(slow)
        doomed = http.post("/api/v1/runs", json=ids).json()["id"]
        # The API process follows the run live: the worker's and the reaper's events reach
        # its stream through the NATS feed.
        with http.stream("GET", f"/api/v1/runs/{doomed}/events/stream") as stream:
            lines = stream.iter_lines()
            assert "event: RunStarted" in read_until(lines, "event: RunStarted")
            slow.proc.kill()
            slow.proc.wait()
            assert "event: RunSuspended" in read_until(lines, "event: RunSuspended")
            successor = WorkerProcess(cluster_env, 0.3)
            started.append(successor)
            assert "event: RunResumed" in read_until(lines, "event: RunResumed")
            assert "event: RunCompleted" in read_until(lines, "event: RunCompleted")
        events = http.get(f"/api/v1/runs/{doomed}/events").json()["items"]
        suspended = next(e for e in events if e["type"] == "RunSuspended")
        assert suspended["data"]["reason"].startswith(f"worker_lost: the lease of {slow.worker_id}")
        resumed = next(e for e in events if e["type"] == "RunResumed")
        assert resumed["data"]["worker"] == successor.worker_id
        assert http.get(f"/api/v1/runs/{doomed}").json()["attempts"] == 2


def test_a_codeforge_worker_on_another_host_runs_the_agent_and_the_api_serves_the_result(
    cluster_env: dict[str, str], started: list[Any], tmp_path: Path, scripted_llm: ScriptedLLM
) -> None:
    """`serve --no-worker` takes the run; a `codeforge worker` with a data dir of its own
    (as on another machine: it clones the project from its source) executes the native
    agent against the scripted model; the API streams its events and serves its patch."""
    base, admin = api(cluster_env, started)
    worker_env = {
        **cluster_env,
        "CODEFORGE_DATA_DIR": str(tmp_path / "other-host"),
        "CODEFORGE_SANDBOX__KIND": "mount",
    }
    worker = CodeforgeProcess(["worker"], worker_env)
    started.append(worker)
    worker.wait_for_message("worker started", timeout=60)
    fix_script(scripted_llm)
    with httpx.Client(base_url=base, headers=admin, timeout=30) as http:

        def post(path: str, body: dict[str, Any]) -> Any:
            response = http.post(path, json=body)
            assert response.status_code == 201, response.text
            return response.json()

        post("/api/v1/models", {"name": "s", "base_url": scripted_llm.base_url, **PRICES})
        agent = post("/api/v1/agents", {"name": "a", "model": "s"})
        source = make_repo(tmp_path / "user", {"calc.py": CALC, "test_calc.py": TEST})
        project = post("/api/v1/projects", {"name": "calc", "source": str(source)})
        task = post(
            "/api/v1/tasks", {"project_id": project["id"], "title": "Fix add", "prompt": "fix"}
        )
        run = post(
            "/api/v1/runs", {"task_id": task["id"], "agent_id": agent["id"], "mode": "mount"}
        )
        with http.stream("GET", f"/api/v1/runs/{run['id']}/events/stream") as stream:
            seen = read_until(stream.iter_lines(), "event: RunCompleted", timeout=60)
        assert "event: ToolCallCompleted" in seen
        done = http.get(f"/api/v1/runs/{run['id']}").json()
        assert done["status"] == "succeeded", done
        patch = http.get(f"/api/v1/runs/{run['id']}/artifacts/patch")
        assert patch.status_code == 200
        assert "+    return a + b" in patch.text
    # The worker worked in a clone of its own, made from the project's source.
    assert (
        (tmp_path / "other-host" / "runs" / run["id"] / "calc.py")
        .read_text()
        .endswith("return a + b\n")
    )


def test_a_run_whose_worker_is_killed_mid_command_resumes_on_another_host(
    cluster_env: dict[str, str], started: list[Any], tmp_path: Path, scripted_llm: ScriptedLLM
) -> None:
    """Worker A writes a file (checkpointed) and starts a long command; it is killed. The
    reaper suspends and requeues the run; worker B, with a data dir of its own, rebuilds
    the worktree from the checkpoint, tells the model the command was interrupted, and
    the run finishes with A's work in its patch."""
    base, admin = api(cluster_env, started)

    def worker_on(host: str) -> CodeforgeProcess:
        env = {**cluster_env, "CODEFORGE_DATA_DIR": str(tmp_path / host),
               "CODEFORGE_SANDBOX__KIND": "mount"}  # fmt: skip
        process = CodeforgeProcess(["worker"], env)
        started.append(process)
        process.wait_for_message("worker started", timeout=60)
        return process

    first = worker_on("host-a")
    scripted_llm.reply(tool_calls=[("write_file", {"path": "notes.md", "content": "done by A\n"})])
    scripted_llm.reply(tool_calls=[("bash", {"command": "sleep 60"})])

    def after_resume(request: Any) -> Any:
        results = [m.get("content") or "" for m in request["messages"] if m["role"] == "tool"]
        assert "interrupted" in results[-1]
        return reply(tool_calls=[("finish", {"summary": "finished after the resume"})])

    scripted_llm.responder = after_resume
    with httpx.Client(base_url=base, headers=admin, timeout=30) as http:

        def post(path: str, body: dict[str, Any]) -> Any:
            response = http.post(path, json=body)
            assert response.status_code == 201, response.text
            return response.json()

        post("/api/v1/models", {"name": "s", "base_url": scripted_llm.base_url, **PRICES})
        agent = post("/api/v1/agents", {"name": "a", "model": "s"})
        source = make_repo(tmp_path / "user", {"calc.py": CALC})
        project = post("/api/v1/projects", {"name": "calc", "source": str(source)})
        task = post("/api/v1/tasks", {"project_id": project["id"], "title": "t", "prompt": "p"})
        run = post(
            "/api/v1/runs", {"task_id": task["id"], "agent_id": agent["id"], "mode": "mount"}
        )
        with http.stream("GET", f"/api/v1/runs/{run['id']}/events/stream") as stream:
            lines = stream.iter_lines()
            read_until(lines, "event: CheckpointCreated", timeout=60)
            read_until(lines, "event: PolicyDecided", timeout=30)  # the sleep is requested
            time.sleep(0.5)
            first.proc.kill()
            first.proc.wait()
            read_until(lines, "event: RunSuspended", timeout=30)
            worker_on("host-b")
            seen = read_until(lines, "event: RunCompleted", timeout=60)
        assert "event: CheckpointRestored" in seen
        done = http.get(f"/api/v1/runs/{run['id']}").json()
        assert done["status"] == "succeeded", done
        assert done["result"]["summary"] == "finished after the resume"
        patch = http.get(f"/api/v1/runs/{run['id']}/artifacts/patch").text
        assert "+done by A" in patch
    assert (tmp_path / "host-b" / "runs" / run["id"] / "notes.md").read_text() == "done by A\n"
