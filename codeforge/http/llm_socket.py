"""The LLM proxy on a unix socket: how a worker's sandboxed backends reach the model.

A run in network mode `llm` reaches exactly one thing: the HTTP server on the host
unix socket its `SandboxSpec.llm_socket` names. A worker process serves that socket
for the runs it executes: the same `/llm/v1` routes as the API (`proxy_router`) over
the same `LlmProxy` service, so per-run tokens, budgets, the cost ledger and the
`ModelResponded` records hold for every call made from inside a sandbox. It is a
small Litestar app under its own uvicorn (`uds=`), started with the worker and
stopped with the process; the API's own routes (keys, runs, ...) are not there.

Around the routes, `watched` lets the backend that runs an agent see its calls
(`codeforge.agent.backends.proxy_watch`): before each chat call, and its outcome.

Where: `llm.proxy_socket`, else `<data_dir>/run/llm-proxy-<pid>.sock` — one per
process, since several may share a data dir — or, when that path is too long for a
unix socket (108 bytes), the same name in `<temp>/codeforge-<uid>/`. The directory is
private to CodeForge's user (0700); sockets of processes that are gone are removed at
start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import structlog
import uvicorn
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from codeforge.agent.backends.proxy_watch import CallOutcome, CallRefused, ProxyWatch
from codeforge.agent.llm_proxy import LlmProxy
from codeforge.http import openai_wire as wire
from codeforge.http.llm_proxy import proxy_router

log = structlog.get_logger("codeforge.llm_socket")

MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; keep a margin
_SOCKET_NAME = re.compile(r"llm-proxy-(\d+)\.sock")
_ERROR_EVENT = b'data: {"error"'


def socket_path(data_path: Path, configured: str, pid: int | None = None) -> Path:
    """Where this process serves the proxy (see the module docstring)."""
    if configured:
        return Path(configured).expanduser().absolute()
    name = f"llm-proxy-{pid or os.getpid()}.sock"
    path = (data_path / "run" / name).absolute()
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    return Path(tempfile.gettempdir()) / f"codeforge-{os.getuid()}" / name


class _Server(uvicorn.Server):
    """uvicorn without signal handling: the process's owner (serve, the CLI) has them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class LlmProxySocket:
    def __init__(self, proxy: Callable[[], LlmProxy], watch: ProxyWatch, path: Path) -> None:
        self._proxy = proxy
        self._watch = watch
        self.path = path
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is not None:
            return
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(PermissionError):  # a configured shared directory
            os.chmod(directory, 0o700)
        _remove_stale(directory)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # ours from a pid reused after a crash, or a configured path
        app = Litestar(
            route_handlers=[proxy_router(self._proxy)],
            logging_config=None,
            openapi_config=None,
            debug=False,
        )
        self._server = _Server(
            uvicorn.Config(
                watched(app, self._watch),
                uds=str(self.path),
                log_config=None,
                access_log=False,
                server_header=False,
                lifespan="on",
                timeout_graceful_shutdown=5,
            )
        )
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()  # the error that stopped it
                raise RuntimeError(f"the LLM proxy socket {self.path} did not start")
            await asyncio.sleep(0.01)
        os.chmod(self.path, 0o600)
        log.info("LLM proxy socket serving", path=str(self.path))

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await self._task
        self._server = self._task = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def watched(app: ASGIApp, watch: ProxyWatch) -> ASGIApp:
    """`app`, with each chat call of a watched token shown to its watcher."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != ScopeType.HTTP
            or scope.get("method") != "POST"
            or not scope.get("path", "").endswith("/chat/completions")
        ):
            await app(scope, receive, send)
            return
        watcher = watch.watcher(_bearer(scope))
        if watcher is None:
            await app(scope, receive, send)
            return
        try:
            await watcher.before_call()
        except CallRefused as e:
            await _refuse(send, e)
            await watcher.after_call(
                CallOutcome(status=e.status, error_code=e.code, error_message=e.message)
            )
            return
        status = 0
        error = bytearray()
        streamed_error: dict[str, Any] | None = None

        async def capture(message: Message) -> None:
            nonlocal status, streamed_error
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                body = bytes(message.get("body", b""))
                if status >= 400 and len(error) < 16_384:
                    error.extend(body)
                elif streamed_error is None and body.startswith(_ERROR_EVENT):
                    streamed_error = _error_of(body[len(b"data: ") :])
            await send(message)

        try:
            await app(scope, receive, capture)
        finally:
            found = streamed_error if streamed_error is not None else _error_of(bytes(error))
            await watcher.after_call(
                CallOutcome(
                    status=status,
                    error_code=found.get("code") if found else None,
                    error_message=str(found.get("message", "")) if found else "",
                )
            )

    return middleware


def _bearer(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


def _error_of(body: bytes) -> dict[str, Any] | None:
    if not body:
        return None
    try:
        decoded = msgspec.json.decode(body.strip())
    except msgspec.DecodeError:
        return {"message": body[:500].decode(errors="replace")}
    inner = decoded.get("error") if isinstance(decoded, dict) else None
    return inner if isinstance(inner, dict) else None


async def _refuse(send: Send, refused: CallRefused) -> None:
    body = msgspec.json.encode(wire.error(refused.message, "invalid_request_error", refused.code))
    await send(
        {
            "type": "http.response.start",
            "status": refused.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _remove_stale(directory: Path) -> None:
    """Sockets of processes that are gone (a crash leaves them behind)."""
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            match = _SOCKET_NAME.fullmatch(entry.name)
            if match is None or int(match.group(1)) == os.getpid():
                continue
            try:
                os.kill(int(match.group(1)), 0)
            except ProcessLookupError:
                with contextlib.suppress(OSError):
                    entry.unlink()
            except PermissionError:
                pass  # alive, another user's
