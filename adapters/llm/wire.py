"""The OpenAI chat-completions wire format: request bodies out, replies in.

Replies are read leniently — providers differ in what they leave out — but never
guessed at: what cannot be read is an `LlmBadResponse` naming what was wrong.

- Text: `content` as a string or a list of text parts; "" and null both mean no text.
- Tool calls: `arguments` as JSON text (an object, as Ollama sends, is encoded back to
  text); a missing id becomes `call_<n>`, so results can still be matched to calls.
- Streams: server-sent events with `data:` lines up to `[DONE]`; tool-call pieces are
  joined by their `index` (in order of first appearance), id and name taken from the
  first piece that carries them. `StreamAssembler.result()` equals `decode_completion`
  of the same reply sent whole.
- Text is UTF-8 with invalid bytes replaced (U+FFFD), and lone surrogates (valid JSON
  escapes that no UTF-8 consumer downstream could store) replaced too — in replies, and
  in requests (a tool's output may hold one; JSON on the wire cannot).
"""

from __future__ import annotations

import array
import base64
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

import msgspec
from msgspec import Struct

from codeforge.ports.llm import (
    ChatDelta,
    ChatMessage,
    ChatRequest,
    LlmBadResponse,
    ToolCall,
    Usage,
)

__all__ = [
    "ProviderError",
    "Reply",
    "SseDecoder",
    "StreamAssembler",
    "chat_body",
    "decode_completion",
    "decode_embeddings",
    "decode_models",
    "deltas_of",
    "encode",
    "estimate_usage",
    "loads",
]

CHARS_PER_TOKEN = 4


# ---------------------------------------------------------------------------- out


def _message_out(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role}
    if message.tool_calls:
        out["content"] = message.content  # null is how OpenAI says "only tool calls"
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    else:
        out["content"] = message.content or ""
    if message.role == "tool":
        if message.tool_call_id is not None:
            out["tool_call_id"] = message.tool_call_id
        if message.name is not None:
            out["name"] = message.name
    return out


def chat_body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.endpoint.model,
        "messages": [_message_out(m) for m in request.messages],
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                },
            }
            for tool in request.tools
        ]
    if request.tool_choice is not None:
        body["tool_choice"] = request.tool_choice
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    return body


# ---------------------------------------------------------------------------- text


def encode(body: Any) -> bytes:
    """JSON for the wire; lone surrogates (which UTF-8 cannot carry) replaced by U+FFFD."""
    try:
        return msgspec.json.encode(body)
    except UnicodeEncodeError:
        return msgspec.json.encode(_clean_tree(body))


