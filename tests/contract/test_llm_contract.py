"""The language model contract (codeforge.ports.llm), run against every adapter.

The `llm` fixture is the one place adapters are listed: it yields a `Harness` holding the
adapter and the handle that scripts what the model answers. Today that is the
OpenAI-compatible adapter against the scripted server (`tests/support/scripted_llm.py`);
an adapter that cannot do something a test needs (a replay adapter has no HTTP, so no
retries or breaker) declares it in `features`, and those tests skip for it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.llm import LlmCircuitOpen, OpenAICompatibleModel
from codeforge.ports.llm import (
    ChatDelta,
    ChatMessage,
    ChatRequest,
    ChatResponse,
    LanguageModel,
    LlmAuthFailed,
    LlmBadRequest,
    LlmBadResponse,
    LlmContextTooLong,
    LlmError,
    LlmModelNotFound,
    LlmUnavailable,
    ModelEndpoint,
    ToolCall,
    ToolSpec,
)
from codeforge.services.circuit_breaker import CircuitOpen
from tests.support.processes import free_port
from tests.support.scripted_llm import (
    CONTEXT_TOO_LONG,
    DEFAULT_MODEL,
    ScriptedLLM,
    embedding,
    error_body,
    reply,
)

pytestmark = pytest.mark.contract

KEY = "sk-test-Zq8vN3kP0wLr5XcT1yB7"
BREAKER_THRESHOLD = 5
BREAKER_RESET = 0.5
RETRY_AFTER_CAP = 1.5


# ---------------------------------------------------------------------------- harness


@dataclass
class Harness:
    model: LanguageModel
    script: ScriptedLLM
    """Scripts the model's answers and records what it was sent."""
    features: frozenset[str]
    """"http" (real requests: headers, sizes, redirects), "retries", "breaker"."""

    def needs(self, *features: str) -> None:
        missing = set(features) - self.features
        if missing:
            pytest.skip(f"this adapter has no {', '.join(sorted(missing))}")

    def endpoint(self, **changes: Any) -> ModelEndpoint:
        base = ModelEndpoint(
            base_url=self.script.base_url,
            model=DEFAULT_MODEL,
            api_key=KEY,
            timeout=5.0,
            max_retries=2,
        )
        return msgspec.structs.replace(base, **changes)

    def request(self, *messages: str | ChatMessage, **options: Any) -> ChatRequest:
        endpoint = options.pop("endpoint", None) or self.endpoint()
        return ChatRequest(
            endpoint=endpoint,
            messages=tuple(
                m if isinstance(m, ChatMessage) else ChatMessage(role="user", content=m)
                for m in messages or ("Hello",)
            ),
            **options,
        )


def openai_compatible(script: ScriptedLLM, **options: Any) -> OpenAICompatibleModel:
    settings: dict[str, Any] = {
        "breaker_failure_threshold": BREAKER_THRESHOLD,
        "breaker_reset_timeout": BREAKER_RESET,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "retry_after_cap": RETRY_AFTER_CAP,
    }
    return OpenAICompatibleModel(**(settings | options))


@pytest.fixture(params=["openai-compatible"])
async def llm(request: pytest.FixtureRequest, scripted_llm: ScriptedLLM) -> AsyncIterator[Harness]:
    if request.param == "openai-compatible":
        model = openai_compatible(scripted_llm)
        yield Harness(model, scripted_llm, frozenset({"http", "retries", "breaker"}))
        await model.close()


class Deltas:
    """An `on_delta` that keeps what it is given."""

    def __init__(self) -> None:
        self.items: list[ChatDelta] = []

    async def __call__(self, delta: ChatDelta) -> None:
        self.items.append(delta)

    @property
    def text(self) -> str:
        return "".join(d.content for d in self.items)

    def calls(self) -> list[tuple[str, str, str]]:
        """(id, name, arguments) per call, joined from the pieces by index."""
        joined: dict[int, list[str]] = {}
        for d in self.items:
            if d.tool_call_index is None:
                continue
            parts = joined.setdefault(d.tool_call_index, ["", "", ""])
            parts[0] = parts[0] or (d.tool_call_id or "")
            parts[1] = parts[1] or (d.tool_name or "")
            parts[2] += d.arguments
        return [(a, b, c) for a, b, c in (joined[i] for i in sorted(joined))]


def same_reply(a: ChatResponse, b: ChatResponse) -> bool:
    """Equal but for the latency (which no two calls share)."""
    return msgspec.structs.replace(a, latency=0.0) == msgspec.structs.replace(b, latency=0.0)


def texts_of(error: BaseException) -> list[str]:
    """What a logged traceback shows of an error: its message and args, and those of the
    causes and contexts it chains to (a suppressed context is not shown)."""
    seen: list[str] = []
    current: BaseException | None = error
    while current is not None and len(seen) < 20:
        seen += [str(current), repr(current.args)]
        if current.__cause__ is not None:
            current = current.__cause__
        else:
            current = None if current.__suppress_context__ else current.__context__
    return seen


# ---------------------------------------------------------------------------- replies


async def test_a_plain_text_reply_comes_back_with_the_reported_usage(llm: Harness) -> None:
    llm.script.reply(text="Hello! How can I help?", usage=(12, 7))

    response = await llm.model.chat(llm.request("Hi there"))

    assert response.message == ChatMessage(role="assistant", content="Hello! How can I help?")
    assert response.usage.input_tokens == 12
    assert response.usage.output_tokens == 7
    assert response.usage.reported
    assert response.finish_reason == "stop"
    assert response.model == DEFAULT_MODEL
    assert response.attempts == 1
    assert response.latency > 0
    sent = llm.script.chat_requests[0].json
    assert sent["model"] == DEFAULT_MODEL
    assert sent["messages"] == [{"role": "user", "content": "Hi there"}]
    assert sent["stream"] is False


