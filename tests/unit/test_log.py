"""Tests for codeforge.log: line shape, stdlib routing, non-blocking queue, redaction."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from codeforge import log as log_module
from codeforge.http.request_context import request_context_middleware
from codeforge.log import (
    DROPPED_MESSAGE,
    REDACTED,
    LineLogger,
    LogWriter,
    bind_context,
    clear_context,
    configure_logging,
    get_logger,
    register_secret,
)

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIRED_KEYS = {"time", "level", "service", "msg", "request_id"}
WRITER_THREAD_NAME = "codeforge-log-writer"


class SlowStream(io.StringIO):
    """A stream whose every write takes ``delay`` seconds, like a slow pipe consumer."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.writer_threads: list[int] = []  # list.append is atomic; a Counter is not

    def write(self, s: str) -> int:
        self.writer_threads.append(threading.get_ident())
        time.sleep(self.delay)
        return super().write(s)


class GatedStream(io.StringIO):
    """A stream whose writes block until ``gate`` is set; ``entered`` tells that one has."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def write(self, s: str) -> int:
        self.entered.set()
        self.gate.wait(10)
        return super().write(s)


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


Configure = Callable[..., LogWriter]


@pytest.fixture
def configure() -> Iterator[Configure]:
    """configure_logging with global logging state put back afterwards."""
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    routed = [logging.getLogger(name) for name in log_module._ROUTED_LOGGERS]
    saved_routed = [(lg.handlers[:], lg.level, lg.propagate) for lg in routed]
    writers: list[LogWriter] = []

    def _configure(**kwargs: Any) -> LogWriter:
        kwargs.setdefault("fmt", "json")
        kwargs.setdefault("service", "codeforge-test")
        writer = configure_logging(**kwargs)
        writers.append(writer)
        return writer

    yield _configure

    for writer in writers:
        writer.close()
    clear_context()
    root.handlers[:] = saved_root[0]
    root.setLevel(saved_root[1])
    for lg, (handlers, level, propagate) in zip(routed, saved_routed, strict=True):
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
    structlog.reset_defaults()


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# -- shape ---------------------------------------------------------------------------------


def test_json_line_has_exactly_the_required_keys(configure: Configure) -> None:
    stream = io.StringIO()
    writer = configure(stream=stream)
    bind_context(request_id="req-1", run_id="run-9")

    before = datetime.now(UTC)
    get_logger("codeforge.test").info("run started")
    writer.close()

    (line,) = json_lines(stream)
    assert set(line) == REQUIRED_KEYS | {"run_id"}
    assert list(line)[:5] == ["time", "level", "service", "msg", "request_id"]
    assert line["level"] == "info"
    assert line["service"] == "codeforge-test"
    assert line["msg"] == "run started"
    assert line["request_id"] == "req-1"
    assert line["run_id"] == "run-9"
    stamp = datetime.fromisoformat(line["time"])
    assert stamp.tzinfo is not None
    assert stamp.utcoffset() == timedelta(0)
    assert before <= stamp <= datetime.now(UTC)


def test_unbound_request_id_is_null_and_other_keys_follow(configure: Configure) -> None:
    stream = io.StringIO()
    writer = configure(stream=stream)

    log = get_logger()
    log.info("no context")
    bind_context(task_id="t-3")
    log.warning("with %s", "args", attempt=2, detail={"a": [1, 2]})
    writer.close()

    first, second = json_lines(stream)
    assert set(first) == REQUIRED_KEYS
    assert first["request_id"] is None
    assert second == {
        "time": second["time"],
        "level": "warning",
        "service": "codeforge-test",
        "msg": "with args",
        "request_id": None,
        "task_id": "t-3",
        "attempt": 2,
        "detail": {"a": [1, 2]},
    }


def test_context_is_per_asyncio_task(configure: Configure) -> None:
    stream = io.StringIO()
    writer = configure(stream=stream)
    log = get_logger()

    async def handle(request_id: str) -> None:
        bind_context(request_id=request_id)
        await asyncio.sleep(0)
        log.info("handled")

    async def main() -> None:
        await asyncio.gather(handle("a"), handle("b"))

    asyncio.run(main())
    writer.close()
    assert sorted(line["request_id"] for line in json_lines(stream)) == ["a", "b"]


def test_stdlib_records_come_out_in_the_same_shape(configure: Configure) -> None:
    # Simulate uvicorn's own logging setup: a private handler and no propagation.
    access = logging.getLogger("uvicorn.access")
    access.addHandler(logging.StreamHandler(io.StringIO()))
    access.propagate = False
    stream = io.StringIO()
    writer = configure(stream=stream)
    bind_context(request_id="req-7")

    # uvicorn passes a colourised copy of the message; it must not leak into JSON.
    logging.getLogger("uvicorn.error").warning(
        "Started server process [%d]", 42, extra={"color_message": "Started \x1b[36m%d\x1b[0m"}
    )
    access.info("GET / 200", extra={"status": 200})
    logging.getLogger("yoyo.migrations").info("applied")
    writer.close()

    error_line, access_line, yoyo_line = json_lines(stream)
    assert set(error_line) == REQUIRED_KEYS
    assert error_line["level"] == "warning"
    assert error_line["msg"] == "Started server process [42]"
    assert error_line["service"] == "codeforge-test"
    assert error_line["request_id"] == "req-7"
    datetime.fromisoformat(error_line["time"])
    assert access_line["msg"] == "GET / 200"
    assert access_line["status"] == 200
    assert yoyo_line["msg"] == "applied"


def test_exceptions_are_rendered_into_the_line(configure: Configure) -> None:
    stream = io.StringIO()
    writer = configure(stream=stream)
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        get_logger().exception("step failed")
        logging.getLogger("litestar").exception("handler failed")
    writer.close()

    for line in json_lines(stream):
        assert line["level"] == "error"
        assert "RuntimeError: kaput" in line["exception"]


def test_console_and_auto_formats(configure: Configure) -> None:
    console = io.StringIO()
    writer = configure(stream=console, fmt="console")
    get_logger().info("hello console", k="v")
    writer.close()
    text = console.getvalue()
    assert "hello console" in text
    assert "k=v" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)

    tty = TtyStream()
    writer = configure(stream=tty, fmt="auto")
    get_logger().info("hello tty")
    writer.close()
    assert "hello tty" in tty.getvalue()
    assert not tty.getvalue().startswith("{")

    plain = io.StringIO()
    writer = configure(stream=plain, fmt="auto")
    get_logger().info("hello pipe")
    writer.close()
    assert json_lines(plain)[0]["msg"] == "hello pipe"


def test_invalid_arguments_are_rejected(configure: Configure) -> None:
    allowed = "debug, info, warning, error, critical"
    with pytest.raises(ValueError, match=allowed):
        configure(stream=io.StringIO(), level="loud")
    with pytest.raises(ValueError, match="json"):
        configure(stream=io.StringIO(), fmt="xml")
    with pytest.raises(ValueError, match="queue_size"):
        configure(stream=io.StringIO(), queue_size=0)
    writer = configure(stream=io.StringIO())
    with pytest.raises(ValueError, match=allowed):
        writer.set_level("verbose")


# -- level -----------------------------------------------------------------------------------


def test_set_level_changes_filtering_at_runtime(configure: Configure) -> None:
    stream = io.StringIO()
    writer = configure(stream=stream, level="info")
    log = get_logger("codeforge.test")
    stdlib = logging.getLogger("litestar")

    log.debug("hidden-1")
    stdlib.debug("hidden-2")
    log.info("shown-1")
    writer.set_level("debug")
    log.debug("shown-2")
    stdlib.debug("shown-3")
    writer.set_level("ERROR")
    log.warning("hidden-3")
    stdlib.warning("hidden-4")
    log.error("shown-4")
    writer.close()

    # ERROR is written synchronously, possibly ahead of queued lines: compare as a set.
    assert sorted(line["msg"] for line in json_lines(stream)) == [
        "shown-1",
        "shown-2",
        "shown-3",
        "shown-4",
    ]


# -- queue -----------------------------------------------------------------------------------


def test_close_flushes_everything_and_is_idempotent(configure: Configure) -> None:
    stream = SlowStream(delay=0.001)
    writer = configure(stream=stream)
    log = get_logger()

    for i in range(300):
        log.info("queued", i=i)
    assert writer.stats.written < 300, "the stream should lag behind for this test to mean much"
    writer.close()

    assert [line["i"] for line in json_lines(stream)] == list(range(300))
    stats = writer.stats
    assert stats.enqueued == stats.written == 300
    assert stats.sampled_out == stats.dropped == stats.write_errors == 0
    assert not any(t.name == WRITER_THREAD_NAME for t in threading.enumerate())

    writer.close()
    assert writer.stats == stats

    # After close, records are written synchronously rather than stranded in the queue.
    log.info("late")
    assert json_lines(stream)[-1]["msg"] == "late"
    assert writer.stats.written_sync == 1


def test_reconfigure_closes_the_previous_writer(configure: Configure) -> None:
    first_stream, second_stream = SlowStream(delay=0.001), io.StringIO()
    first = configure(stream=first_stream)
    for i in range(100):
        get_logger().info("first", i=i)
    second = configure(stream=second_stream)
    get_logger().info("second")
    second.close()

    assert len(json_lines(first_stream)) == 100
    assert first.stats.written == 100
    assert [line["msg"] for line in json_lines(second_stream)] == ["second"]


def test_shedding_policy_and_periodic_drop_report(
    configure: Configure, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_module, "DROP_REPORT_INTERVAL_S", 0.05)
    stream = GatedStream()
    writer = configure(stream=stream, queue_size=10, sample_keep_every=2)
    log = get_logger()

    log.info("first")  # taken by the writer thread, which then blocks in write()
    assert stream.entered.wait(5)
    for i in range(9):
        log.info("fill", i=i)  # up to 80% full (8) everything is kept: depth reaches 9
    log.info("sampled away")  # over 80%: the 1st of every 2 is discarded...
    log.info("kept by sampling")  # ...the 2nd is kept: depth reaches capacity
    log.info("sampled away")
    log.info("dropped: full")  # kept by sampling, but there is no room
    log.warning("dropped: full warning")  # never sampled, but there is no room
    stats = writer.stats
    assert (stats.enqueued, stats.sampled_out, stats.dropped) == (11, 2, 2)
    assert stats.max_queue_depth == 10

    stream.gate.set()
    deadline = time.monotonic() + 5
    while DROPPED_MESSAGE not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    # Reported by the periodic check, before close().
    report = next(line for line in json_lines(stream) if line["msg"] == DROPPED_MESSAGE)
    assert report["level"] == "warning"
    assert (report["dropped"], report["sampled_out"], report["queue_full"]) == (4, 2, 2)
    writer.close()

    messages = [line["msg"] for line in json_lines(stream)]
    assert messages.count(DROPPED_MESSAGE) == 1, "losses are reported once"
    assert "kept by sampling" in messages
    assert "sampled away" not in messages
    assert not any(m.startswith("dropped:") for m in messages)
    assert writer.stats.written == writer.stats.enqueued == 11


async def test_burst_never_blocks_the_event_loop(configure: Configure) -> None:
    capacity = 1_000
    stream = SlowStream(delay=0.001)
    writer = configure(stream=stream, queue_size=capacity)
    log = get_logger("codeforge.burst")
    infos, errors, chunk = 50_000, 50, 100
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = time.perf_counter()
    for i in range(infos):
        log.info("burst", i=i)
        if i % (infos // errors) == 0:
            log.error("burst error", n=i // (infos // errors))
        if i % chunk == chunk - 1:
            await asyncio.sleep(0)
    burst_seconds = time.perf_counter() - started
    done.set()
    await ticking
    writer.close(timeout=10)
    stats = writer.stats

    # The loop's thread touched the slow stream only for the ERROR records; every other
    # line was written by the writer thread. Exact, so it holds on any machine.
    loop_thread = threading.get_ident()
    assert stream.writer_threads.count(loop_thread) == errors
    # Wall-clock view of the same. The coroutine yields every `chunk` records, about 3 ms of
    # CPU; the threshold leaves a wide margin for a loaded CI machine. Written synchronously
    # the whole burst would take >= 50 s (1 ms a line).
    assert len(gaps) > 10
    assert max(gaps) < 0.5, f"event loop blocked for {max(gaps):.3f}s"
    assert burst_seconds < 15
    assert capacity * 0.8 < stats.max_queue_depth <= capacity
    assert stats.sampled_out > 0
    assert stats.written_sync == errors
    assert stats.enqueued + stats.sampled_out + stats.dropped + stats.written_sync == (
        infos + errors
    )
    assert stats.written == stats.enqueued
    assert stats.write_errors == 0

    lines = json_lines(stream)
    error_ids = sorted(line["n"] for line in lines if line["msg"] == "burst error")
    assert error_ids == list(range(errors))
    assert sum(1 for line in lines if line["msg"] == "burst") == stats.enqueued
    reports = [line for line in lines if line["msg"] == DROPPED_MESSAGE]
    assert reports
    assert sum(r["dropped"] for r in reports) == stats.sampled_out + stats.dropped


def test_queued_lines_are_written_at_normal_exit(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from codeforge.log import configure_logging, get_logger

        class Slow:
            def write(self, s):
                time.sleep(0.0005)
                return sys.stdout.write(s)
            def flush(self):
                sys.stdout.flush()
            def isatty(self):
                return False

        configure_logging(stream=Slow(), fmt="json")
        log = get_logger("exit")
        for i in range(400):
            log.info("line", i=i)
        # No close(): the atexit hook must drain the queue.
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["i"] for line in lines] == list(range(400))


# -- redaction -------------------------------------------------------------------------------


def test_registered_secrets_are_redacted(configure: Configure) -> None:
    secret = "sk-test-7f3a9c1e5b"
    register_secret(secret)
    register_secret("abc")  # too short to be redacted safely; ignored
    stream = io.StringIO()
    writer = configure(stream=stream)
    bind_context(run_id=f"run-{secret}")

    class Credentials:
        def __repr__(self) -> str:
            return f"Credentials(token={secret!r})"

    log = get_logger()
    log.info(f"calling with {secret}", header=f"Bearer {secret}", nested={"k": [secret]})
    log.info("object", creds=Credentials())
    logging.getLogger("litestar").warning("stdlib saw %s", secret)
    try:
        raise ValueError(f"bad key {secret}")
    except ValueError:
        log.exception("abc failed")
    writer.close()

    text = stream.getvalue()
    assert secret not in text
    # The ERROR line is written synchronously, possibly ahead of the queued ones.
    by_level: dict[str, list[dict[str, Any]]] = {"error": [], "info": [], "warning": []}
    for line in json_lines(stream):
        by_level[line["level"]].append(line)
    (first, second), (third,), (fourth,) = by_level["info"], by_level["warning"], by_level["error"]
    assert first["msg"] == f"calling with {REDACTED}"
    assert first["header"] == f"Bearer {REDACTED}"
    assert first["nested"] == {"k": [REDACTED]}
    assert first["run_id"] == f"run-{REDACTED}"
    assert REDACTED in second["creds"]
    assert third["msg"] == f"stdlib saw {REDACTED}"
    assert f"bad key {REDACTED}" in fourth["exception"]
    assert fourth["msg"] == "abc failed"


def test_a_lone_surrogate_in_a_value_is_escaped_not_lost(configure: Configure) -> None:
    stream = io.StringIO()
    writer = configure(stream=stream)
    get_logger("t").info("odd input", reason="bad \ud800 text")
    writer.close()
    (line,) = json_lines(stream)
    assert line["reason"] == "bad \ud800 text"


# -- the short way: LineLogger --------------------------------------------------------------


def test_a_line_logger_writes_the_very_line_a_structlog_logger_writes(
    configure: Configure,
) -> None:
    stream = io.StringIO()
    writer = configure(stream=stream)
    through_handler: list[str] = []
    writer.handler.addFilter(lambda record: through_handler.append(record.name) or True)
    bind_context(request_id="req-7", run_id="run-1", tenant="t-2")
    fields: dict[str, Any] = {"method": "GET", "path": "/x", "status": 200, "duration_ms": 1.25}

    LineLogger("codeforge.http").log("info", "request", **fields)
    get_logger("codeforge.http").info("request", **fields)
    writer.close()

    short, usual = json_lines(stream)
    assert list(short) == list(usual)
    assert {**short, "time": None} == {**usual, "time": None}
    assert list(short) == [
        *["time", "level", "service", "msg", "request_id", "run_id"],
        *["method", "path", "status", "duration_ms", "tenant"],
    ]
    assert datetime.fromisoformat(short["time"]).utcoffset() == timedelta(0)
    # Only the structlog call went through the stdlib handler.
    assert through_handler == ["codeforge.http"]
    assert writer.stats.enqueued == 2


def test_a_line_logger_follows_the_level_set_at_runtime(configure: Configure) -> None:
    stream = io.StringIO()
    writer = configure(stream=stream, level="info")
    log = LineLogger("codeforge.http")

    log.log("debug", "request", path="/health")
    writer.set_level("debug")
    log.log("debug", "request", path="/health")
    writer.set_level("warning")
    log.log("info", "request", path="/quiet")
    writer.close()

    (line,) = json_lines(stream)
    assert (line["level"], line["path"]) == ("debug", "/health")


def test_a_line_logger_redacts_secrets(configure: Configure) -> None:
    secret = "sk-line-4d2a8e6c1f"
    register_secret(secret)
    stream = io.StringIO()
    writer = configure(stream=stream)
    bind_context(run_id=f"run-{secret}")
    LineLogger("codeforge.http").log("info", "request", path=f"/keys/{secret}")
    writer.close()

    assert secret not in stream.getvalue()
    (line,) = json_lines(stream)
    assert (line["path"], line["run_id"]) == (f"/keys/{REDACTED}", f"run-{REDACTED}")


def test_a_line_logger_writes_console_lines_the_usual_way(configure: Configure) -> None:
    stream = io.StringIO()
    writer = configure(stream=stream, fmt="console")
    LineLogger("codeforge.http").log("info", "request", path="/x", status=204)
    writer.close()
    text = stream.getvalue()
    assert "request" in text
    assert "path" in text
    assert "/x" in text
    assert "204" in text


async def test_every_http_request_gets_one_access_line_with_its_fields(
    configure: Configure,
) -> None:
    stream = io.StringIO()
    writer = configure(stream=stream, level="info")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    handle = request_context_middleware(app)
    for path, request_id in (("/api/v1/runs", b"trace-1"), ("/health", b"trace-2")):
        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "headers": [(b"x-request-id", request_id)],
        }
        await handle(scope, receive, send)
    writer.close()

    (line,) = json_lines(stream)  # /health is logged at DEBUG: not at INFO
    assert line == {
        "time": line["time"],
        "level": "info",
        "service": "codeforge-test",
        "msg": "request",
        "request_id": "trace-1",
        "method": "POST",
        "path": "/api/v1/runs",
        "status": 201,
        "duration_ms": line["duration_ms"],
    }
    assert isinstance(line["duration_ms"], float)
    assert (b"x-request-id", b"trace-1") in sent[0]["headers"]