def _clean(text: str) -> str:
    """Lone surrogates replaced by U+FFFD (pairs written as two escapes are joined)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def loads(raw: bytes, what: str) -> Any:
    """JSON from a provider: invalid UTF-8 replaced, lone surrogates replaced."""
    try:
        return msgspec.json.decode(raw)
    except RecursionError as e:
        raise LlmBadResponse(f"{what} is JSON nested too deeply to read") from e
    except msgspec.DecodeError:
        pass  # invalid UTF-8 or a lone surrogate escape: the slower, forgiving path
    try:
        return _clean_tree(json.loads(raw.decode("utf-8", "replace")))
    except (ValueError, RecursionError) as e:
        snippet = " ".join(raw[:200].decode("utf-8", "replace").split())
        raise LlmBadResponse(f"{what} is not JSON ({e}): {snippet!r}") from e


def _clean_tree(value: Any) -> Any:
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, list):
        return [_clean_tree(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean_tree(v) for k, v in value.items()}
    return value


def _text(content: str | list[Any] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(
        part["text"]
        for part in content
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    )


def _arguments(value: str | dict[str, Any] | list[Any] | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


# ---------------------------------------------------------------------------- in: shapes


class _Function(Struct):
    name: str | None = None
    arguments: str | dict[str, Any] | list[Any] | None = None


class _ToolCall(Struct):
    index: int | None = None
    id: str | None = None
    function: _Function | None = None


class _Message(Struct):
    content: str | list[Any] | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(Struct):
    index: int | None = 0
    message: _Message | None = None
    delta: _Message | None = None
    finish_reason: str | None = None


class _Usage(Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Completion(Struct):
    choices: list[_Choice] | None = None
    usage: _Usage | None = None
    model: str | None = None
    error: Any = None


class ProviderError(Exception):
    """A 2xx reply (or a stream event) that carries an error object instead of an answer."""

    def __init__(self, status: int, body: bytes) -> None:
        # Not the body: it is quoted (redacted) by the error it becomes, never from here.
        super().__init__(f"an error object in a reply (status {status})")
        self.status = status
        self.body = body


def _completion(value: Any, what: str) -> _Completion:
    try:
        wire = msgspec.convert(value, _Completion, strict=False)
    except msgspec.ValidationError as e:
        raise LlmBadResponse(f"{what} is not a chat completion: {e}") from e
    if wire.error is not None and not wire.choices:
        code = wire.error.get("code") if isinstance(wire.error, dict) else None
        try:
            status = int(code) if code is not None else 502
        except (TypeError, ValueError):
            status = 502
        if not 400 <= status < 600:
            status = 502
        raise ProviderError(status, msgspec.json.encode({"error": wire.error}))
    return wire


class Reply(Struct, frozen=True, kw_only=True):
    """A reply as read, before latency, attempts and (when missing) usage are added."""

    message: ChatMessage
    usage: Usage | None
    finish_reason: str
    model: str


def _usage(wire: _Usage | None) -> Usage | None:
    if wire is None or (wire.prompt_tokens is None and wire.completion_tokens is None):
        return None
    return Usage(
        input_tokens=max(0, wire.prompt_tokens or 0),
        output_tokens=max(0, wire.completion_tokens or 0),
    )


def _message(content: str, calls: Sequence[tuple[str, str, str]]) -> ChatMessage:
    return ChatMessage(
        role="assistant",
        content=_clean(content) or None,
        tool_calls=tuple(
            ToolCall(id=_clean(cid) or f"call_{n}", name=_clean(name), arguments=_clean(args))
            for n, (cid, name, args) in enumerate(calls)
        ),
    )


def decode_completion(raw: bytes, what: str = "the reply") -> Reply:
    wire = _completion(loads(raw, what), what)
    choices = wire.choices or []
    choice = next((c for c in choices if not c.index), choices[0] if choices else None)
    if choice is None or choice.message is None:
        raise LlmBadResponse(f"{what} has no message (no choices[0].message)")
    calls = [
        (call.id or "", call.function.name or "" if call.function else "",
         _arguments(call.function.arguments) if call.function else "")
        for call in choice.message.tool_calls or ()
    ]  # fmt: skip
    return Reply(
        message=_message(_text(choice.message.content), calls),
        usage=_usage(wire.usage),
        finish_reason=choice.finish_reason or "",
        model=wire.model or "",
    )


def deltas_of(message: ChatMessage) -> list[ChatDelta]:
    """The deltas of a whole message: for a provider that answered a stream request whole."""
    deltas = [ChatDelta(content=message.content)] if message.content else []
    deltas += [
        ChatDelta(tool_call_index=n, tool_call_id=c.id, tool_name=c.name, arguments=c.arguments)
        for n, c in enumerate(message.tool_calls)
    ]
    return deltas


# ---------------------------------------------------------------------------- in: streams


class SseDecoder:
    """Server-sent events from bytes as they arrive: the `data` of each complete event.

    Lines end with LF or CRLF; a blank line ends an event; `data:` lines of one event are
    joined with LF; comments and other fields are ignored. Bytes are split at LF before
    any decoding, so a character split across network reads arrives whole.
    """

    def __init__(self, max_event_bytes: int) -> None:
        self._max = max_event_bytes
        self._buffer = bytearray()
        self._data: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        events: list[bytes] = []
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            self._line(bytes(self._buffer[start:end]).removesuffix(b"\r"), events)
            start = end + 1
        del self._buffer[:start]
        if len(self._buffer) + self._size > self._max:
            raise LlmBadResponse(f"a streamed event is larger than {self._max} bytes")
        return events

    def close(self) -> list[bytes]:
        """Whatever the stream held when it ended (a last event without its blank line)."""
        events: list[bytes] = []
        if self._buffer:
            self._line(bytes(self._buffer).removesuffix(b"\r"), events)
            self._buffer.clear()
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[bytes]) -> None:
        if not line:
            if self._data:
                events.append(b"\n".join(self._data))
                self._data, self._size = [], 0
            return
        field, _, value = line.partition(b":")
        if field == b"data":
            self._data.append(value.removeprefix(b" "))
            self._size += len(value)


class _CallParts:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class StreamAssembler:
    """Joins streamed chunks into the reply, and says which deltas each chunk carried."""

    def __init__(self) -> None:
        self._content: list[str] = []
        self._calls: list[_CallParts] = []
        self._positions: dict[int, int] = {}  # provider index -> order of first appearance
        self._by_id: dict[str, int] = {}
        self.finish_reason = ""
        self.model = ""
        self.usage: Usage | None = None
        self.done = False
        """`[DONE]` arrived."""

    def add(self, raw: bytes) -> list[ChatDelta]:
        if raw.strip() == b"[DONE]":
            self.done = True
            return []
        wire = _completion(loads(raw, "a streamed chunk"), "a streamed chunk")
        if wire.model:
            self.model = wire.model
        if wire.usage is not None and (usage := _usage(wire.usage)) is not None:
            self.usage = usage
        deltas: list[ChatDelta] = []
        for choice in wire.choices or ():
            if choice.index:  # n=1 is asked for; another choice is not this reply
                continue
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
            delta = choice.delta or choice.message
            if delta is None:
                continue
            if text := _clean(_text(delta.content)):
                self._content.append(text)
                deltas.append(ChatDelta(content=text))
            for call in delta.tool_calls or ():
                if (piece := self._call_piece(call)) is not None:
                    deltas.append(piece)
        return deltas

    def _call_piece(self, call: _ToolCall) -> ChatDelta | None:
        position = self._position(call)
        parts = self._calls[position]
        cid = _clean(call.id or "")
        name = _clean(call.function.name or "") if call.function else ""
        arguments = _clean(_arguments(call.function.arguments)) if call.function else ""
        if cid and not parts.id:
            parts.id = cid
            self._by_id[cid] = position
        if name and not parts.name:
            parts.name = name
        parts.arguments.append(arguments)
        if not (cid or name or arguments):
            return None
        return ChatDelta(
            tool_call_index=position,
            tool_call_id=cid or None,
            tool_name=name or None,
            arguments=arguments,
        )

    def _position(self, call: _ToolCall) -> int:
        if call.index is not None:
            if call.index not in self._positions:
                self._positions[call.index] = len(self._calls)
                self._calls.append(_CallParts())
            return self._positions[call.index]
        # No index (some servers): a new id starts a call, anything else continues the last.
        if call.id and call.id in self._by_id:
            return self._by_id[call.id]
        if call.id or not self._calls:
            self._calls.append(_CallParts())
        return len(self._calls) - 1

    @property
    def complete(self) -> bool:
        return self.done or bool(self.finish_reason)

    def result(self) -> Reply:
        calls = [(c.id, c.name, "".join(c.arguments)) for c in self._calls]
        return Reply(
            message=_message("".join(self._content), calls),
            usage=self.usage,
            finish_reason=self.finish_reason,
            model=self.model,
        )


# ---------------------------------------------------------------------------- usage


def _chars(message: ChatMessage) -> int:
    return len(message.content or "") + sum(
        len(c.name) + len(c.arguments) for c in message.tool_calls
    )


def estimate_usage(request: ChatRequest, message: ChatMessage) -> Usage:
    """≈4 characters a token over the request (messages and tools) and the reply."""
    sent = sum(_chars(m) for m in request.messages) + sum(
        len(t.name) + len(t.description) + len(msgspec.json.encode(t.parameters))
        for t in request.tools
    )
    return Usage(
        input_tokens=max(1, math.ceil(sent / CHARS_PER_TOKEN)),
        output_tokens=math.ceil(_chars(message) / CHARS_PER_TOKEN),
        reported=False,
    )


# ---------------------------------------------------------------------------- models, embeddings


def decode_models(raw: bytes) -> list[dict[str, Any]]:
    data = loads(raw, "the model list")
    entries = data.get("data") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise LlmBadResponse("the model list has no `data` array")
    # The port promises an `id` on every entry: one without is no model anyone can call.
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]


def decode_model_info(raw: bytes) -> list[dict[str, Any]]:
    """LiteLLM's `/model/info`: `{"data": [{"model_name", "litellm_params", "model_info"}]}`."""
    data = loads(raw, "the model info")
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise LlmBadResponse(
            "the model info has no `data` array (is the endpoint a LiteLLM proxy?)"
        )
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("model_name"), str)]