async def test_the_request_is_sent_in_openai_shape(llm: Harness) -> None:
    llm.needs("http")
    llm.script.reply(text="ok")
    call = ToolCall(id="call_a", name="read_file", arguments='{"path": "x.py"}')
    tool = ToolSpec(
        name="read_file",
        description="Read a file",
        parameters={"type": "object", "properties": {"path": {"type": "string"}}},
    )
    request = llm.request(
        ChatMessage(role="system", content="You are terse."),
        ChatMessage(role="user", content="Read x.py"),
        ChatMessage(role="assistant", tool_calls=(call,)),
        ChatMessage(role="tool", content="print(1)", tool_call_id="call_a", name="read_file"),
        tools=(tool,),
        tool_choice="auto",
        max_tokens=256,
        temperature=0.2,
        endpoint=llm.endpoint(headers={"HTTP-Referer": "https://codeforge.example"}),
    )

    await llm.model.chat(request)

    recorded = llm.script.chat_requests[0]
    assert recorded.headers["Authorization"] == f"Bearer {KEY}"
    assert recorded.headers["HTTP-Referer"] == "https://codeforge.example"
    assert recorded.json["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Read x.py"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "x.py"}'},
                }
            ],
        },
        {"role": "tool", "content": "print(1)", "tool_call_id": "call_a", "name": "read_file"},
    ]
    assert recorded.json["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "description": "Read a file",
                "parameters": tool.parameters,
            },
        }
    ]
    assert recorded.json["tool_choice"] == "auto"
    assert recorded.json["max_tokens"] == 256
    assert recorded.json["temperature"] == 0.2


async def test_an_endpoint_without_a_key_sends_no_authorization(llm: Harness) -> None:
    llm.needs("http")
    llm.script.reply(text="ok")

    await llm.model.chat(llm.request(endpoint=llm.endpoint(api_key="")))

    assert "Authorization" not in llm.script.chat_requests[0].headers


async def test_several_tool_calls_come_back_with_their_arguments_exactly_as_sent(
    llm: Harness,
) -> None:
    llm.script.reply(
        text="Let me look.",
        tool_calls=[
            ("read_file", {"path": "src/app.py"}, "call_1"),
            ("run", {"cmd": "pytest -q", "timeout": 60}, "call_2"),
            ("write_file", '{"path": "a.py", "content": "unterminated', "call_3"),
        ],
    )

    response = await llm.model.chat(llm.request("Fix the tests"))

    assert response.message.content == "Let me look."
    assert response.message.tool_calls == (
        ToolCall(id="call_1", name="read_file", arguments='{"path": "src/app.py"}'),
        ToolCall(id="call_2", name="run", arguments='{"cmd": "pytest -q", "timeout": 60}'),
        ToolCall(
            id="call_3", name="write_file", arguments='{"path": "a.py", "content": "unterminated'
        ),
    )
    assert response.finish_reason == "tool_calls"


STREAMED_REPLIES = {
    "text": reply(text="The quick brown fox jumps over the lazy dog. " * 5, chunk_size=3),
    "tool calls": reply(
        tool_calls=[
            ("read_file", {"path": "src/very/deep/module.py"}, "call_x"),
            ("grep", {"pattern": "def main", "glob": "**/*.py"}, "call_y"),
        ],
        chunk_size=4,
    ),
    "text and a call": reply(
        text="Running the tests now.", tool_calls=[("run", {"cmd": "make test"}, "c1")]
    ),
    "characters split apart": reply(text="naïve café → 🦊 日本語 ok", chunk_size=1),
    "empty": reply(text=""),
    "length cut": reply(text="and then", finish_reason="length"),
}


@pytest.mark.parametrize("step", STREAMED_REPLIES.values(), ids=STREAMED_REPLIES.keys())
async def test_streamed_deltas_reassemble_exactly_to_the_response_of_the_same_reply_whole(
    llm: Harness, step: Any
) -> None:
    llm.script.add(step, step)
    deltas = Deltas()

    whole = await llm.model.chat(llm.request())
    streamed = await llm.model.chat(llm.request(), on_delta=deltas)

    assert same_reply(streamed, whole)
    assert deltas.text == (whole.message.content or "")
    assert deltas.calls() == [(c.id, c.name, c.arguments) for c in whole.message.tool_calls]
    pieces = math.ceil(len(step.text or "") / step.chunk_size) + sum(
        1 + math.ceil(len(c.arguments) / step.chunk_size) for c in step.tool_calls
    )
    assert len(deltas.items) >= min(pieces, 2), "the reply should arrive in several pieces"
    assert llm.script.chat_requests[1].json["stream"] is True
    assert llm.script.chat_requests[1].json["stream_options"] == {"include_usage": True}


# Any text JSON can carry (no lone surrogates), names and argument texts of any shape.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
CALLS = st.lists(
    st.tuples(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12), TEXT),
    max_size=3,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=st.none() | TEXT, calls=CALLS, chunk_size=st.integers(1, 9))
