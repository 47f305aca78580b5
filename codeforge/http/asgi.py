"""Small tools for the ASGI middlewares of the API: headers, bodies, problem replies."""

from __future__ import annotations

import json
from typing import Any

from litestar.types import Message, Receive, Scope, Send

from codeforge.http.errors import PROBLEM_JSON, TITLES


def header(scope: Scope, name: str) -> str | None:
    wanted = name.lower().encode()
    for key, value in scope.get("headers", ()):
        if key == wanted:
            return str(value.decode("latin-1"))
    return None


def cookie(scope: Scope, name: str) -> str | None:
    raw = header(scope, "cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def send_problem(
    scope: Scope,
    send: Send,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    """A problem+json reply from middleware, shaped like the app's exception mapper's."""
    body = json.dumps(
        {
            "type": "about:blank",
            "title": TITLES.get(status, "Error"),
            "status": status,
            "detail": detail,
            "instance": scope.get("path"),
            "request_id": scope.get("state", {}).get("request_id"),
        }
    ).encode()
    raw_headers = [(b"content-type", PROBLEM_JSON.encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None when it exceeds `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A receive() that yields `body` once, then defers to the real channel."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


def with_headers(message: Message, extra: dict[str, str]) -> Message:
    """Add headers to a response start, leaving any the app already set alone."""
    if message["type"] == "http.response.start":
        headers: list[Any] = list(message.get("headers", ()))
        present = {bytes(k).lower() for k, _ in headers}
        for name, value in extra.items():
            if name.lower().encode() not in present:
                headers.append((name.lower().encode(), value.encode()))
        message["headers"] = headers
    return message