def _vector(value: Any, n: int) -> list[float]:
    if isinstance(value, str):  # encoding_format "base64": little-endian float32
        floats = array.array("f")
        try:
            floats.frombytes(base64.b64decode(value, validate=True))
        except ValueError as e:
            raise LlmBadResponse(f"embedding {n} is not valid base64 float32: {e}") from e
        if sys.byteorder != "little":
            floats.byteswap()
        return floats.tolist()
    if isinstance(value, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    ):
        return [float(x) for x in value]
    raise LlmBadResponse(f"embedding {n} is not a list of numbers")


def decode_embeddings(raw: bytes, expected: int) -> list[list[float]]:
    """The vectors in input order (by each entry's `index`, whatever order they came in)."""
    data = loads(raw, "the embeddings reply")
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise LlmBadResponse("the embeddings reply has no `data` array")
    if len(entries) != expected:
        raise LlmBadResponse(
            f"the embeddings reply has {len(entries)} vectors for {expected} inputs"
        )
    vectors: list[list[float] | None] = [None] * expected
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise LlmBadResponse(f"embedding entry {n} is not an object")
        index = entry.get("index", n)
        if not isinstance(index, int) or not 0 <= index < expected or vectors[index] is not None:
            raise LlmBadResponse(f"embedding entry {n} has a bad or repeated index {index!r}")
        vectors[index] = _vector(entry.get("embedding"), index)
    return [v for v in vectors if v is not None]
