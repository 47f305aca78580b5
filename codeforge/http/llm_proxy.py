"""/llm/v1 — CodeForge's OpenAI-compatible endpoint for backends that call a model themselves.

Authenticated by a per-run token (`Authorization: Bearer cfr_…`), not an API key;
errors come in OpenAI's shape (`{"error": {"message", "type", "code"}}`) so OpenAI
clients (litellm, the openai SDK) read them. The status tells a client what to do:
401 a bad token, 409 the run has ended, 402 a budget is spent (not worth retrying),
400 a request it must change (context too long: `context_length_exceeded`), 502 the
upstream model refused CodeForge's own configuration, 503 upstream out of reach
(with `Retry-After` when the provider said).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Controller, Request, Response, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.response import Stream

from codeforge.agent.conversation import CHARS_PER_TOKEN
from codeforge.agent.llm_proxy import LlmProxy
from codeforge.domain.errors import (
    BudgetExceeded,
    Conflict,
    DomainError,
    NotFound,
    Unauthenticated,
    ValidationFailed,
)
from codeforge.http import openai_wire as wire
from codeforge.ports.errors import PortError
from codeforge.ports.llm import (
    ChatDelta,
    ChatRequest,
    LlmContextTooLong,
    LlmError,
    LlmUnavailable,
)

if TYPE_CHECKING:
    from codeforge.runtime import Runtime


def _token(request: Request[Any, Any, Any]) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send the run's token as `Authorization: Bearer cfr_…`")
    return token.strip()


class LlmProxyController(Controller):
    path = "/"
    include_in_schema = False

    @get("/models")
    async def models(
        self, request: Request[Any, Any, Any], proxy: NamedDependency[LlmProxy]
    ) -> dict[str, Any]:
        call = await proxy.open_call(_token(request))
        model = {"id": call.model.name, "object": "model", "owned_by": "codeforge"}
        return {"object": "list", "data": [model]}

    @post("/chat/completions", status_code=200)
    async def chat(
        self, request: Request[Any, Any, Any], proxy: NamedDependency[LlmProxy]
    ) -> Response[Any]:
        call = await proxy.open_call(_token(request))
        parsed = wire.parse_chat(await request.body())
        hold = await proxy.hold(call, int(wire.prompt_chars(parsed) / CHARS_PER_TOKEN) + 1)
        forwarded = ChatRequest(
            endpoint=call.endpoint,
            messages=parsed.messages,
            tools=parsed.tools,
            max_tokens=parsed.max_tokens,
            temperature=parsed.temperature,
            tool_choice=parsed.tool_choice,
        )
        cid = wire.completion_id()
        name = call.model.name
        if not parsed.stream:
            response = await proxy.forward(call, hold, forwarded)
            return Response(wire.completion(response, name, cid))

        pieces: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def relay(delta: ChatDelta) -> None:
            await pieces.put(wire.chunk(cid, name, wire.delta_body(delta)))

        async def produce() -> None:
            try:
                await pieces.put(wire.chunk(cid, name, {"role": "assistant", "content": ""}))
                response = await proxy.forward(call, hold, forwarded, on_delta=relay)
                finish = response.finish_reason or "stop"
                await pieces.put(wire.chunk(cid, name, {}, finish_reason=finish))
                if parsed.include_usage:
                    await pieces.put(wire.chunk(cid, name, {}, usage_of=response))
            except (DomainError, PortError) as e:
                # The status line is sent: the error travels in the stream, as OpenAI does.
                await pieces.put(b"data: " + msgspec.json.encode(_error(e)[1]) + b"\n\n")
            finally:
                await pieces.put(wire.DONE)
                await pieces.put(None)

        async def body() -> AsyncIterator[bytes]:
            task = asyncio.create_task(produce())
            try:
                while (piece := await pieces.get()) is not None:
                    yield piece
            finally:
                if not task.done():  # the client left: stop the upstream call too
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        return Stream(
            body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def _error(error: Exception) -> tuple[int, dict[str, Any]]:
    message = getattr(error, "message", None) or str(error)
    match error:
        case Unauthenticated():
            return 401, wire.error(message, "invalid_request_error", "invalid_api_key")
        case BudgetExceeded():
            return 402, wire.error(message, "insufficient_quota", "budget_exceeded")
        case Conflict():
            return 409, wire.error(message, "invalid_request_error", "run_ended")
        case NotFound():
            return 404, wire.error(message, "invalid_request_error", "not_found")
        case ValidationFailed() | wire.WireError():
            return 400, wire.error(message, "invalid_request_error", None)
        case LlmContextTooLong():
            return 400, wire.error(message, "invalid_request_error", "context_length_exceeded")
        case LlmUnavailable():
            return 503, wire.error(message, "api_error", "upstream_unavailable")
        case LlmError():
            return 502, wire.error(message, "api_error", "upstream_error")
    return 502, wire.error(message, "api_error", None)


def _handle(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    status, body = _error(error)
    headers = {}
    if isinstance(error, LlmUnavailable) and error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return Response(body, status_code=status, headers=headers)


def llm_proxy_router(runtime: Runtime) -> Router:
    return proxy_router(lambda: runtime.services.llm_proxy)


def proxy_router(proxy: Callable[[], LlmProxy]) -> Router:
    """The /llm/v1 routes over the proxy `proxy()` returns (the API's, or a worker's socket)."""
    return Router(
        path="/llm/v1",
        route_handlers=[LlmProxyController],
        dependencies={"proxy": Provide(proxy, sync_to_thread=False)},
        exception_handlers={
            DomainError: _handle,
            PortError: _handle,
            wire.WireError: _handle,
        },
        include_in_schema=False,
    )
