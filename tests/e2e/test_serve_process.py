"""`codeforge serve` as a real process: start, answer, reload, shut down in order."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import CodeforgeProcess, codeforge_env, free_port

PHASES = ["stop_accepting_http", "suspend_work", "drain_queue", "close_pool"]


@pytest.fixture
def started() -> Iterator[list[CodeforgeProcess]]:
    processes: list[CodeforgeProcess] = []
    yield processes
    for process in processes:
        process.stop()


def serve(
    started: list[CodeforgeProcess], env: dict[str, str], *args: str, cwd: Path | None = None
) -> tuple[CodeforgeProcess, str]:
    port = free_port()
    process = CodeforgeProcess(["serve", "--port", str(port), *args], env, cwd=cwd)
    started.append(process)
    base = f"http://127.0.0.1:{port}"
    process.wait_for_http(f"{base}/health")
    return process, base


def test_sigterm_runs_the_shutdown_phases_in_order_and_exits_zero(
    started: list[CodeforgeProcess], make_database: Callable[[], str], tmp_path: Path
) -> None:
    env = codeforge_env(CODEFORGE_DATABASE__URL=make_database(), CODEFORGE_DATA_DIR=str(tmp_path))
    process, base = serve(started, env)

    ready = httpx.get(f"{base}/health/ready").json()
    assert ready["status"] == "ready"

    process.signal(signal.SIGTERM)
    assert process.wait() == 0, process.output

    started_phases = [
        r["phase"] for r in process.records if r.get("msg") == "shutdown phase started"
    ]
    assert started_phases == PHASES
    messages = process.messages()
    assert messages.index("shutdown requested") < messages.index("shutdown started")
    assert messages.index("database pool closed") > messages.index("shutdown started")
    assert not any(r.get("level") == "error" for r in process.records), process.output


def test_sigint_is_a_graceful_stop_too(
    started: list[CodeforgeProcess], make_database: Callable[[], str], tmp_path: Path
) -> None:
    env = codeforge_env(CODEFORGE_DATABASE__URL=make_database(), CODEFORGE_DATA_DIR=str(tmp_path))
    process, _ = serve(started, env)
    process.signal(signal.SIGINT)
    assert process.wait() == 0, process.output
    assert "shutdown finished" in process.messages()


def test_sighup_reloads_the_log_level_without_a_restart(
    started: list[CodeforgeProcess], make_database: Callable[[], str], tmp_path: Path
) -> None:
    config = tmp_path / "codeforge.yaml"
    config.write_text("log:\n  level: info\n")
    env = codeforge_env(CODEFORGE_DATABASE__URL=make_database(), CODEFORGE_DATA_DIR=str(tmp_path))
    process, base = serve(started, env, "--config", str(config))

    # Health checks are logged at DEBUG: invisible at INFO...
    httpx.get(f"{base}/health")
    assert not [r for r in process.records if r.get("msg") == "request"]

    config.write_text("log:\n  level: debug\n")
    process.signal(signal.SIGHUP)
    process.wait_for_message("config reloaded")
    pid_before = process.proc.pid

    # ...and visible after the reload, from the same process.
    response = httpx.get(f"{base}/health", headers={"X-Request-ID": "reload-check"})
    assert response.status_code == 200
    line = process.wait_for_message("request")
    assert line["request_id"] == "reload-check"
    assert line["level"] == "debug"
    assert process.proc.pid == pid_before
    assert process.proc.poll() is None


def test_a_broken_config_on_reload_is_rejected_and_the_service_keeps_running(
    started: list[CodeforgeProcess], make_database: Callable[[], str], tmp_path: Path
) -> None:
    config = tmp_path / "codeforge.yaml"
    config.write_text("log:\n  level: info\n")
    env = codeforge_env(CODEFORGE_DATABASE__URL=make_database(), CODEFORGE_DATA_DIR=str(tmp_path))
    process, base = serve(started, env, "--config", str(config))

    config.write_text("log:\n  level: shouting\n")
    process.signal(signal.SIGHUP)
    rejected = process.wait_for_message("config reload rejected")
    assert "log.level" in rejected["error"]
    assert httpx.get(f"{base}/health").status_code == 200


def test_a_taken_port_fails_fast_and_still_closes_the_pool(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = codeforge_env(
            CODEFORGE_DATABASE__URL=make_database(), CODEFORGE_DATA_DIR=str(tmp_path)
        )
        process = CodeforgeProcess(["serve", "--port", str(port)], env)
        assert process.wait() == 1
    assert "database pool closed" in process.messages()


@pytest.fixture
def world_traversable_dir() -> Iterator[Path]:
    # As root the embedded server runs as an unprivileged user, who cannot enter
    # pytest's 0700 tmp_path; a 0755 folder under /tmp stands in for a checkout.
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="cf-e2e-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_without_a_database_url_serve_runs_the_embedded_cluster_and_reuses_it(
    started: list[CodeforgeProcess], world_traversable_dir: Path
) -> None:
    env = codeforge_env(CODEFORGE_DATA_DIR=str(world_traversable_dir / "data"))

    first, base = serve(started, env)
    assert httpx.get(f"{base}/health/ready").json()["checks"]["database"]["status"] == "up"
    assert "migrations applied" in first.messages()
    first.signal(signal.SIGTERM)
    assert first.wait() == 0, first.output
    assert "embedded database stopped" in first.messages()

    # The second start finds the cluster, with its schema, where the first left it.
    second, base = serve(started, env)
    assert httpx.get(f"{base}/health/ready").status_code == 200
    assert "migrations applied" not in second.messages()
    second.signal(signal.SIGTERM)
    assert second.wait() == 0, second.output
