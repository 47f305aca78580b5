"""A scripted OpenAI-compatible LLM server: the tests' stand-in for every model.

It runs in a thread of its own with its own event loop, on 127.0.0.1 and a free port, so it
answers async tests and tests that block alike (a `subprocess.run` of a CLI that calls it).
The `scripted_llm` fixture (registered for the whole suite in `tests/conftest.py`) starts
one per test:

    async def test_the_agent_reads_a_file(scripted_llm):
        scripted_llm.reply(tool_calls=[("read_file", {"path": "x.py"})])
        scripted_llm.reply(text="Done.")
        ...  # point the code under test at scripted_llm.base_url (…/v1)
        scripted_llm.assert_script_consumed()
        assert scripted_llm.chat_requests[1].json["messages"][-1]["role"] == "tool"

The script is a queue of steps, one consumed per chat request, in arrival order:

- `reply(text=..., tool_calls=[(name, args), (name, args, id)], usage=(in, out) | None,
  finish_reason=..., stream=True | False | None, delay=s, stall_after=n,
  disconnect_after=n, chunk_size=n, model=...)`. `args` is a dict (sent as JSON) or a
  string (sent as is, bad JSON included). Ids default to `call_<step>_<n>`. Usage defaults
  to plausible counts (≈4 characters a token); `None` sends none. `stream=None` streams iff
  the request asked. A stream sends text and each call's arguments in `chunk_size`-
  character pieces, then the finish reason, then usage when `stream_options.include_usage`
  was set, then `[DONE]`; its first event carries only the role. `stall_after=n` goes
  silent after n stream events (until the client leaves); `disconnect_after=n` cuts the
  connection after n stream events (0: before any answer, streamed or whole).
- `slow(seconds, ...)`: a reply after a delay (`delay=` works on every step).
- `fail(status=429, retry_after=1)`, `fail(status=500)`, `fail(status=400, body={...})`:
  an error in OpenAI's shape (`error_body(...)`, `CONTEXT_TOO_LONG`), or any JSON or text
  body; `headers=` adds headers.
- `raw(body, status=200, content_type=...)`: exact bytes (bad JSON, invalid UTF-8); a list
  of byte strings is sent piece by piece as a stream.
- `add(step, ...)`: steps built with the module-level `reply`, `fail`, `raw` (reusable
  values: `add(step, step)` plays one reply twice, e.g. whole then streamed).
- `respond(fn)`: a step computed when its request arrives: `fn(request_json) -> Step`
  (build it with the module-level `reply`, `fail`, `raw`). `server.responder = fn` answers
  every chat request the queue has no step for.

A chat request with no step left is answered 500 "scripted LLM: script exhausted", so a
test fails saying so. `fail`, `raw` and `slow` take `endpoint="embeddings"` or
`endpoint="models"` to script those endpoints instead (`slow` there: the normal answer,
late); with nothing scripted they answer normally.

Also served: `GET /v1/models` (the `models` given, default `scripted-model`), `GET
/v1/model/info` and `/model/info` (LiteLLM's shape: `model_name`, `litellm_params`,
`model_info` with whatever prices the `models` mapping gave, e.g. `input_cost_per_token`),
`POST /v1/embeddings` (deterministic: a hashed bag of lowercased words and their camelCase
/ snake_case pieces, L2-normalised, `embedding_dimensions` or the request's
`dimensions`; similar texts get similar vectors; `embedding_order="reversed"` sends them
out of order, with the right `index`). `api_key=` makes every `/v1` route answer 401 to
another key — echoing the key it got, as a careless provider would, so tests can prove
it is scrubbed. `reject_unknown_models=True` answers 404 `model_not_found` for models not
in `models`.

Every `/v1` request is recorded (`requests`, `chat_requests`: method, path, headers, body,
JSON, the step that answered it, whether the client disconnected before the answer was
complete). `wait_for(...)` (blocking) and `await wait_for_async(...)` wait for a condition.

Standalone, for tests that drive another process (browser tests):

    python -m tests.support.scripted_llm --port 8123 [--script steps.json] [--api-key K]

prints its base URL as the first line of stdout, and takes `POST /_script` (a step or a
list of steps, as JSON: `{"kind": "reply", "text": "hi"}`, `{"kind": "fail", "status":
429, "retry_after": 1}`; tool calls as `{"name": ..., "arguments": ..., "id": ...}`),
`GET /_script` (steps left), `DELETE /_script` (clear) and `GET /_requests` (what it has
received). It stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import math
import random
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest
from aiohttp import web

__all__ = [
    "CONTEXT_TOO_LONG",
    "DEFAULT_MODEL",
    "RecordedRequest",
    "ScriptedCall",
    "ScriptedLLM",
    "Step",
    "embedding",
    "error_body",
    "fail",
    "raw",
    "reply",
    "scripted_llm",
]

DEFAULT_MODEL = "scripted-model"
Endpoint = Literal["chat", "embeddings", "models"]
Auto = Literal["auto"]
T = TypeVar("T")
STALL_SECONDS = 3600.0  # "forever": until the client leaves or the server stops

# ---------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class ScriptedCall:
    name: str
    arguments: str
    """JSON text, sent exactly as given."""
    id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Step:
    """One scripted answer. Build it with `reply`, `fail` or `raw`."""

    kind: Literal["reply", "fail", "raw"]
    endpoint: Endpoint = "chat"
    delay: float = 0.0
    # reply
    text: str | None = None
    tool_calls: tuple[ScriptedCall, ...] = ()
    usage: tuple[int, int] | Auto | None = "auto"
    finish_reason: str | None = None
    stream: bool | None = None
    model: str | None = None
    chunk_size: int = 8
    stall_after: int | None = None
    disconnect_after: int | None = None
    # fail, raw
    status: int = 200
    retry_after: float | str | None = None
    body: Any = None
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Step:
        """A step from its JSON form (`POST /_script`, `--script`)."""
        values = dict(data)
        kind = values.pop("kind", "reply")
        if kind == "reply":
            return reply(**values)
        if kind == "fail":
            return fail(**values)
        if kind == "raw":
            body = values.pop("body", b"")
            if isinstance(body, list):
                body = [piece.encode() for piece in body]
            return raw(body, **values)
        raise ValueError(f"unknown step kind {kind!r}: use reply, fail or raw")


ToolCallLike = ScriptedCall | Mapping[str, Any] | Sequence[Any]


def _call(value: ToolCallLike) -> ScriptedCall:
    if isinstance(value, ScriptedCall):
        return value
    if isinstance(value, Mapping):
        name, arguments, cid = value["name"], value.get("arguments", {}), value.get("id")
    else:
        name, arguments, cid = (*value, None)[:3]
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return ScriptedCall(name=name, arguments=arguments, id=cid)


def reply(
    text: str | None = None,
    tool_calls: Iterable[ToolCallLike] = (),
    *,
    usage: tuple[int, int] | Sequence[int] | Auto | None = "auto",
    finish_reason: str | None = None,
    stream: bool | None = None,
    model: str | None = None,
    delay: float = 0.0,
    chunk_size: int = 8,
    stall_after: int | None = None,
    disconnect_after: int | None = None,
) -> Step:
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    return Step(
        kind="reply",
        text=text,
        tool_calls=tuple(_call(c) for c in tool_calls),
        usage=usage if usage is None or usage == "auto" else (int(usage[0]), int(usage[1])),
        finish_reason=finish_reason,
        stream=stream,
        model=model,
        delay=delay,
        chunk_size=chunk_size,
        stall_after=stall_after,
        disconnect_after=disconnect_after,
    )


def error_body(
    message: str,
    *,
    type: str = "invalid_request_error",  # OpenAI's field name
    code: str | int | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """An error in OpenAI's shape."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


