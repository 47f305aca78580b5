"""Language models: one chat call at a time, streamed or not, with tools and usage.

The native agent loop, the LLM proxy and the model health check all talk to models
through this port. Adapters: any OpenAI-compatible HTTP endpoint
(`adapters/llm/openai.py`: LiteLLM proxy, OpenAI, Ollama, vLLM, OpenRouter) and, later,
a replay adapter that serves the responses recorded in a run's events.

Contract (one suite, `tests/contract/test_llm_contract.py`, runs it against every
adapter; the OpenAI-compatible one is driven against the scripted server):

- `chat(request)` returns the assistant's message — text, tool calls, or both — with
  the provider's usage when it reports one (`Usage.reported` False means the adapter
  estimated it). Tool call arguments are returned as the raw JSON text the model sent;
  parsing and validating them is the caller's business (a model may send bad JSON).
- With `on_delta`, the adapter asks the provider to stream and awaits `on_delta` for
  every piece of text and every piece of a tool call as it arrives, then returns the
  same complete `ChatResponse` it would have returned without streaming. An exception
  from the callback aborts the call and propagates.
- Transient failures (429, 5xx, connection errors, timeouts) are retried with backoff
  within `ModelEndpoint.max_retries`, honouring `Retry-After` (capped); each endpoint
  (base URL) has a circuit breaker, so a dead endpoint fails fast (`CircuitOpen`, a
  `LlmUnavailable`) instead of every run waiting out its timeouts.
- Errors a user can fix are typed and say how: a bad key, an unknown model, a prompt
  longer than the context window, a request the provider refuses.
- Cancellation (asyncio) closes the HTTP request at once; nothing is retried after it.

Errors (raised `from` the underlying exception):

    PortError
    +-- LlmError                       any failure of a model call
        +-- LlmAuthFailed              401/403: the key is missing, wrong or not allowed
        +-- LlmModelNotFound           404 / "model not found": the model id is unknown here
        +-- LlmContextTooLong          the prompt does not fit the model's context window
        +-- LlmBadRequest              400/422: the provider refused the request as sent
        +-- LlmBadResponse             the reply is not a valid chat completion
        +-- LlmUnavailable             (DependencyUnavailable) out of reach, 429 or 5xx after
        |                              every retry, timeout, or the circuit breaker is open
        +-- LlmScriptExhausted         a replay served every recorded response already
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, Protocol

from msgspec import Struct

from codeforge.ports.errors import DependencyUnavailable, PortError

__all__ = [
    "ChatDelta",
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "DeltaCallback",
    "LanguageModel",
    "LlmAuthFailed",
    "LlmBadRequest",
    "LlmBadResponse",
    "LlmContextTooLong",
    "LlmError",
    "LlmModelNotFound",
    "LlmScriptExhausted",
    "LlmUnavailable",
    "ModelEndpoint",
    "Role",
    "ToolCall",
    "ToolSpec",
    "Usage",
]


# ---------------------------------------------------------------------------- errors


class LlmError(PortError):
    """A model call failed; str() says what and, where it can, how to fix it."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class LlmAuthFailed(LlmError):
    """The provider refused the credentials (401/403)."""


class LlmModelNotFound(LlmError):
    """The provider does not know the model id."""


class LlmContextTooLong(LlmError):
    """The messages (and tools) are longer than the model's context window."""


class LlmBadRequest(LlmError):
    """The provider refused the request as sent (400/422, not one of the above)."""


class LlmBadResponse(LlmError):
    """The provider's answer is not a chat completion this adapter can read."""


class LlmScriptExhausted(LlmError):
    """A replay adapter has no recorded response left for this call."""


class LlmUnavailable(LlmError, DependencyUnavailable):
    """Out of reach, overloaded (429/5xx after every retry) or timed out.

    `retry_after` is the provider's last `Retry-After`, in seconds, when it sent one.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


# ---------------------------------------------------------------------------- values

Role = Literal["system", "user", "assistant", "tool"]


class ToolSpec(Struct, frozen=True, kw_only=True):
    """A tool the model may call: sent as an OpenAI `function` tool."""

    name: str
    description: str
    parameters: dict[str, Any]
    """JSON Schema of the arguments object."""


class ToolCall(Struct, frozen=True, kw_only=True):
    id: str
    name: str
    arguments: str
    """The arguments exactly as the model sent them (JSON text, possibly invalid)."""


class ChatMessage(Struct, frozen=True, kw_only=True, omit_defaults=True):
    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    """Only on assistant messages."""
    tool_call_id: str | None = None
    """Only on tool messages: the call this is the result of."""
    name: str | None = None
    """Only on tool messages: the tool's name (some providers want it)."""


class Usage(Struct, frozen=True, kw_only=True):
    input_tokens: int = 0
    output_tokens: int = 0
    reported: bool = True
    """False when the provider sent no usage and the adapter estimated it."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class ModelEndpoint(Struct, frozen=True, kw_only=True):
    """Where and how to reach one model (built from a `ModelConfig` and its secret)."""

    base_url: str
    """The OpenAI-compatible API root, e.g. "https://api.openai.com/v1"."""
    model: str
    """The model id the provider knows."""
    api_key: str = ""
    """The key itself (resolved from the secret store); empty sends no Authorization."""
    timeout: float = 120.0
    """Seconds for one attempt: until the response is complete (streamed or not)."""
    max_retries: int = 3
    """Attempts after the first for transient failures."""
    headers: dict[str, str] = {}
    """Extra request headers (e.g. OpenRouter's HTTP-Referer)."""


class ChatRequest(Struct, frozen=True, kw_only=True):
    endpoint: ModelEndpoint
    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int | None = None
    temperature: float | None = None
    tool_choice: Literal["auto", "none", "required"] | None = None


class ChatResponse(Struct, frozen=True, kw_only=True):
    message: ChatMessage
    """The assistant's message (role "assistant")."""
    usage: Usage
    finish_reason: str = ""
    """"stop", "tool_calls", "length", "content_filter", or what the provider said."""
    model: str = ""
    """The model that answered, as the provider names it."""
    latency: float = 0.0
    """Seconds from sending the (last, successful) attempt to the complete response."""
    attempts: int = 1
    """How many HTTP requests it took (retries included)."""


class ChatDelta(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One streamed piece of the assistant's message."""

    content: str = ""
    """Text, in order."""
    tool_call_index: int | None = None
    """For a piece of a tool call: which call (0, 1, … in the order the model made them)."""
    tool_call_id: str | None = None
    tool_name: str | None = None
    arguments: str = ""
    """A piece of the call's argument JSON text."""


DeltaCallback = Callable[[ChatDelta], Awaitable[None]]


# ---------------------------------------------------------------------------- port


class LanguageModel(Protocol):
    async def chat(
        self, request: ChatRequest, *, on_delta: DeltaCallback | None = None
    ) -> ChatResponse:
        """One chat completion; streamed to `on_delta` when it is given. See the module."""
        ...

    async def list_models(self, endpoint: ModelEndpoint) -> list[dict[str, Any]]:
        """The provider's model list (`GET /models`): each entry as the provider sent it
        (at least an `id`). Errors as for `chat`."""
        ...

    async def embed(self, endpoint: ModelEndpoint, inputs: Sequence[str]) -> list[list[float]]:
        """One vector per input, in order (`POST /embeddings`). Errors as for `chat`."""
        ...

    async def close(self) -> None:
        """Release connections. Idempotent."""
        ...