async def test_any_streamed_reply_reassembles_to_the_same_reply_whole(
    llm: Harness, text: str | None, calls: list[tuple[str, str]], chunk_size: int
) -> None:
    tool_calls = [(name, arguments, f"call_{n}") for n, (name, arguments) in enumerate(calls)]
    step = reply(text=text, tool_calls=tool_calls, chunk_size=chunk_size)
    llm.script.add(step, step)
    deltas = Deltas()

    whole = await llm.model.chat(llm.request())
    streamed = await llm.model.chat(llm.request(), on_delta=deltas)

    assert same_reply(streamed, whole)
    assert whole.message.content == (text or None)
    assert [(c.name, c.arguments) for c in whole.message.tool_calls] == calls
    assert deltas.text == (text or "")
    assert deltas.calls() == [(c.id, c.name, c.arguments) for c in whole.message.tool_calls]


async def test_a_provider_answering_a_stream_request_whole_still_feeds_on_delta(
    llm: Harness,
) -> None:
    llm.script.reply(text="whole", tool_calls=[("ls", {}, "c1")], stream=False)
    deltas = Deltas()

    response = await llm.model.chat(llm.request(), on_delta=deltas)

    assert response.message.content == "whole"
    assert deltas.text == "whole"
    assert deltas.calls() == [("c1", "ls", "{}")]


async def test_usage_is_estimated_when_the_provider_reports_none(llm: Harness) -> None:
    prompt = "x" * 400
    llm.script.reply(text="y" * 100, usage=None)
    llm.script.reply(text="y" * 100, usage=None)

    whole = await llm.model.chat(llm.request(prompt))
    streamed = await llm.model.chat(llm.request(prompt), on_delta=Deltas())

    assert not whole.usage.reported
    assert 90 <= whole.usage.input_tokens <= 130  # ≈ 400 characters / 4
    assert 20 <= whole.usage.output_tokens <= 30  # ≈ 100 characters / 4
    assert streamed.usage == whole.usage


async def test_usage_in_the_last_chunk_of_a_stream_is_reported(llm: Harness) -> None:
    llm.script.reply(text="counted", usage=(321, 4))

    response = await llm.model.chat(llm.request(), on_delta=Deltas())

    assert response.usage.reported
    assert (response.usage.input_tokens, response.usage.output_tokens) == (321, 4)


async def test_concurrent_calls_each_get_their_own_answer(llm: Harness) -> None:
    llm.script.responder = lambda body: reply(text=f"echo: {body['messages'][-1]['content']}")

    async def ask(n: int) -> str | None:
        on_delta = Deltas() if n % 2 else None
        return (await llm.model.chat(llm.request(f"q{n}"), on_delta=on_delta)).message.content

    answers = await asyncio.gather(*(ask(n) for n in range(12)))

    assert answers == [f"echo: q{n}" for n in range(12)]


async def test_a_responder_sees_the_tool_results_it_reacts_to(llm: Harness) -> None:
    def agent_step(body: dict[str, Any]) -> Any:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return reply(text=f"The file says {last['content']!r}.")
        return reply(tool_calls=[("read_file", {"path": "x.py"}, "r1")])

    llm.script.responder = agent_step
    first = await llm.model.chat(llm.request("What is in x.py?"))
    call = first.message.tool_calls[0]
    second = await llm.model.chat(
        llm.request(
            "What is in x.py?",
            first.message,
            ChatMessage(role="tool", content="print(1)", tool_call_id=call.id, name=call.name),
        )
    )

    assert second.message.content == "The file says 'print(1)'."


# ---------------------------------------------------------------------------- retries


async def test_a_429_is_retried_after_its_retry_after(llm: Harness) -> None:
    llm.needs("retries")
    llm.script.fail(status=429, retry_after=1)
    llm.script.reply(text="finally")

    started = time.monotonic()
    response = await llm.model.chat(llm.request())
    waited = time.monotonic() - started

    assert response.message.content == "finally"
    assert response.attempts == 2
    assert 1.0 <= waited < 1.0 + 0.8
    llm.script.assert_script_consumed()


async def test_a_retry_after_given_as_an_http_date_is_honoured(llm: Harness) -> None:
    llm.needs("retries")
    # HTTP dates have whole seconds: two seconds ahead is a wait of one to two seconds.
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    llm.script.fail(status=503, retry_after=when)
    llm.script.reply(text="back")

    started = time.monotonic()
    response = await llm.model.chat(llm.request())

    assert response.attempts == 2
    assert 0.9 <= time.monotonic() - started < RETRY_AFTER_CAP + 0.8


async def test_a_long_retry_after_is_capped_and_reported_on_the_error(llm: Harness) -> None:
    llm.needs("retries")
    llm.script.fail(status=429, retry_after=3600)
    llm.script.fail(status=429, retry_after=3600)

    started = time.monotonic()
    with pytest.raises(LlmUnavailable) as caught:
        await llm.model.chat(llm.request(endpoint=llm.endpoint(max_retries=1)))

    assert RETRY_AFTER_CAP <= time.monotonic() - started < RETRY_AFTER_CAP + 0.8
    assert caught.value.retry_after == 3600
    assert caught.value.status == 429


async def test_a_500_is_retried_then_succeeds(llm: Harness) -> None:
    llm.needs("retries")
    llm.script.fail(status=500)
    llm.script.reply(text="recovered")

    response = await llm.model.chat(llm.request())

    assert response.message.content == "recovered"
    assert response.attempts == 2
    assert len(llm.script.chat_requests) == 2


async def test_when_every_attempt_fails_the_call_is_llm_unavailable_after_max_retries(
    llm: Harness,
) -> None:
    llm.needs("retries")
    for _ in range(3):
        llm.script.fail(status=503, message="Overloaded, the GPUs are melting")

    with pytest.raises(LlmUnavailable) as caught:
        await llm.model.chat(llm.request(endpoint=llm.endpoint(max_retries=2)))

    error = caught.value
    assert len(llm.script.chat_requests) == 3
    assert "gave up after 3 attempts" in str(error)
    assert "Overloaded, the GPUs are melting" in str(error)
    assert llm.script.base_url in str(error)
    assert error.status == 503
    llm.script.assert_script_consumed()


