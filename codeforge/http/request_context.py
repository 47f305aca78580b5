"""Request context: a request id on every request, response and log line.

An incoming `X-Request-ID` is kept when it looks like an id (so a caller's
trace survives); anything else is replaced, because the value is echoed in
headers and logs and must not carry injected text.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from codeforge.log import LineLogger

HEADER = "x-request-id"
_VALID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

# One line per request: rendered the short way (see LineLogger), same shape as any line.
access_log = LineLogger("codeforge.http")


def request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == HEADER.encode():
            candidate = value.decode("latin-1")
            if _VALID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def request_context_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k != HEADER.encode()]
                headers.append((HEADER.encode(), request_id.encode()))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await app(scope, receive, send_with_id)
            finally:
                # Probes hit /health every few seconds; at INFO they would drown the log.
                quiet = scope["path"].startswith("/health")
                access_log.log(
                    "debug" if quiet else "info",
                    "request",
                    method=scope.get("method", "WS"),
                    path=scope["path"],
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )

    return middleware
