"""Logging: structured lines that never block the event loop.

Every log line in the process, whether it comes from structlog (``get_logger``) or from
standard-library loggers (uvicorn, litestar, yoyo), goes through one pipeline and comes out
in one shape. In JSON mode that is one object per line::

    {"time": "2024-05-01T12:00:00.123456Z", "level": "info", "service": "codeforge",
     "msg": "run started", "request_id": null, "run_id": "r-1", ...}

``time``, ``level``, ``service``, ``msg`` and ``request_id`` are always present, in that
order (``request_id`` is ``null`` when none is bound); keys bound with ``bind_context`` (such
as ``task_id`` and ``run_id``) and keys passed to the log call follow. ``time``, ``level``,
``service`` and ``msg`` belong to the pipeline: a bound or passed value under one of those
names is discarded.

Records are rendered in the thread that logs them (so context variables and exception
information are those of the caller) and then handed to a bounded queue that a background
thread writes to the output stream. Logging therefore never waits for the stream, except
for ERROR and CRITICAL records, which are written synchronously so they are never lost.
Under pressure the queue sheds load: see ``LogWriter`` for the exact policy.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TextIO

import msgspec
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "DROPPED_MESSAGE",
    "FORMATS",
    "LEVELS",
    "REDACTED",
    "LineLogger",
    "LogStats",
    "LogWriter",
    "bind_context",
    "clear_context",
    "configure_logging",
    "get_logger",
    "register_secret",
]

LEVELS: Final[dict[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
FORMATS: Final[tuple[str, ...]] = ("auto", "json", "console")
REDACTED: Final = "[REDACTED]"
MIN_SECRET_LENGTH: Final = 6
DROPPED_MESSAGE: Final = "log records dropped"

# How often (seconds) the writer reports records lost to sampling or a full queue. Read when
# a LogWriter is created.
DROP_REPORT_INTERVAL_S: float = 5.0

# Libraries that install their own handlers or stop propagation; configure_logging strips
# those so their records reach the root handler and come out in the common shape.
_ROUTED_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar", "yoyo")
_RESERVED_KEYS: Final = ("time", "level", "service", "msg", "request_id")
_CORRELATION_KEYS: Final = ("task_id", "run_id")
# Lines the writer takes off the queue per lock acquisition; bounds how long producers can
# wait for the queue lock while keeping lock traffic low during a burst.
_BATCH: Final = 256
# The writer wakes when this much of the queue is used, or this often, whichever is
# first: waking it per line would cost a thread switch (and a GIL hand-over) per record.
_WAKE_FRACTION: Final = 8
FLUSH_INTERVAL_S: Final = 0.1

# One lock around every write to an output stream, shared by all writers: the background
# thread, synchronous ERROR writes and a previous writer still draining after a reconfigure.
_STREAM_LOCK = threading.Lock()
_config_lock = threading.Lock()
_active_writer: LogWriter | None = None

_secrets_lock = threading.Lock()
# Replaced, never mutated, so the formatting hot path reads it without a lock. Longest first
# so a secret that contains another is redacted as a whole.
_secrets: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Public API


@dataclass(frozen=True, slots=True)
class LogStats:
    """A snapshot of a writer's counters.

    Every record that reaches the writer is counted exactly once in ``enqueued``,
    ``sampled_out``, ``dropped`` or ``written_sync``. Of the enqueued ones, ``written`` have
    reached the stream and ``write_errors`` failed to; once the writer is closed,
    ``written + write_errors == enqueued``.
    """

    enqueued: int
    """Records put on the queue for the background thread."""
    written: int
    """Queued records the background thread wrote to the stream."""
    sampled_out: int
    """DEBUG/INFO records discarded by sampling because the queue was over 80% full."""
    dropped: int
    """Records (WARNING, or DEBUG/INFO kept by sampling) discarded because the queue was full."""
    written_sync: int
    """Records written directly by the logging thread (ERROR and above, or after close)."""
    max_queue_depth: int
    """The most records the queue ever held; never more than its capacity."""
    write_errors: int
    """Queued records the stream refused (the exception is swallowed; the line is lost)."""


class LogWriter:
    """Owns the queue and the background thread that writes log lines to one stream.

    Created by ``configure_logging``; do not construct it directly.

    Load-shedding policy (all decisions are made without blocking):

    * ERROR and above are written synchronously by the logging thread, under the stream
      lock, and are never dropped. They may appear before earlier, still-queued records.
    * WARNING is queued if there is room and otherwise dropped (``stats.dropped``).
    * DEBUG and INFO are queued while the queue is at most 80% full. Above that only every
      ``sample_keep_every``-th of them is kept (``stats.sampled_out`` counts the rest), and a
      kept one is still dropped if the queue is full.

    Queued lines reach the stream within ``FLUSH_INTERVAL_S`` (sooner when the queue fills
    up): the writer is not woken per line.

    Every ``DROP_REPORT_INTERVAL_S`` seconds, and on close, the background thread writes a
    WARNING line ``log records dropped`` with ``dropped`` (records lost since the previous
    report), ``sampled_out`` and ``queue_full`` (its two causes) if anything was lost.
    """

    def __init__(
        self,
        stream: TextIO,
        formatter: logging.Formatter,
        *,
        queue_size: int,
        sample_keep_every: int,
        json_shaper: _Shaper | None = None,
    ) -> None:
        self._stream = stream
        self._formatter = formatter
        # Set when lines are JSON: `LineLogger` then renders them itself.
        self.json_shaper = json_shaper
        self._capacity = queue_size
        self._keep_every = sample_keep_every
        self._report_interval = DROP_REPORT_INTERVAL_S
        self._wake_at = max(1, queue_size // _WAKE_FRACTION)
        self._queue: deque[str] = deque()
        # Guards the queue, the counters the producers update, and the closing flag.
        self._cv = threading.Condition(threading.Lock())
        self._closing = False
        self._sample_counter = 0
        self._enqueued = 0
        self._sampled_out = 0
        self._dropped = 0
        self._written_sync = 0
        self._max_depth = 0
        # Only the background thread updates these.
        self._written = 0
        self._write_errors = 0
        self._reported_sampled_out = 0
        self._reported_dropped = 0
        self.handler: logging.Handler = _WriterHandler(self)
        self._thread = threading.Thread(target=self._run, name="codeforge-log-writer", daemon=True)
        # Daemon, because the interpreter joins non-daemon threads *before* running atexit
        # hooks, so a non-daemon writer would keep the process alive waiting for a close()
        # that only atexit would call.
        self._thread.start()

    # -- public ----------------------------------------------------------------------------

    def set_level(self, level: str) -> None:
        """Set the process-wide minimum level (structlog and stdlib loggers alike).

        Takes effect for the next log call in every thread. Loggers given an explicit level
        of their own keep it. Raises ValueError for an unknown level name.
        """
        logging.getLogger().setLevel(_parse_level(level))

    def close(self, timeout: float = 5.0) -> None:
        """Write everything queued, report losses, and stop the background thread.

        Blocks for up to ``timeout`` seconds; if the stream is so slow that the queue is
        not drained by then, the thread carries on in the background and close() returns.
        Records logged after close() are written synchronously, so a late line during
        shutdown is still delivered. Idempotent and safe to call from any thread.
        """
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def stats(self) -> LogStats:
        """The current counters; exact once close() has returned."""
        with self._cv:
            return LogStats(
                enqueued=self._enqueued,
                written=self._written,
                sampled_out=self._sampled_out,
                dropped=self._dropped,
                written_sync=self._written_sync,
                max_queue_depth=self._max_depth,
                write_errors=self._write_errors,
            )

    # -- producer side (any thread) -------------------------------------------------------------

    def submit(self, record: logging.LogRecord) -> None:
        """Route one record according to the policy in the class docstring; never waits
        for the background thread (only briefly for the queue lock, or for the stream lock
        when the record is written synchronously)."""
        if record.levelno >= logging.ERROR:
            self._write_sync(self._formatter.format(record))
            return
        with self._cv:
            if not self._closing and not self._admit(record.levelno):
                return
        # Formatting is the expensive part, so it happens outside the lock and only for
        # records that passed admission.
        self._enqueue(self._formatter.format(record))

    def submit_line(self, levelno: int, line: str) -> None:
        """`submit` for a line rendered by the caller (`LineLogger`): the same policy."""
        if levelno >= logging.ERROR:
            self._write_sync(line)
            return
        with self._cv:
            if not self._closing and not self._admit(levelno):
                return
        self._enqueue(line)

    def _enqueue(self, line: str) -> None:
        with self._cv:
            closing = self._closing
            if not closing:
                if len(self._queue) >= self._capacity:
                    self._dropped += 1
                    return
                self._queue.append(line)
                self._enqueued += 1
                self._max_depth = max(self._max_depth, len(self._queue))
                if len(self._queue) >= self._wake_at:
                    self._cv.notify()
                return
        # The background thread may already have exited; nobody would drain the queue.
        self._write_sync(line)

    def _admit(self, levelno: int) -> bool:
        """Decide, holding the queue lock, whether a non-ERROR record may be queued."""
        depth = len(self._queue)
        # Sampling comes first so that, under sustained overload, sampled_out counts the
        # ~90% shed by policy and dropped only the kept ones that found no room.
        if levelno < logging.WARNING and depth * 5 > self._capacity * 4:
            self._sample_counter += 1
            if self._sample_counter % self._keep_every:
                self._sampled_out += 1
                return False
        if depth >= self._capacity:
            self._dropped += 1
            return False
        return True

    def _write_sync(self, line: str) -> None:
        """Write and flush one line in the calling thread; exceptions propagate so the
        handler reports them the stdlib way."""
        with _STREAM_LOCK:
            self._stream.write(line + "\n")
            self._stream.flush()
        with self._cv:
            self._written_sync += 1

    # -- background thread ------------------------------------------------------------------

    def _run(self) -> None:
        next_report = time.monotonic() + self._report_interval
        while True:
            with self._cv:
                flush_by = time.monotonic() + FLUSH_INTERVAL_S
                while len(self._queue) < self._wake_at and not self._closing:
                    remaining = min(flush_by, next_report) - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cv.wait(remaining)
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), _BATCH))]
                drained = not self._queue
                stop = self._closing and drained
            for line in batch:
                self._write_queued(line)
            # Flushing only when idle lets a buffered stream coalesce a burst into few
            # system calls; lines still become visible as soon as the writer catches up.
            if batch and drained:
                self._flush()
            now = time.monotonic()
            if stop or now >= next_report:
                self._report_losses()
                next_report = now + self._report_interval
            if stop:
                return

    def _write_queued(self, line: str) -> None:
        if self._write_line(line):
            self._written += 1
        else:
            self._write_errors += 1

    def _write_line(self, line: str) -> bool:
        """Write one line from the background thread; False if the stream raised."""
        # The stream lock is taken per line, not per batch, so a synchronous ERROR write
        # waits for at most one line.
        try:
            with _STREAM_LOCK:
                self._stream.write(line + "\n")
        except Exception:
            # The writer must outlive a broken stream; queued losses show in stats.
            return False
        return True

    def _flush(self) -> None:
        try:
            with _STREAM_LOCK:
                self._stream.flush()
        except Exception:  # noqa: S110 - a failing flush surfaces as write_errors on the next write
            pass

    def _report_losses(self) -> None:
        with self._cv:
            sampled = self._sampled_out - self._reported_sampled_out
            full = self._dropped - self._reported_dropped
            self._reported_sampled_out = self._sampled_out
            self._reported_dropped = self._dropped
        if not sampled and not full:
            return
        record = logging.LogRecord(
            name=__name__,
            level=logging.WARNING,
            pathname=__file__,
            lineno=0,
            msg=DROPPED_MESSAGE,
            args=(),
            exc_info=None,
        )
        # ExtraAdder in the foreign pre-chain turns these attributes into keys.
        record.__dict__.update(dropped=sampled + full, sampled_out=sampled, queue_full=full)
        # Written directly rather than logged: the queue is probably the thing that is full.
        self._write_line(self._formatter.format(record))
        self._flush()


def configure_logging(
    *,
    level: str = "info",
    fmt: str = "auto",
    service: str = "codeforge",
    stream: TextIO | None = None,
    queue_size: int = 10_000,
    sample_keep_every: int = 10,
) -> LogWriter:
    """Configure structlog and stdlib logging once for the process.

    Calling it again reconfigures: the previous writer is closed (drained) first, then the
    new one takes over. ``stream`` defaults to ``sys.stdout`` as it is at call time.
    ``fmt`` is ``"json"``, ``"console"`` (structlog's ConsoleRenderer) or ``"auto"``
    (console when the stream is a TTY, else JSON).

    Side effects: every handler on the root logger is replaced by this writer's handler;
    the loggers of uvicorn, litestar and yoyo lose their own handlers and levels and
    propagate to the root (so uvicorn must be started with ``log_config=None`` for this to
    stick); the root level is set to ``level``; the returned writer is closed at exit.

    Raises ValueError for an unknown level or format, or a non-positive size.
    """
    global _active_writer
    numeric_level = _parse_level(level)
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    if queue_size < 1:
        raise ValueError(f"queue_size must be at least 1, got {queue_size}")
    if sample_keep_every < 1:
        raise ValueError(f"sample_keep_every must be at least 1, got {sample_keep_every}")
    out = stream if stream is not None else sys.stdout
    console = fmt == "console" or (fmt == "auto" and _isatty(out))

    with _config_lock:
        previous = _active_writer
        if previous is not None:
            # Drained before the handler swap so two writers never interleave on one
            # stream; records logged meanwhile go to the closing writer, which writes them
            # synchronously.
            previous.close()
        writer = LogWriter(
            out,
            _build_formatter(service=service, console=console, colors=console and _isatty(out)),
            queue_size=queue_size,
            sample_keep_every=sample_keep_every,
            json_shaper=None if console else _Shaper(service, keep_null_request_id=True),
        )
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.addHandler(writer.handler)
        root.setLevel(numeric_level)
        for name in _ROUTED_LOGGERS:
            routed = logging.getLogger(name)
            for handler in list(routed.handlers):
                routed.removeHandler(handler)
            routed.propagate = True
            routed.setLevel(logging.NOTSET)
        # This chain does not depend on the arguments (those live in the formatter), so
        # loggers cached on first use stay correct across reconfiguration.
        structlog.configure(
            processors=[
                structlog.stdlib.filter_by_level,
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.PositionalArgumentsFormatter(),
                structlog.processors.StackInfoRenderer(),
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=True,
        )
        _active_writer = writer
    return writer


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger backed by the stdlib logger ``name`` (default: the caller's
    module name). Safe to call at import time, before configure_logging."""
    if name is None:
        name = sys._getframe(1).f_globals.get("__name__", "codeforge")
    return structlog.stdlib.get_logger(name)


class LineLogger:
    """A logger for one frequent line (the HTTP access line) that skips the long way.

    `log(level, msg, **fields)` writes exactly the line `get_logger(name).<level>(msg,
    **fields)` would — same keys in the same order, bound context, redaction, level
    filtering and queue policy — but, when the output is JSON, renders it directly:
    no stdlib `LogRecord`, no structlog processor chain (a tenth of a millisecond per
    request). Console output, ERROR and above, and values that need more than JSON
    encoding (`exc_info`, `stack_info`, positional arguments) take the usual way.
    """

    def __init__(self, name: str) -> None:
        self._stdlib = logging.getLogger(name)
        self._structured = structlog.stdlib.get_logger(name)

    def log(self, level: str, msg: str, **fields: object) -> None:
        levelno = LEVELS[level]
        if not self._stdlib.isEnabledFor(levelno):
            return
        writer = _active_writer
        shaper = writer.json_shaper if writer is not None else None
        if (
            writer is None
            or shaper is None
            or levelno >= logging.ERROR
            or "exc_info" in fields
            or "stack_info" in fields
        ):
            self._structured.log(levelno, msg, **fields)
            return
        # The event dict as structlog builds it: the call's keys, then bound context.
        event: dict[str, Any] = dict(fields)
        event["event"] = msg
        for key, value in structlog.contextvars.get_contextvars().items():
            event.setdefault(key, value)
        event["level"] = level
        event["time"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        shaped = shaper(None, level, _redact_event(None, level, event))
        line = _json_line(shaped)
        secrets = _secrets
        if secrets:
            line = _redact_str(line, secrets)
        writer.submit_line(levelno, line)


def bind_context(**values: str) -> None:
    """Bind keys (e.g. ``request_id``, ``task_id``, ``run_id``) to every line logged from the
    current context (thread or asyncio task, via contextvars)."""
    structlog.contextvars.bind_contextvars(**values)


def clear_context() -> None:
    """Remove every key bound with bind_context in the current context."""
    structlog.contextvars.clear_contextvars()


def register_secret(value: str) -> None:
    """Redact ``value`` from every log line from now on, wherever it occurs in a string.

    Values shorter than six characters are ignored: redacting them would mangle ordinary
    text while protecting little.
    """
    global _secrets
    if len(value) < MIN_SECRET_LENGTH:
        return
    with _secrets_lock:
        if value not in _secrets:
            _secrets = tuple(sorted((*_secrets, value), key=len, reverse=True))


# --------------------------------------------------------------------------------------------
# Internals


class _WriterHandler(logging.Handler):
    """The root handler: formats in the logging thread and hands off to the writer."""

    def __init__(self, writer: LogWriter) -> None:
        super().__init__()
        self._writer = writer

    def handle(self, record: logging.LogRecord) -> bool:
        # logging.Handler.handle holds the handler lock around emit(); skipped because
        # submit() is thread-safe, and the lock would make the event loop wait behind
        # another thread's synchronous ERROR write.
        verdict: object = self.filter(record)
        if not verdict:
            return False
        # From Python 3.12 a filter may return a replacement record.
        self.emit(verdict if isinstance(verdict, logging.LogRecord) else record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.submit(record)
        except Exception:
            self.handleError(record)


def _parse_level(level: str) -> int:
    try:
        return LEVELS[level.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r}; expected one of: {', '.join(LEVELS)}"
        ) from None


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, OSError, ValueError):
        return False


def _build_formatter(*, service: str, console: bool, colors: bool) -> logging.Formatter:
    renderer: Processor
    if console:
        renderer = structlog.dev.ConsoleRenderer(
            colors=colors, event_key="msg", timestamp_key="time"
        )
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_json_line)
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.ExtraAdder(),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            # Rendered to text here (also for the console) so the redaction below sees it.
            structlog.processors.format_exc_info,
            _redact_event,
            _Shaper(service, keep_null_request_id=not console),
            renderer,
            # Backstop for secrets that only appear once values are rendered, such as in
            # the repr() of an object.
            _redact_rendered,
        ],
    )