async def test_a_quota_error_is_not_retried(llm: Harness) -> None:
    llm.needs("retries")
    body = error_body(
        "You exceeded your current quota.", type="insufficient_quota", code="insufficient_quota"
    )
    llm.script.fail(status=429, body=body)

    with pytest.raises(LlmUnavailable, match="quota"):
        await llm.model.chat(llm.request())

    assert len(llm.script.chat_requests) == 1


async def test_an_unreachable_endpoint_is_llm_unavailable(llm: Harness) -> None:
    llm.needs("retries")
    endpoint = llm.endpoint(base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=1)

    with pytest.raises(LlmUnavailable, match="could not be reached") as caught:
        await llm.model.chat(llm.request(endpoint=endpoint))

    assert "gave up after 2 attempts" in str(caught.value)


# ---------------------------------------------------------------------------- the breaker


async def test_the_breaker_opens_after_the_threshold_fails_fast_and_half_opens_after_the_reset(
    llm: Harness,
) -> None:
    llm.needs("breaker")
    model = llm.model
    assert isinstance(model, OpenAICompatibleModel)
    endpoint = llm.endpoint(max_retries=0)
    for _ in range(BREAKER_THRESHOLD):
        llm.script.fail(status=500)
    for _ in range(BREAKER_THRESHOLD):
        with pytest.raises(LlmUnavailable):
            await model.chat(llm.request(endpoint=endpoint))

    started = time.monotonic()
    with pytest.raises(LlmCircuitOpen) as caught:
        await model.chat(llm.request(endpoint=endpoint))

    assert time.monotonic() - started < 0.1
    assert isinstance(caught.value, LlmUnavailable)
    assert isinstance(caught.value, CircuitOpen)
    assert 0 < (caught.value.retry_after or 0) <= BREAKER_RESET
    assert "circuit breaker is open" in str(caught.value)
    assert len(llm.script.chat_requests) == BREAKER_THRESHOLD  # nothing more was sent
    [state] = model.breaker_states()
    assert state.state == "open"
    assert llm.script.base_url in state.name

    await asyncio.sleep(BREAKER_RESET + 0.05)
    assert model.breaker_states()[0].state == "half_open"
    llm.script.reply(text="alive again")
    response = await model.chat(llm.request(endpoint=endpoint))

    assert response.message.content == "alive again"
    assert model.breaker_states()[0].state == "closed"


async def test_a_failed_trial_call_opens_the_breaker_again(llm: Harness) -> None:
    llm.needs("breaker")
    model = llm.model
    assert isinstance(model, OpenAICompatibleModel)
    endpoint = llm.endpoint(max_retries=0)
    for _ in range(BREAKER_THRESHOLD + 1):
        llm.script.fail(status=502)
    for _ in range(BREAKER_THRESHOLD):
        with pytest.raises(LlmUnavailable):
            await model.chat(llm.request(endpoint=endpoint))
    await asyncio.sleep(BREAKER_RESET + 0.05)

    with pytest.raises(LlmUnavailable) as trial:
        await model.chat(llm.request(endpoint=endpoint))
    assert not isinstance(trial.value, CircuitOpen)  # the trial call was sent
    with pytest.raises(LlmCircuitOpen):
        await model.chat(llm.request(endpoint=endpoint))

    assert model.breaker_states()[0].state == "open"
    assert len(llm.script.chat_requests) == BREAKER_THRESHOLD + 1


async def test_errors_a_user_can_fix_do_not_open_the_breaker(llm: Harness) -> None:
    llm.needs("breaker")
    model = llm.model
    assert isinstance(model, OpenAICompatibleModel)
    for _ in range(BREAKER_THRESHOLD + 2):
        llm.script.fail(status=400, message="temperature must be at most 2")
    for _ in range(BREAKER_THRESHOLD + 2):
        with pytest.raises(LlmBadRequest):
            await model.chat(llm.request())

    assert model.breaker_states()[0].state == "closed"


# ---------------------------------------------------------------------------- typed errors


async def test_a_wrong_key_is_llm_auth_failed_and_not_retried(llm: Harness) -> None:
    llm.script.api_key = "sk-the-right-one"

    with pytest.raises(LlmAuthFailed) as caught:
        await llm.model.chat(llm.request())

    assert caught.value.status == 401
    assert "Incorrect API key provided" in str(caught.value)
    assert "secret" in str(caught.value)  # how to fix it
    assert KEY not in str(caught.value)
    assert len(llm.script.chat_requests) == 1


async def test_an_unknown_model_is_llm_model_not_found(llm: Harness) -> None:
    llm.script.reject_unknown_models = True

    with pytest.raises(LlmModelNotFound) as caught:
        await llm.model.chat(llm.request(endpoint=llm.endpoint(model="gpt-nonexistent")))

    assert "gpt-nonexistent" in str(caught.value)
    assert "/models" in str(caught.value)  # where to look the ids up
    assert len(llm.script.chat_requests) == 1


async def test_a_prompt_longer_than_the_context_window_is_llm_context_too_long(
    llm: Harness,
) -> None:
    llm.script.fail(status=400, body=CONTEXT_TOO_LONG)

    with pytest.raises(LlmContextTooLong) as caught:
        await llm.model.chat(llm.request("word " * 10_000))

    assert "maximum context length is 8192 tokens" in str(caught.value)
    assert "Shorten" in str(caught.value)
    assert len(llm.script.chat_requests) == 1