CONTEXT_TOO_LONG = error_body(
    "This model's maximum context length is 8192 tokens. However, your messages resulted in "
    "9021 tokens. Please reduce the length of the messages.",
    code="context_length_exceeded",
    param="messages",
)

_DEFAULT_ERRORS = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to use this model.", "invalid_request_error", None),
    404: ("The model does not exist.", "invalid_request_error", "model_not_found"),
    429: ("Rate limit reached. Please try again later.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}  # fmt: skip


def fail(
    status: int = 500,
    *,
    retry_after: float | str | None = None,
    body: Any = None,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
    delay: float = 0.0,
    endpoint: Endpoint = "chat",
) -> Step:
    """An error answer: `body` as given (JSON for dicts and lists, else text), or OpenAI's
    shape with `message` (a default per status when omitted)."""
    if body is None:
        default, kind, code = _DEFAULT_ERRORS.get(status, (f"HTTP {status}", "server_error", None))
        body = error_body(message or default, type=kind, code=code)
    return Step(
        kind="fail",
        status=status,
        retry_after=retry_after,
        body=body,
        headers=dict(headers or {}),
        delay=delay,
        endpoint=endpoint,
    )


def raw(
    body: bytes | str | Sequence[bytes],
    *,
    status: int = 200,
    content_type: str | None = None,
    headers: Mapping[str, str] | None = None,
    delay: float = 0.0,
    endpoint: Endpoint = "chat",
) -> Step:
    """Exactly these bytes; a list of byte strings is streamed piece by piece."""
    if isinstance(body, str):
        body = body.encode()
    streamed = not isinstance(body, bytes)
    return Step(
        kind="raw",
        status=status,
        body=body if not streamed else tuple(body),
        content_type=content_type or ("text/event-stream" if streamed else "application/json"),
        headers=dict(headers or {}),
        delay=delay,
        endpoint=endpoint,
    )


Responder = Callable[[Any], Step]


# ---------------------------------------------------------------------------- records


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    """The body as JSON (None when it is not JSON)."""
    step: Step | None = None
    """The step that answered it (None for checks, defaults and exhausted scripts)."""
    status: int | None = None
    disconnected: bool = False
    """The client left before the answer was complete."""


# ---------------------------------------------------------------------------- embeddings

_WORD = re.compile(r"[A-Za-z0-9_]+")
_PIECE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def embedding(text: str, dimensions: int = 64) -> list[float]:
    """A deterministic unit vector: a signed hashed bag of lowercased words and their
    camelCase/snake_case pieces ("readFile" and "read_file" both count as "readfile",
    "read" and "file")."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text):
        pieces = [p.lower() for p in _PIECE.findall(word)]
        for token in [*pieces, "".join(pieces)] if len(pieces) > 1 else pieces:
            digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
            vector[int.from_bytes(digest[:4], "big") % dimensions] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0:  # no words at all: one fixed unit vector for every such text
        return [1.0] + [0.0] * (dimensions - 1)
    return [x / norm for x in vector]


def _tokens(chars: int) -> int:
    return max(1, math.ceil(chars / 4))


# ---------------------------------------------------------------------------- the server


class ScriptedLLM:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        models: Sequence[str] | Mapping[str, Mapping[str, Any]] = (DEFAULT_MODEL,),
        reject_unknown_models: bool = False,
        embedding_dimensions: int = 64,
        embedding_order: Literal["given", "reversed", "shuffled"] = "given",
        chunk_delay: float = 0.0,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.models: dict[str, dict[str, Any]] = (
            {k: dict(v) for k, v in models.items()}
            if isinstance(models, Mapping)
            else {m: {} for m in models}
        )
        self.reject_unknown_models = reject_unknown_models
        self.embedding_dimensions = embedding_dimensions
        self.embedding_order = embedding_order
        self.chunk_delay = chunk_delay
        """Seconds between streamed events (0: as fast as the socket takes them)."""
        self.responder: Responder | None = None
        """Answers chat requests the queue has no step for (None: "script exhausted")."""
        self._lock = threading.RLock()  # `wait_for` conditions read state under it
        self._changed = threading.Condition(self._lock)
        self._queues: dict[Endpoint, deque[Step | Responder]] = {
            "chat": deque(),
            "embeddings": deque(),
            "models": deque(),
        }
        self._records: list[RecordedRequest] = []
        self._errors: list[str] = []
        self._served = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- life ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root, …/v1."""
        return f"{self.url}/v1"

    def start(self) -> ScriptedLLM:
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as e:
                failure.append(e)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="scripted-llm", daemon=True)
        self._thread.start()
        if not started.wait(30) or failure:
            self._thread = None
            raise RuntimeError(f"the scripted LLM server did not start: {failure[:1]}")
        return self

    def stop(self) -> None:
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None:
            return
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._thread = self._loop = self._runner = None

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/model/info", self._model_info)
        app.router.add_get("/model/info", self._model_info)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_route("*", "/_script", self._script_route)
        app.router.add_get("/_requests", self._requests_route)
        # A client that leaves cancels its handler: that is how a disconnect is observed.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=0.25
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    # -- the script ---------------------------------------------------------------------------

    def _push(self, step: Step | Responder, endpoint: Endpoint = "chat") -> ScriptedLLM:
        with self._lock:
            self._queues[endpoint].append(step)
        return self

    def add(self, *steps: Step) -> ScriptedLLM:
        """Queue steps built with `reply`, `fail`, `raw`."""
        for step in steps:
            self._push(step, step.endpoint)
        return self

    def reply(
        self, text: str | None = None, tool_calls: Iterable[ToolCallLike] = (), **options: Any
    ) -> ScriptedLLM:
        return self.add(reply(text, tool_calls, **options))

    def slow(
        self, seconds: float, text: str | None = "", *, endpoint: Endpoint = "chat", **options: Any
    ) -> ScriptedLLM:
        """A reply after `seconds`; on embeddings or models, their normal answer, late."""
        return self.add(replace(reply(text, delay=seconds, **options), endpoint=endpoint))

    def fail(self, status: int = 500, **options: Any) -> ScriptedLLM:
        return self.add(fail(status, **options))

    def raw(self, body: bytes | str | Sequence[bytes], **options: Any) -> ScriptedLLM:
        return self.add(raw(body, **options))

    def respond(self, responder: Responder) -> ScriptedLLM:
        """One step computed from the request's JSON when it arrives."""
        return self._push(responder)

    @property
    def remaining(self) -> int:
        """Chat steps not yet consumed."""
        with self._lock:
            return len(self._queues["chat"])

    def clear(self) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.clear()

    def assert_script_consumed(self) -> None:
        with self._lock:
            left = {name: list(q) for name, q in self._queues.items() if q}
            errors = list(self._errors)
        assert not errors, f"scripted LLM: responder errors: {errors}"
        assert not left, f"scripted LLM: steps never requested: {left}"

    def _next(self, endpoint: Endpoint, request: Any) -> Step | None:
        with self._lock:
            queue = self._queues[endpoint]
            step = queue.popleft() if queue else None
        if step is None and endpoint == "chat":
            step = self.responder
        if step is None or isinstance(step, Step):
            return step
        try:
            made = step(request)
        except Exception as e:
            made = fail(500, message=f"scripted LLM: the responder raised {e!r}")
            self._note_error(f"{type(e).__name__}: {e}")
        if not isinstance(made, Step):
            self._note_error(f"a responder returned {made!r}, not a Step")
            made = fail(500, message="scripted LLM: the responder returned no step")
        return made

    def _note_error(self, error: str) -> None:
        with self._lock:
            self._errors.append(error)

    # -- what was received --------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._records)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/v1/chat/completions"]

    def wait_for(self, condition: Callable[[ScriptedLLM], bool], timeout: float = 10.0) -> None:
        """Block until `condition(server)` holds (from sync tests; async tests: `wait_for_async`,
        since blocking their loop would stop the very client being waited for)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"scripted LLM: condition not met in {timeout} s")
                self._changed.wait(min(left, 0.05))

    async def wait_for_async(
        self,
        condition: Callable[[ScriptedLLM], bool],
        timeout: float = 10.0,
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"scripted LLM: condition not met in {timeout} s")
            await asyncio.sleep(0.01)

    def _update(self, record: RecordedRequest, **changes: Any) -> None:
        with self._changed:
            for name, value in changes.items():
                setattr(record, name, value)
            self._changed.notify_all()

    async def _record(self, request: web.Request) -> RecordedRequest:
        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            body=body,
            json=parsed,
        )
        with self._changed:
            self._records.append(record)
            self._changed.notify_all()
        return record

    # -- handlers -----------------------------------------------------------------------------

    def _refused(self, request: web.Request, record: RecordedRequest) -> web.Response | None:
        """401 for a wrong key, 404 for an unknown model, when those checks are on."""
        if self.api_key is not None:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if given != self.api_key:
                return self._json(
                    record,
                    error_body(
                        f"Incorrect API key provided: {given or '(none)'}. You can find your "
                        "API key at https://platform.example/account/api-keys.",
                        code="invalid_api_key",
                    ),
                    status=401,
                )
        model = record.json.get("model") if isinstance(record.json, dict) else None
        if self.reject_unknown_models and model is not None and model not in self.models:
            return self._json(
                record,
                error_body(
                    f"The model `{model}` does not exist or you do not have access to it.",
                    code="model_not_found",
                ),
                status=404,
            )
        return None

    def _json(self, record: RecordedRequest, body: Any, status: int = 200) -> web.Response:
        self._update(record, status=status)
        return web.json_response(body, status=status)

    async def _guard(self, record: RecordedRequest, play: Awaitable[T]) -> T:
        try:
            return await play
        except (asyncio.CancelledError, ConnectionResetError):
            self._update(record, disconnected=True)
            raise

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        record = await self._record(request)
        if (refused := self._refused(request, record)) is not None:
            return refused
        body = record.json
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._json(
                record, error_body("scripted LLM: the body needs a `messages` array"), status=400
            )
        step = self._next("chat", body)
        if step is None:
            served = sum(1 for r in self.chat_requests)
            return self._json(
                record,
                error_body(
                    f"scripted LLM: script exhausted (chat request {served} has no step; "
                    "add one with reply/fail/raw/respond)",
                    type="server_error",
                    code="script_exhausted",
                ),
                status=500,
            )
        self._update(record, step=step)
        return await self._guard(record, self._play(request, record, step, body))

    async def _play(
        self, request: web.Request, record: RecordedRequest, step: Step, body: dict[str, Any]
    ) -> web.StreamResponse:
        if step.delay:
            await asyncio.sleep(step.delay)
        if step.kind == "fail":
            return self._failure(record, step)
        if step.kind == "raw":
            return await self._raw(request, record, step)
        if step.disconnect_after == 0:
            return self._cut(request, record)
        number = next(self._served)
        calls = [replace(c, id=c.id or f"call_{number}_{n}") for n, c in enumerate(step.tool_calls)]
        usage = self._usage(step, body, calls)
        stream = step.stream if step.stream is not None else bool(body.get("stream"))
        model = step.model or body.get("model") or DEFAULT_MODEL
        if stream:
            options = body.get("stream_options")
            with_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            return await self._stream(
                request, record, step, calls, usage if with_usage else None, model, number
            )
        # No text: null beside tool calls (as OpenAI sends it), else an empty string.
        content = step.text if step.text is not None or calls else ""
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = [_wire_call(c) for c in calls]
        answer: dict[str, Any] = {
            "id": f"chatcmpl-scripted-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": _finish(step, calls)}],
        }
        if usage is not None:
            answer["usage"] = usage
        return self._json(record, answer)

    def _usage(
        self, step: Step, body: dict[str, Any], calls: list[ScriptedCall]
    ) -> dict[str, int] | None:
        if step.usage is None:
            return None
        if step.usage == "auto":
            sent = _tokens(len(json.dumps(body.get("messages", []))))
            made = _tokens(
                len(step.text or "") + sum(len(c.name) + len(c.arguments) for c in calls)
            )
            prompt, completion = sent, made
        else:
            prompt, completion = step.usage
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _failure(self, record: RecordedRequest, step: Step) -> web.Response:
        headers = dict(step.headers)
        if step.retry_after is not None:
            headers["Retry-After"] = (
                step.retry_after if isinstance(step.retry_after, str) else f"{step.retry_after:g}"
            )
        self._update(record, status=step.status)
        if isinstance(step.body, dict | list):
            return web.json_response(step.body, status=step.status, headers=headers)
        text = step.body if isinstance(step.body, bytes) else str(step.body).encode()
        return web.Response(
            body=text, status=step.status, headers=headers, content_type="text/plain"
        )

    async def _raw(
        self, request: web.Request, record: RecordedRequest, step: Step
    ) -> web.StreamResponse:
        self._update(record, status=step.status)
        headers = {"Content-Type": step.content_type or "application/json", **step.headers}
        if isinstance(step.body, bytes):
            return web.Response(body=step.body, status=step.status, headers=headers)
        response = web.StreamResponse(status=step.status, headers=headers)
        await response.prepare(request)
        for piece in step.body:
            await response.write(piece)
            await asyncio.sleep(self.chunk_delay)
        await response.write_eof()
        return response

    def _cut(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        self._update(record, disconnected=True)
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # aiohttp drops a cancelled handler's request quietly

    async def _stream(
        self,
        request: web.Request,
        record: RecordedRequest,
        step: Step,
        calls: list[ScriptedCall],
        usage: dict[str, int] | None,
        model: str,
        number: int,
    ) -> web.StreamResponse:
        base = {
            "id": f"chatcmpl-scripted-{number}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        if usage is not None:
            base["usage"] = None  # as OpenAI does: null on every chunk but the last

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        events = [chunk({"role": "assistant", "content": ""})]
        size = step.chunk_size
        text = step.text or ""
        events += [chunk({"content": text[i : i + size]}) for i in range(0, len(text), size)]
        for n, call in enumerate(calls):
            first: dict[str, Any] = {"index": n, "id": call.id, "type": "function"}
            first["function"] = {"name": call.name, "arguments": ""}
            events.append(chunk({"tool_calls": [first]}))
            for i in range(0, len(call.arguments), size):
                piece = {"index": n, "function": {"arguments": call.arguments[i : i + size]}}
                events.append(chunk({"tool_calls": [piece]}))
        events.append(chunk({}, _finish(step, calls)))
        if usage is not None:
            events.append({**base, "choices": [], "usage": usage})

        self._update(record, status=200)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        for sent, event in enumerate(events):
            if sent == step.stall_after:
                await asyncio.sleep(STALL_SECONDS)
            if sent == step.disconnect_after:
                return self._cut(request, record)
            await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            await asyncio.sleep(self.chunk_delay)
        if step.stall_after is not None and step.stall_after >= len(events):
            await asyncio.sleep(STALL_SECONDS)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _scripted(
        self, request: web.Request, record: RecordedRequest, step: Step
    ) -> web.StreamResponse | None:
        """A scripted step on embeddings or models; None: answer normally (after its delay)."""
        self._update(record, step=step)
        if step.delay:
            await asyncio.sleep(step.delay)
        if step.kind == "fail":
            return self._failure(record, step)
        if step.kind == "raw":
            return await self._raw(request, record, step)
        return None

    async def _models(self, request: web.Request) -> web.StreamResponse:
        record = await self._record(request)
        if (refused := self._refused(request, record)) is not None:
            return refused
        if (step := self._next("models", None)) is not None and (
            answered := await self._guard(record, self._scripted(request, record, step))
        ) is not None:
            return answered
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "scripted-llm"}
            for m in self.models
        ]
        return self._json(record, {"object": "list", "data": data})

    async def _model_info(self, request: web.Request) -> web.StreamResponse:
        record = await self._record(request)
        if (refused := self._refused(request, record)) is not None:
            return refused
        data = [
            {
                "model_name": m,
                "litellm_params": {"model": m},
                "model_info": {"id": m, "mode": "chat", **info},
            }
            for m, info in self.models.items()
        ]
        return self._json(record, {"data": data})

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        record = await self._record(request)
        if (refused := self._refused(request, record)) is not None:
            return refused
        body = record.json if isinstance(record.json, dict) else {}
        if (step := self._next("embeddings", body)) is not None and (
            answered := await self._guard(record, self._scripted(request, record, step))
        ) is not None:
            return answered
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            return self._json(
                record, error_body("scripted LLM: `input` must be a string or strings"), status=400
            )
        dimensions = body.get("dimensions") or self.embedding_dimensions
        data = [
            {"object": "embedding", "index": n, "embedding": embedding(text, dimensions)}
            for n, text in enumerate(inputs)
        ]
        if self.embedding_order == "reversed":
            data.reverse()
        elif self.embedding_order == "shuffled":
            random.Random(len(data)).shuffle(data)
        tokens = sum(_tokens(len(t)) for t in inputs)
        return self._json(
            record,
            {
                "object": "list",
                "data": data,
                "model": body.get("model", DEFAULT_MODEL),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    # -- control (standalone) -----------------------------------------------------------------

    async def _script_route(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            return web.json_response({"remaining": self.remaining})
        if request.method == "DELETE":
            self.clear()
            return web.json_response({"remaining": 0})
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST", "DELETE"])
        try:
            data = await request.json()
            steps = [Step.from_json(s) for s in (data if isinstance(data, list) else [data])]
        except (ValueError, TypeError, KeyError) as e:
            return web.json_response({"error": f"not a step: {e}"}, status=400)
        self.add(*steps)
        return web.json_response({"queued": len(steps), "remaining": self.remaining})

    async def _requests_route(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {
                    "method": r.method,
                    "path": r.path,
                    "headers": r.headers,
                    "json": r.json,
                    "status": r.status,
                    "disconnected": r.disconnected,
                }
                for r in self.requests
            ]
        )


def _wire_call(call: ScriptedCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def _finish(step: Step, calls: Sequence[ScriptedCall]) -> str:
    return step.finish_reason or ("tool_calls" if calls else "stop")


# ---------------------------------------------------------------------------- fixture, CLI


@pytest.fixture
def scripted_llm() -> Iterator[ScriptedLLM]:
    """A scripted OpenAI-compatible server for this test (see the module docstring)."""
    with ScriptedLLM() as server:
        yield server


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.scripted_llm",
        description="A scripted OpenAI-compatible LLM server; prints its base URL first.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--script", type=Path, help="a JSON file: a list of steps")
    parser.add_argument("--api-key", help="answer 401 to any other key")
    parser.add_argument("--model", action="append", help="a model id to list (repeatable)")
    parser.add_argument("--reject-unknown-models", action="store_true")
    args = parser.parse_args(argv)

    server = ScriptedLLM(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        models=args.model or (DEFAULT_MODEL,),
        reject_unknown_models=args.reject_unknown_models,
    )
    if args.script is not None:
        steps = json.loads(args.script.read_text())
        server.add(*(Step.from_json(s) for s in (steps if isinstance(steps, list) else [steps])))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with server:
        print(server.base_url, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