# "event" became "msg"; uvicorn's "color_message" repeats msg with ANSI escapes.
_DISCARDED_KEYS = frozenset({"event", "color_message"})


class _Shaper:
    """Rename ``event`` to ``msg``, add ``service``, and put the reserved keys first."""

    def __init__(self, service: str, *, keep_null_request_id: bool) -> None:
        self._service = service
        # A null request_id on every console line is noise to a human reader.
        self._keep_null_request_id = keep_null_request_id

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        shaped: dict[str, Any] = {
            "time": event_dict.get("time"),
            "level": event_dict.get("level"),
            "service": self._service,
            "msg": event_dict.get("event", ""),
        }
        request_id = event_dict.get("request_id")
        if request_id is not None or self._keep_null_request_id:
            shaped["request_id"] = request_id
        # Correlation ids next, ahead of ad-hoc keys, so lines line up when scanned by eye.
        for key in _CORRELATION_KEYS:
            if key in event_dict:
                shaped[key] = event_dict[key]
        for key, value in event_dict.items():
            if key not in shaped and key not in _RESERVED_KEYS and key not in _DISCARDED_KEYS:
                shaped[key] = value
        return shaped


def _redact_event(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Replace every registered secret in every string value (nested in dicts, lists and
    tuples too) with REDACTED."""
    secrets = _secrets
    if not secrets:
        return event_dict
    for key, value in event_dict.items():
        event_dict[key] = _redact_value(value, secrets)
    return event_dict


_json_encoder = msgspec.json.Encoder(enc_hook=repr)


def _json_line(value: Any, **_: Any) -> str:
    """msgspec, several times faster than json.dumps; unknown objects become their repr."""
    try:
        return _json_encoder.encode(value).decode()
    except UnicodeEncodeError:
        # A lone surrogate (from a client's JSON escape) cannot be UTF-8: escape it instead.
        return json.dumps(value, default=repr)


def _redact_rendered(
    _logger: WrappedLogger, _method: str, rendered: EventDict | str
) -> EventDict | str:
    secrets = _secrets
    if secrets and isinstance(rendered, str):
        return _redact_str(rendered, secrets)
    return rendered


def _redact_value(value: object, secrets: tuple[str, ...]) -> object:
    if isinstance(value, str):
        return _redact_str(value, secrets)
    if isinstance(value, dict):
        return {key: _redact_value(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items: Iterable[object] = (_redact_value(item, secrets) for item in value)
        return list(items) if isinstance(value, list) else tuple(items)
    return value


def _redact_str(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _close_active_writer() -> None:
    writer = _active_writer
    if writer is not None:
        writer.close()


# Registered at import, which precedes any configure_logging call, so it runs after atexit
# hooks registered later by the application: their last log lines still get queued and
# written.
atexit.register(_close_active_writer)