# What providers really send (their documentation, issue trackers and source).
VLLM_CONTEXT = (
    "This model's maximum context length is 16384 tokens. However, you requested 122946 "
    "tokens (112946 in the messages, 10000 in the completion). Please reduce the length of "
    "the messages or completion."
)
LLAMA_CPP_CONTEXT = {
    "code": 400,
    "type": "exceed_context_size_error",
    "message": "request (9412 tokens) exceeds the available context size (8192 tokens), "
    "try increasing it",
}
LITELLM_CONTEXT = (
    "litellm.ContextWindowExceededError: litellm.BadRequestError: ContextWindowExceededError: "
    "OpenAIException - prompt too big"
)
GEMINI_CONTEXT = (
    "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
)
OPENAI_NO_MODEL = "The model `gpt-9` does not exist or you do not have access to it."
LITELLM_NO_MODEL = (
    "Invalid model name passed in model=gpt-9. Call `/v1/models` to view available models "
    "for your key."
)
PROVIDER_ERRORS: dict[str, tuple[int, Any, type[LlmError]]] = {
    "vllm context": (400, error_body(VLLM_CONTEXT, type="BadRequestError"), LlmContextTooLong),
    "ollama context": (
        400,
        {"error": "the input length exceeds the context length"},
        LlmContextTooLong,
    ),
    "llama.cpp context": (400, {"error": LLAMA_CPP_CONTEXT}, LlmContextTooLong),
    "litellm context": (400, error_body(LITELLM_CONTEXT, code="400"), LlmContextTooLong),
    "anthropic via a proxy": (
        400,
        error_body("prompt is too long: 215000 tokens > 200000 maximum"),
        LlmContextTooLong,
    ),
    "gemini context": (400, error_body(GEMINI_CONTEXT), LlmContextTooLong),
    "openai unknown model": (
        404,
        error_body(OPENAI_NO_MODEL, code="model_not_found"),
        LlmModelNotFound,
    ),
    "ollama unknown model": (
        404,
        {"error": {"message": 'model "llama9" not found, try pulling it first'}},
        LlmModelNotFound,
    ),
    "litellm unknown model": (400, error_body(LITELLM_NO_MODEL), LlmModelNotFound),
    "openrouter unknown model": (
        400,
        {"error": {"message": "foo/bar is not a valid model ID", "code": 400}},
        LlmModelNotFound,
    ),
    "404 without a body": (404, "Not Found", LlmModelNotFound),
    "forbidden": (403, error_body("Project does not have access to model x"), LlmAuthFailed),
    "unprocessable": (
        422,
        {"detail": [{"loc": ["body", "messages"], "msg": "field required"}]},
        LlmBadRequest,
    ),
    "an error body nested too deeply": (400, "[" * 100_000 + "]" * 100_000, LlmBadRequest),
    "bad parameter": (
        400,
        error_body("Invalid value for 'temperature': must be at most 2.", param="temperature"),
        LlmBadRequest,
    ),
}


@pytest.mark.parametrize(
    ("status", "body", "expected"), PROVIDER_ERRORS.values(), ids=PROVIDER_ERRORS.keys()
)
async def test_provider_errors_become_the_typed_error_that_says_what_to_fix(
    llm: Harness, status: int, body: Any, expected: type[LlmError]
) -> None:
    llm.script.fail(status=status, body=body)

    with pytest.raises(LlmError) as caught:
        await llm.model.chat(llm.request())

    assert type(caught.value) is expected
    assert caught.value.status == status
    assert len(llm.script.chat_requests) == 1  # none of these is retried


