"""Idempotency-Key on POST, PUT, PATCH and DELETE.

The first request with a key runs and its response is stored (24 h by default);
a repeat with the same key and the same request replays it with
`Idempotent-Replayed: true`; the same key with a different request is 422.
Concurrent duplicates: exactly one runs (the store's atomic claim), the others
wait for its response up to `idempotency_wait` seconds, then get 409. A 5xx is
not stored: the claim is released so a retry runs again. Keys are scoped to
the API key that sent them.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from datetime import timedelta

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from codeforge.http.asgi import header, read_body, replay_body, send_problem
from codeforge.ports.idempotency import Claimed, IdempotencyRecord, IdempotencyStore, StoredResponse
from codeforge.services.clock import Clock, utc_now

HEADER = "idempotency-key"
REPLAYED = "idempotent-replayed"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
# Per-connection or per-hop headers that must not be replayed from storage.
_NOT_STORED = frozenset({b"content-length", b"date", b"x-request-id", b"transfer-encoding"})
_POLL_SECONDS = 0.05


class Idempotency:
    def __init__(
        self,
        store: IdempotencyStore,
        *,
        ttl_seconds: float,
        wait_seconds: float,
        max_body_bytes: int,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._ttl = timedelta(seconds=ttl_seconds)
        self._wait = wait_seconds
        self._max_body = max_body_bytes
        self._clock = clock

    def middleware(self) -> Callable[[ASGIApp], ASGIApp]:
        def factory(app: ASGIApp) -> ASGIApp:
            async def idempotent(scope: Scope, receive: Receive, send: Send) -> None:
                key = header(scope, HEADER) if scope["type"] == "http" else None
                if key is None or scope.get("method") not in UNSAFE:
                    await app(scope, receive, send)
                    return
                await self._handle(app, scope, receive, send, key)

            return idempotent

        return factory

    async def _handle(
        self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, key: str
    ) -> None:
        if not _VALID_KEY.match(key):
            await send_problem(
                scope, send, 400, "Idempotency-Key must be 1-255 visible ASCII characters"
            )
            return
        principal = scope.get("state", {}).get("principal")
        if principal is None:  # open routes: nothing to scope the key by
            await app(scope, receive, send)
            return
        body = await read_body(receive, self._max_body)
        if body is None:
            await send_problem(scope, send, 413, f"the body exceeds {self._max_body} bytes")
            return
        owner = f"{principal.tenant_id}:{principal.key_id}"
        fingerprint = _fingerprint(scope, body)
        deadline = asyncio.get_running_loop().time() + self._wait
        while True:
            outcome = await self._store.claim(owner, key, fingerprint, self._clock(), self._ttl)
            if isinstance(outcome, Claimed):
                await self._run_first(app, scope, replay_body(body, receive), send, owner, key)
                return
            record = await self._settled(owner, key, outcome, deadline)
            if record is None:
                continue  # the first attempt was released (it failed): claim again
            if record.fingerprint != fingerprint:
                await send_problem(
                    scope,
                    send,
                    422,
                    "this Idempotency-Key was already used with a different request; "
                    "use a new key for a new request",
                )
                return
            if record.response is None:
                await send_problem(
                    scope,
                    send,
                    409,
                    "a request with this Idempotency-Key is still in progress; retry later",
                    {"retry-after": "1"},
                )
                return
            await _replay(send, record.response)
            return

    async def _settled(
        self, owner: str, key: str, record: IdempotencyRecord, deadline: float
    ) -> IdempotencyRecord | None:
        """Wait while the first request runs; None when its claim was released."""
        loop = asyncio.get_running_loop()
        current: IdempotencyRecord | None = record
        while current is not None and current.state == "in_progress":
            if loop.time() >= deadline:
                return current
            await asyncio.sleep(_POLL_SECONDS)
            current = await self._store.get(owner, key, self._clock())
        return current

    async def _run_first(
        self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, owner: str, key: str
    ) -> None:
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        try:
            await app(scope, receive, capture)
        except BaseException:
            await self._store.release(owner, key)
            raise
        start = next((m for m in messages if m["type"] == "http.response.start"), None)
        status = start["status"] if start else 500
        if status >= 500:
            await self._store.release(owner, key)
        else:
            body = b"".join(
                m.get("body", b"") for m in messages if m["type"] == "http.response.body"
            )
            headers = {
                bytes(k).decode("latin-1"): bytes(v).decode("latin-1")
                for k, v in (start or {}).get("headers", ())
                if bytes(k).lower() not in _NOT_STORED
            }
            # Stored before the client sees it: a retry after this response replays it.
            await self._store.complete(owner, key, StoredResponse(status, headers, body))
        for message in messages:
            await send(message)


def idempotency_middleware(idempotency: Callable[[], Idempotency]) -> Callable[[ASGIApp], ASGIApp]:
    """As `Idempotency.middleware`, with the instance looked up per request (it exists
    only once the runtime has started)."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def idempotent(scope: Scope, receive: Receive, send: Send) -> None:
            await idempotency().middleware()(app)(scope, receive, send)

        return idempotent

    return factory


def _fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode()):
        digest.update(part.encode() + b"\0")
    digest.update(body)
    return digest.hexdigest()


async def _replay(send: Send, response: StoredResponse) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    headers += [
        (REPLAYED.encode(), b"true"),
        (b"content-length", str(len(response.body)).encode()),
    ]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
