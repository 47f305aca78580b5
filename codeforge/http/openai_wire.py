"""The OpenAI chat-completions format as a server speaks it: requests in, replies out.

For CodeForge's own OpenAI-compatible endpoint (`/llm/v1`). Requests are read
leniently (clients send fields we do not use; those are ignored) but never guessed
at: a body that is not a chat request is a 400 naming what is wrong. Text given as a
list of parts is joined; images and audio parts are refused (the proxy forwards text
and tool calls only).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

import msgspec
from msgspec import Struct

from codeforge.ports.llm import ChatDelta, ChatMessage, ChatResponse, ToolCall, ToolSpec


class WireError(ValueError):
    """The request is not a chat request this endpoint can serve."""


class _Function(Struct, frozen=True):
    name: str
    arguments: str | dict[str, Any] = "{}"


class _ToolCall(Struct, frozen=True):
    function: _Function
    id: str = ""
    type: str = "function"


class _Message(Struct, frozen=True):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[_ToolCall] = []
    tool_call_id: str | None = None
    name: str | None = None


class _ToolFunction(Struct, frozen=True):
    name: str
    description: str = ""
    parameters: dict[str, Any] = {}


class _Tool(Struct, frozen=True):
    function: _ToolFunction
    type: str = "function"


class _StreamOptions(Struct, frozen=True):
    include_usage: bool = False


class ChatBody(Struct, frozen=True):
    messages: list[_Message]
    model: str = ""
    tools: list[_Tool] = []
    stream: bool = False
    stream_options: _StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    tool_choice: str | dict[str, Any] | None = None


class ParsedChat(Struct, frozen=True, kw_only=True):
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...]
    stream: bool
    include_usage: bool
    max_tokens: int | None
    temperature: float | None
    tool_choice: Literal["auto", "none", "required"] | None
    requested_model: str


_decoder = msgspec.json.Decoder(ChatBody)


def parse_chat(body: bytes) -> ParsedChat:
    try:
        chat = _decoder.decode(body)
    except msgspec.DecodeError as e:
        raise WireError(f"not a chat completion request: {e}") from None
    if not chat.messages:
        raise WireError("messages is empty")
    max_tokens = chat.max_completion_tokens or chat.max_tokens
    if max_tokens is not None and max_tokens < 1:
        raise WireError("max_tokens must be at least 1")
    choice = chat.tool_choice if chat.tool_choice in ("auto", "none", "required") else None
    return ParsedChat(
        messages=tuple(_message(m) for m in chat.messages),
        tools=tuple(
            ToolSpec(
                name=t.function.name,
                description=t.function.description,
                parameters=t.function.parameters or {"type": "object", "properties": {}},
            )
            for t in chat.tools
        ),
        stream=chat.stream,
        include_usage=bool(chat.stream_options and chat.stream_options.include_usage),
        max_tokens=max_tokens,
        temperature=chat.temperature,
        tool_choice=choice,  # type: ignore[arg-type]
        requested_model=chat.model,
    )


def _message(m: _Message) -> ChatMessage:
    return ChatMessage(
        role="system" if m.role == "developer" else m.role,
        content=_text(m.content),
        tool_calls=tuple(
            ToolCall(
                id=c.id or f"call_{i}",
                name=c.function.name,
                arguments=c.function.arguments
                if isinstance(c.function.arguments, str)
                else msgspec.json.encode(c.function.arguments).decode(),
            )
            for i, c in enumerate(m.tool_calls)
        ),
        tool_call_id=m.tool_call_id,
        name=m.name,
    )


def _text(content: str | list[dict[str, Any]] | None) -> str | None:
    if content is None or isinstance(content, str):
        return content
    texts = []
    for part in content:
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            raise WireError(f"message parts of type {kind!r} are not supported (text only)")
    return "".join(texts)


def prompt_chars(parsed: ParsedChat) -> int:
    """The size of what the model will read, in characters (for the cost estimate)."""
    chars = 0
    for m in parsed.messages:
        chars += len(m.content or "") + sum(len(c.arguments) for c in m.tool_calls)
    for t in parsed.tools:
        chars += len(msgspec.json.encode(t.parameters)) + len(t.description)
    return chars


def completion_id() -> str:
    return f"chatcmpl-cf{uuid.uuid4().hex[:24]}"


def completion(response: ChatResponse, model: str, cid: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": response.message.content}
    if response.message.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in response.message.tool_calls
        ]
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": response.finish_reason or "stop"}
        ],
        "usage": usage(response),
    }


def usage(response: ChatResponse) -> dict[str, int]:
    u = response.usage
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
    }


def chunk(
    cid: str,
    model: str,
    delta: dict[str, Any],
    *,
    finish_reason: str | None = None,
    usage_of: ChatResponse | None = None,
) -> bytes:
    body: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": []
        if usage_of
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage_of is not None:
        body["usage"] = usage(usage_of)
    return b"data: " + msgspec.json.encode(body) + b"\n\n"


def delta_body(delta: ChatDelta) -> dict[str, Any]:
    if delta.tool_call_index is None:
        return {"content": delta.content}
    call: dict[str, Any] = {
        "index": delta.tool_call_index,
        "function": {"arguments": delta.arguments},
    }
    if delta.tool_call_id:
        call["id"] = delta.tool_call_id
        call["type"] = "function"
    if delta.tool_name:
        call["function"]["name"] = delta.tool_name
    return {"tool_calls": [call]}


def error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}


DONE = b"data: [DONE]\n\n"