UNREADABLE = {
    "not json": b"<html><body>Gateway says hi</body></html>",
    "no choices": b'{"id": "x", "choices": []}',
    "choices of the wrong type": b'{"choices": [{"message": 5}]}',
    "truncated json": b'{"choices": [{"message": {"content": "hel',
    "nested too deeply": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("body", UNREADABLE.values(), ids=UNREADABLE.keys())
async def test_a_reply_that_is_not_a_chat_completion_is_llm_bad_response(
    llm: Harness, body: bytes
) -> None:
    llm.script.raw(body)

    with pytest.raises(LlmBadResponse) as caught:
        await llm.model.chat(llm.request())

    assert llm.script.base_url in str(caught.value)
    assert len(llm.script.chat_requests) == 1


async def test_a_bad_event_in_a_stream_is_llm_bad_response(llm: Harness) -> None:
    good = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    llm.script.raw([b"data: " + json.dumps(good).encode() + b"\n\n", b"data: {not json\n\n"])

    with pytest.raises(LlmBadResponse, match="not JSON"):
        await llm.model.chat(llm.request(), on_delta=Deltas())


async def test_an_error_event_in_a_stream_is_mapped_like_an_error_status(llm: Harness) -> None:
    error = error_body("This model's maximum context length is 4096 tokens.", code=400)
    llm.script.raw([b"data: " + json.dumps(error).encode() + b"\n\n"])

    with pytest.raises(LlmContextTooLong):
        await llm.model.chat(llm.request(), on_delta=Deltas())


async def test_a_redirect_is_refused_with_where_it_points(llm: Harness) -> None:
    llm.needs("http")
    llm.script.raw(
        b"", status=307, headers={"Location": "https://elsewhere.example/v1/chat/completions"}
    )

    with pytest.raises(LlmBadRequest, match=r"elsewhere\.example"):
        await llm.model.chat(llm.request())


async def test_a_base_url_that_is_not_http_is_refused_before_anything_is_sent(
    llm: Harness,
) -> None:
    llm.needs("http")
    for url in ("api.openai.com/v1", "ftp://host/v1", "http://", "http://host:notaport/v1"):
        with pytest.raises(LlmBadRequest, match="not an http"):
            await llm.model.chat(llm.request(endpoint=llm.endpoint(base_url=url)))

    assert llm.script.requests == []


# ---------------------------------------------------------------------------- timeouts, cancel


async def test_a_slow_reply_times_out_each_attempt_and_ends_llm_unavailable(
    llm: Harness,
) -> None:
    llm.needs("retries")
    llm.script.slow(3).slow(3)
    endpoint = llm.endpoint(timeout=0.4, max_retries=1)

    started = time.monotonic()
    with pytest.raises(LlmUnavailable, match=r"no complete answer within 0.4 s"):
        await llm.model.chat(llm.request(endpoint=endpoint))

    assert 0.8 <= time.monotonic() - started < 2.0
    assert len(llm.script.chat_requests) == 2
    await llm.script.wait_for_async(lambda s: all(r.disconnected for r in s.chat_requests))


async def test_a_stream_that_stalls_times_out_and_is_not_retried_once_pieces_arrived(
    llm: Harness,
) -> None:
    llm.needs("retries")
    llm.script.reply(text="a long answer that stops half-way", chunk_size=4, stall_after=3)
    llm.script.reply(text="never asked for")
    deltas = Deltas()

    started = time.monotonic()
    with pytest.raises(LlmUnavailable, match="not retried") as caught:
        await llm.model.chat(llm.request(endpoint=llm.endpoint(timeout=0.5)), on_delta=deltas)

    assert 0.5 <= time.monotonic() - started < 1.5
    assert "no complete answer within 0.5 s" in str(caught.value)
    assert deltas.text == "a long a"  # the two pieces before the stall
    assert len(llm.script.chat_requests) == 1
    await llm.script.wait_for_async(lambda s: s.chat_requests[0].disconnected)


async def test_a_stream_that_stalls_before_any_piece_is_retried(llm: Harness) -> None:
    llm.needs("retries")
    llm.script.reply(text="lost", stall_after=1)  # only the opening role chunk arrives
    llm.script.reply(text="second try")
    deltas = Deltas()

    response = await llm.model.chat(
        llm.request(endpoint=llm.endpoint(timeout=0.4)), on_delta=deltas
    )

    assert response.message.content == "second try"
    assert response.attempts == 2
    assert deltas.text == "second try"


async def test_a_stream_cut_off_midway_is_llm_unavailable(llm: Harness) -> None:
    llm.needs("retries")
    llm.script.reply(text="cut off in the middle", chunk_size=4, disconnect_after=3)

    with pytest.raises(LlmUnavailable, match="not retried"):
        await llm.model.chat(llm.request(), on_delta=Deltas())


async def test_a_connection_dropped_before_the_reply_is_retried(llm: Harness) -> None:
    llm.needs("retries")
    llm.script.reply(text="dropped", disconnect_after=0)
    llm.script.reply(text="answered")

    response = await llm.model.chat(llm.request())

    assert response.message.content == "answered"
    assert response.attempts == 2


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
async def test_cancelling_a_call_closes_its_connection_at_once_and_nothing_is_retried(
    llm: Harness, streamed: bool
) -> None:
    llm.needs("http")
    if streamed:
        llm.script.reply(text="a reply that never finishes", stall_after=2)
    else:
        llm.script.slow(30, text="too late")
    llm.script.reply(text="must not be asked for")
    call = asyncio.create_task(
        llm.model.chat(llm.request(), on_delta=Deltas() if streamed else None)
    )
    await llm.script.wait_for_async(lambda s: len(s.chat_requests) == 1)
    await asyncio.sleep(0.1)

    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call

    await llm.script.wait_for_async(lambda s: s.chat_requests[0].disconnected, timeout=2)
    await asyncio.sleep(0.3)
    assert len(llm.script.chat_requests) == 1
    assert llm.script.remaining == 1


async def test_an_exception_from_on_delta_aborts_the_call_and_propagates_as_is(
    llm: Harness,
) -> None:
    llm.script.reply(text="one two three four five six", chunk_size=3, stall_after=6)
    llm.script.reply(text="must not be asked for")

    class Stop(Exception):
        pass

    stop = Stop("the user closed the page")
    seen: list[ChatDelta] = []

    async def on_delta(delta: ChatDelta) -> None:
        seen.append(delta)
        if len(seen) == 2:
            raise stop

    with pytest.raises(Stop) as caught:
        await llm.model.chat(llm.request(), on_delta=on_delta)

    assert caught.value is stop
    assert len(llm.script.chat_requests) == 1
    await llm.script.wait_for_async(lambda s: s.chat_requests[0].disconnected, timeout=2)


# ---------------------------------------------------------------------------- models, embeddings


async def test_list_models_returns_the_providers_entries(llm: Harness) -> None:
    llm.script.models = {"gpt-a": {}, "local/llama": {}}

    models = await llm.model.list_models(llm.endpoint())

    assert [m["id"] for m in models] == ["gpt-a", "local/llama"]
    assert all(m["object"] == "model" for m in models)


async def test_list_models_retries_and_maps_errors_like_chat(llm: Harness) -> None:
    llm.script.fail(status=502, endpoint="models")
    assert [m["id"] for m in await llm.model.list_models(llm.endpoint())] == [DEFAULT_MODEL]

    llm.script.api_key = "sk-other"
    with pytest.raises(LlmAuthFailed):
        await llm.model.list_models(llm.endpoint())


@pytest.mark.parametrize("order", ["reversed", "shuffled"])
async def test_embed_returns_vectors_in_input_order_whatever_order_they_came_in(
    llm: Harness, order: Any
) -> None:
    llm.script.embedding_order = order
    inputs = ["def read_file(path)", "class HttpServer", "", "readFile reads the file", "z" * 50]

    vectors = await llm.model.embed(llm.endpoint(), inputs)

    assert vectors == [pytest.approx(embedding(text)) for text in inputs]
    sent = llm.script.requests[0].json
    assert sent["input"] == inputs
    assert sent["model"] == DEFAULT_MODEL


async def test_embed_of_many_inputs_keeps_their_order(llm: Harness) -> None:
    llm.script.embedding_order = "shuffled"
    inputs = [f"function number {n} of module m{n % 7}" for n in range(300)]

    vectors = await llm.model.embed(llm.endpoint(), inputs)

    assert len(vectors) == 300
    assert vectors == [pytest.approx(embedding(text)) for text in inputs]


async def test_embed_of_nothing_asks_nothing(llm: Harness) -> None:
    assert await llm.model.embed(llm.endpoint(), []) == []
    assert llm.script.requests == []


async def test_embed_retries_and_maps_errors_like_chat(llm: Harness) -> None:
    llm.script.fail(status=500, endpoint="embeddings")
    assert len(await llm.model.embed(llm.endpoint(), ["a"])) == 1

    llm.script.reject_unknown_models = True
    with pytest.raises(LlmModelNotFound):
        await llm.model.embed(llm.endpoint(model="no-such-embedder"), ["a"])

    llm.script.raw(b'{"data": [{"index": 0, "embedding": "not base64!"}]}', endpoint="embeddings")
    with pytest.raises(LlmBadResponse):
        await llm.model.embed(llm.endpoint(), ["a"])


# ---------------------------------------------------------------------------- hostile replies


def failures_that_could_leak_the_key() -> dict[str, Callable[[Harness], ChatRequest]]:
    def wrong_key(h: Harness) -> ChatRequest:
        h.script.api_key = "sk-the-right-one"  # its 401 echoes the key it got
        return h.request()

    def echoed(status: int) -> Callable[[Harness], ChatRequest]:
        def script(h: Harness) -> ChatRequest:
            for _ in range(3):
                h.script.fail(status=status, message=f"upstream rejected key {KEY} for this")
            return h.request()

        return script

    def bad_json(h: Harness) -> ChatRequest:
        h.script.raw(f'{{"oops": "{KEY}'.encode())
        return h.request()

    # Where a quote of a body is cut (200, 600 characters), half a key would show.
    def json_cut_in_half(h: Harness) -> ChatRequest:
        h.script.raw(b'{"oops": "' + b"x" * 176 + KEY.encode())
        return h.request()

    def message_cut_in_half(h: Harness) -> ChatRequest:
        h.script.fail(status=400, message="y" * 585 + KEY)
        return h.request()

    def in_the_url(h: Harness) -> ChatRequest:
        url = f"http://user:{KEY}@127.0.0.1:{free_port()}/v1"
        return h.request(endpoint=h.endpoint(base_url=url, max_retries=0))

    def unreachable(h: Harness) -> ChatRequest:
        url = f"http://127.0.0.1:{free_port()}/v1"
        return h.request(endpoint=h.endpoint(base_url=url, max_retries=0))

    def unsendable(h: Harness) -> ChatRequest:
        return h.request(endpoint=h.endpoint(api_key=KEY + "\r\nX-Injected: 1"))

    def timeout(h: Harness) -> ChatRequest:
        h.script.slow(2)
        return h.request(endpoint=h.endpoint(timeout=0.2, max_retries=0))

    return {
        "401 echoing the key": wrong_key,
        "400 echoing the key": echoed(400),
        "500 echoing the key": echoed(500),
        "bad json holding the key": bad_json,
        "bad json cut in the middle of the key": json_cut_in_half,
        "a message cut in the middle of the key": message_cut_in_half,
        "the key in the base url": in_the_url,
        "unreachable": unreachable,
        "a key with a line break": unsendable,
        "timeout": timeout,
    }


LEAKS = failures_that_could_leak_the_key()


@pytest.mark.parametrize("scenario", LEAKS.values(), ids=LEAKS.keys())
async def test_the_api_key_never_appears_in_an_error_message(
    llm: Harness, scenario: Callable[[Harness], ChatRequest], capsys: pytest.CaptureFixture[str]
) -> None:
    request = scenario(llm)

    with pytest.raises(LlmError) as caught:
        await llm.model.chat(request)

    for text in texts_of(caught.value):
        assert KEY[:12] not in text
        assert KEY[-12:] not in text
    out, err = capsys.readouterr()
    assert KEY not in out + err  # nor in what the adapter logged


async def test_a_multi_megabyte_reply_is_returned_whole(llm: Harness) -> None:
    text = ("All work and no play makes Jack a dull boy. 🦊\n" * 120_000)[: 5 * 1024 * 1024]
    llm.script.reply(text=text, chunk_size=64 * 1024)
    llm.script.reply(text=text, chunk_size=64 * 1024)

    whole = await llm.model.chat(llm.request())
    streamed = await llm.model.chat(llm.request(), on_delta=Deltas())

    assert whole.message.content == text
    assert same_reply(streamed, whole)


async def test_a_reply_over_the_size_limit_is_refused_not_held(
    llm: Harness, scripted_llm: ScriptedLLM
) -> None:
    llm.needs("http")
    model = openai_compatible(scripted_llm, max_response_bytes=100_000)
    scripted_llm.reply(text="x" * 200_000)
    scripted_llm.reply(text="x" * 200_000, chunk_size=10_000)
    try:
        with pytest.raises(LlmBadResponse, match="larger than"):
            await model.chat(llm.request())
        with pytest.raises(LlmBadResponse, match="larger than"):
            await model.chat(llm.request(), on_delta=Deltas())
    finally:
        await model.close()


async def test_invalid_utf8_and_lone_surrogates_are_replaced_not_a_crash(llm: Harness) -> None:
    def event(content: bytes) -> bytes:
        return b'data: {"choices":[{"index":0,"delta":{"content":"' + content + b'"}}]}\n\n'

    llm.script.raw(
        [
            event(b"valid \xc3\xa9 then bad \xff\xfe bytes"),
            event(b"a lone \\ud800 surrogate"),
            event(b"a pair \\ud83e\\udd8a joined"),
            b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
            b"data: [DONE]\n\n",
        ]
    )
    llm.script.raw(b'{"choices":[{"message":{"content":"bad \xff and lone \\udc00"}}]}')
    deltas = Deltas()

    streamed = await llm.model.chat(llm.request(), on_delta=deltas)
    whole = await llm.model.chat(llm.request())

    assert streamed.message.content == (
        "valid é then bad \ufffd\ufffd bytesa lone \ufffd surrogatea pair 🦊 joined"
    )
    assert deltas.text == streamed.message.content
    assert whole.message.content == "bad \ufffd and lone \ufffd"
    (streamed.message.content + (whole.message.content or "")).encode("utf-8")  # storable


async def test_a_lone_surrogate_in_a_message_is_sent_replaced_not_a_crash(llm: Harness) -> None:
    llm.script.reply(text="ok")
    tool_output = ChatMessage(role="user", content="binary junk \ud800 in a tool's output")

    await llm.model.chat(llm.request(tool_output))
    await llm.model.embed(llm.endpoint(), ["also \udfff here"])

    assert llm.script.chat_requests[0].json["messages"][0]["content"] == (
        "binary junk \ufffd in a tool's output"
    )
    assert llm.script.requests[-1].json["input"] == ["also \ufffd here"]


async def test_replies_in_other_providers_dialects_are_read(llm: Harness) -> None:
    # Arguments as an object (Ollama), no tool call id, content as text parts, CRLF events.
    message = {
        "content": [{"type": "text", "text": "Part one, "}, {"type": "text", "text": "part two."}],
        "tool_calls": [{"function": {"name": "ls", "arguments": {"path": "."}}}],
    }
    choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
    llm.script.raw(json.dumps({"model": "llama3", "choices": [choice]}))
    piece = {"choices": [{"index": 0, "delta": {"content": "crlf"}, "finish_reason": "stop"}]}
    llm.script.raw([b"data: " + json.dumps(piece).encode() + b"\r\n\r\n", b": a comment\r\n\r\n"])

    whole = await llm.model.chat(llm.request())
    streamed = await llm.model.chat(llm.request(), on_delta=Deltas())

    assert whole.message.content == "Part one, part two."
    assert whole.message.tool_calls == (ToolCall(id="call_0", name="ls", arguments='{"path":"."}'),)
    assert whole.model == "llama3"
    assert streamed.message.content == "crlf"
    assert streamed.finish_reason == "stop"


async def test_a_stream_that_ends_without_finishing_is_llm_unavailable(llm: Harness) -> None:
    llm.needs("retries")
    piece = {"choices": [{"index": 0, "delta": {"content": "half"}, "finish_reason": None}]}
    llm.script.raw([b"data: " + json.dumps(piece).encode() + b"\n\n"])

    with pytest.raises(LlmUnavailable, match="ended its streamed reply before it was complete"):
        await llm.model.chat(llm.request(), on_delta=Deltas())


async def test_close_is_idempotent_and_a_closed_adapter_opens_a_new_session(
    llm: Harness,
) -> None:
    llm.script.reply(text="one").reply(text="two")
    assert (await llm.model.chat(llm.request())).message.content == "one"

    await llm.model.close()
    await llm.model.close()

    assert (await llm.model.chat(llm.request())).message.content == "two"


async def test_model_info_returns_a_litellm_proxys_deployments_with_their_prices(
    llm: Harness,
) -> None:
    llm.script.models = {
        "gpt-a": {"input_cost_per_token": 2.5e-06, "max_input_tokens": 128000},
        "embed-b": {"mode": "embedding"},
    }

    info = await llm.model.model_info(llm.endpoint())

    assert [entry["model_name"] for entry in info] == ["gpt-a", "embed-b"]
    assert info[0]["model_info"]["input_cost_per_token"] == 2.5e-06
    assert info[1]["model_info"]["mode"] == "embedding"
    sent = llm.script.requests[-1]
    assert (sent.method, sent.path) == ("GET", "/v1/model/info")
    assert sent.headers["Authorization"] == f"Bearer {KEY}"


async def test_model_info_maps_errors_like_chat(llm: Harness) -> None:
    llm.script.api_key = "sk-other"
    with pytest.raises(LlmAuthFailed):
        await llm.model.model_info(llm.endpoint())
    llm.script.api_key = KEY
    # An endpoint that is not a LiteLLM proxy has no /model/info.
    with pytest.raises(LlmModelNotFound):
        await llm.model.model_info(llm.endpoint(base_url=llm.script.url + "/elsewhere"))
