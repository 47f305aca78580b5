"""The language model port over any OpenAI-compatible HTTP endpoint, with aiohttp.

Works with OpenAI, a LiteLLM proxy, Ollama, vLLM, llama.cpp and OpenRouter: `POST
{base_url}/chat/completions` (whole or streamed as server-sent events), `GET
{base_url}/models`, `POST {base_url}/embeddings`. One `aiohttp.ClientSession` per adapter,
opened on first use and closed by `close()`.

Each call is a series of attempts (one HTTP request each):

- An attempt is bounded by `endpoint.timeout`, from sending the request until the reply
  is complete — a stream that stalls half-way included.
- Transient failures — 408, 425, 429, 5xx, a connection refused or lost, a timeout, a
  stream cut off before its end — are retried up to `endpoint.max_retries` times, after
  an exponential backoff with jitter (`backoff_base` · 2ⁿ, at most `backoff_max`, then
  scaled by a random 50 to 100 %), or after the provider's `Retry-After` / `retry-after-ms`
  when it sent one, capped at `retry_after_cap` (60 s by default: a longer wait is not
  waited out in full; the last uncapped value is the error's `retry_after`).
- A streamed reply is not retried once a piece of it has reached `on_delta`: the
  caller has shown those pieces, and a second answer would not continue them.
- Every attempt goes through the endpoint's circuit breaker (one per base URL): after
  `breaker_failure_threshold` transient failures in a row, calls fail at once with
  `LlmCircuitOpen` (a `CircuitOpen` and an `LlmUnavailable`) for `breaker_reset_timeout`
  seconds; then one trial call decides. `breaker_states()` is for readiness.
- Other failures are not retried and come typed (see `adapters/llm/errors.py`). An
  asyncio cancel closes the connection at once and is never retried. No message ever
  holds the API key.

Replies larger than `max_response_bytes` are refused (`LlmBadResponse`) rather than held
in memory; a malformed base URL is refused (`LlmBadRequest`) before anything is sent.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import structlog

from adapters.llm.errors import Redactor, Transient, error_for_status
from adapters.llm.wire import (
    ProviderError,
    Reply,
    SseDecoder,
    StreamAssembler,
    chat_body,
    decode_completion,
    decode_embeddings,
    decode_model_info,
    decode_models,
    deltas_of,
    encode,
    estimate_usage,
)
from codeforge.ports.llm import (
    ChatDelta,
    ChatRequest,
    ChatResponse,
    DeltaCallback,
    LlmBadRequest,
    LlmBadResponse,
    LlmUnavailable,
    ModelEndpoint,
)
from codeforge.services.circuit_breaker import BreakerState, CircuitBreaker, CircuitOpen
from codeforge.services.clock import Clock, utc_now

__all__ = ["LlmCircuitOpen", "OpenAICompatibleModel"]

log = structlog.get_logger("codeforge.llm")

T = TypeVar("T")

USER_AGENT = "codeforge"
ERROR_BODY_LIMIT = 64 * 1024
"""Bytes of an error reply read for its message; the rest is dropped."""


class LlmCircuitOpen(CircuitOpen, LlmUnavailable):
    """The endpoint's circuit breaker is open: nothing was sent.

    Both a `CircuitOpen` (what readiness and the other breakers' callers know) and an
    `LlmUnavailable` (what callers of the port catch). `retry_after` is the seconds until
    the breaker lets a trial call through.
    """

    def __init__(self, cause: CircuitOpen, redact: Redactor, retry_after: float | None) -> None:
        message = redact(
            f"{cause} — calls to this model endpoint fail at once until then. Check that it is "
            "up and reachable from this host."
        )
        Exception.__init__(self, message)
        self.name = cause.name
        self.retry_at = cause.retry_at
        self.last_error = cause.last_error
        self.message = message
        self.status = None
        self.retry_after = retry_after


class _CallbackFailed(Exception):
    """Carries an exception raised by `on_delta` past the adapter's own error handling."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _Streamed:
    """How many deltas of the current call reached the caller."""

    def __init__(self) -> None:
        self.count = 0


class OpenAICompatibleModel:
    def __init__(
        self,
        *,
        breaker_failure_threshold: int = 5,
        breaker_reset_timeout: float = 30.0,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        retry_after_cap: float = 60.0,
        max_response_bytes: int = 32 * 1024 * 1024,
        embed_batch_size: int = 128,
        clock: Clock = utc_now,
    ) -> None:
        if backoff_base < 0 or backoff_max < 0 or retry_after_cap < 0:
            raise ValueError("backoff_base, backoff_max and retry_after_cap must not be negative")
        if max_response_bytes < 1 or embed_batch_size < 1:
            raise ValueError("max_response_bytes and embed_batch_size must be positive")
        self._threshold = breaker_failure_threshold
        self._reset = breaker_reset_timeout
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._retry_after_cap = retry_after_cap
        self._max_bytes = max_response_bytes
        self._batch = embed_batch_size
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._http: aiohttp.ClientSession | None = None
        # Fail at construction, not on the first call, when breaker settings are wrong.
        CircuitBreaker(
            "check",
            failure_threshold=breaker_failure_threshold,
            reset_timeout=breaker_reset_timeout,
        )

    # -- the port --------------------------------------------------------------------------

    async def chat(
        self, request: ChatRequest, *, on_delta: DeltaCallback | None = None
    ) -> ChatResponse:
        endpoint = request.endpoint
        stream = on_delta is not None
        payload = encode(chat_body(request, stream=stream))
        streamed = _Streamed()
        redact = Redactor(endpoint)

        async def deliver(delta: ChatDelta) -> None:
            assert on_delta is not None
            streamed.count += 1
            try:
                await on_delta(delta)
            except Exception as e:
                raise _CallbackFailed(e) from e

        async def read(response: aiohttp.ClientResponse) -> Reply:
            if not stream:
                return decode_completion(await self._body(response, redact))
            if response.content_type != "text/event-stream":  # the provider did not stream
                reply = decode_completion(await self._body(response, redact))
                for delta in deltas_of(reply.message):
                    await deliver(delta)
                return reply
            return await self._read_stream(response, deliver, redact)

        try:
            reply, attempts, latency = await self._call(
                endpoint,
                "POST",
                "/chat/completions",
                payload,
                read,
                retry_allowed=lambda: streamed.count == 0,
            )
        except _CallbackFailed as e:
            raise e.error from e.error.__cause__
        return ChatResponse(
            message=reply.message,
            usage=reply.usage or estimate_usage(request, reply.message),
            finish_reason=reply.finish_reason,
            model=reply.model or endpoint.model,
            latency=latency,
            attempts=attempts,
        )

    async def list_models(self, endpoint: ModelEndpoint) -> list[dict[str, Any]]:
        async def read(response: aiohttp.ClientResponse) -> list[dict[str, Any]]:
            return decode_models(await self._body(response, Redactor(endpoint)))

        models, _, _ = await self._call(endpoint, "GET", "/models", None, read)
        return models

    async def model_info(self, endpoint: ModelEndpoint) -> list[dict[str, Any]]:
        async def read(response: aiohttp.ClientResponse) -> list[dict[str, Any]]:
            return decode_model_info(await self._body(response, Redactor(endpoint)))

        info, _, _ = await self._call(endpoint, "GET", "/model/info", None, read)
        return info

    async def embed(self, endpoint: ModelEndpoint, inputs: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        # Providers cap the inputs of one request (OpenAI: 2048); batches stay well under.
        for start in range(0, len(inputs), self._batch):
            batch = list(inputs[start : start + self._batch])
            payload = encode({"model": endpoint.model, "input": batch, "encoding_format": "float"})

            async def read(
                response: aiohttp.ClientResponse, n: int = len(batch)
            ) -> list[list[float]]:
                return decode_embeddings(await self._body(response, Redactor(endpoint)), n)

            found, _, _ = await self._call(endpoint, "POST", "/embeddings", payload, read)
            vectors.extend(found)
        return vectors

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None and not http.closed:
            await http.close()

    def breaker_states(self) -> list[BreakerState]:
        """Each endpoint's circuit breaker, as `/health/ready` shows it."""
        return [breaker.snapshot() for breaker in self._breakers.values()]

    # -- attempts and retries ----------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            # No aiohttp timeouts: each attempt runs under the endpoint's own (asyncio).
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None), headers={"User-Agent": USER_AGENT}
            )
        return self._http

    def _breaker(self, endpoint: ModelEndpoint, redact: Redactor) -> CircuitBreaker:
        key = endpoint.base_url.rstrip("/")
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = CircuitBreaker(
                f"llm {redact.url}",
                failure_threshold=self._threshold,
                reset_timeout=self._reset,
                clock=self._clock,
            )
        return breaker

    def _delay(self, failures: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._retry_after_cap)
        step = min(self._backoff_max, self._backoff_base * 2.0 ** (failures - 1))
        return step * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography

    async def _call(
        self,
        endpoint: ModelEndpoint,
        method: str,
        path: str,
        payload: bytes | None,
        read: Callable[[aiohttp.ClientResponse], Awaitable[T]],
        *,
        retry_allowed: Callable[[], bool] = lambda: True,
    ) -> tuple[T, int, float]:
        """(what `read` made of the reply, attempts, latency of the last attempt)."""
        redact = Redactor(endpoint)
        _check_base_url(endpoint, redact)
        breaker = self._breaker(endpoint, redact)
        attempts = 0
        while True:
            attempts += 1
            started = time.monotonic()
            try:
                result = await breaker.call(
                    self._attempt, endpoint, redact, method, path, payload, read
                )
            except CircuitOpen as e:
                wait = _seconds_until(e.retry_at, self._clock())
                raise LlmCircuitOpen(e, redact, wait) from e
            except Transient as e:
                spent = attempts > endpoint.max_retries
                if spent or not retry_allowed():
                    reason = (
                        f"gave up after {attempts} attempt{'s' if attempts > 1 else ''}"
                        if spent
                        else "not retried: part of the streamed reply had already been delivered"
                    )
                    raise LlmUnavailable(
                        f"{e.message}; {reason}", status=e.status, retry_after=e.retry_after
                    ) from (e.__cause__ or e)
                delay = self._delay(attempts, e.retry_after)
                log.warning(
                    "llm call failed; retrying",
                    endpoint=redact.url,
                    model=endpoint.model,
                    attempt=attempts,
                    delay_s=round(delay, 3),
                    error=e.message,
                )
                await asyncio.sleep(delay)
                continue
            return result, attempts, time.monotonic() - started

    async def _attempt(
        self,
        endpoint: ModelEndpoint,
        redact: Redactor,
        method: str,
        path: str,
        payload: bytes | None,
        read: Callable[[aiohttp.ClientResponse], Awaitable[T]],
    ) -> T:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        if endpoint.api_key:
            headers["Authorization"] = f"Bearer {endpoint.api_key}"
        headers.update(endpoint.headers)
        url = endpoint.base_url.rstrip("/") + path
        where = f"the model endpoint {redact.url}"
        try:
            async with asyncio.timeout(endpoint.timeout):
                try:
                    response = await self._client().request(
                        method, url, data=payload, headers=headers, allow_redirects=False
                    )
                except ValueError as e:
                    if isinstance(e, aiohttp.ClientError):
                        raise
                    # aiohttp refuses e.g. a line break in a header value (the key's too):
                    # the message may quote it, so it is neither shown nor chained.
                    raise LlmBadRequest(
                        f"{where}: the request could not be sent as configured "
                        f"({type(e).__name__}); check the API key and the extra headers for "
                        "line breaks or other characters HTTP headers cannot carry"
                    ) from None
                try:
                    if not 200 <= response.status < 300:
                        body = redact.scrub(await _prefix(response, ERROR_BODY_LIMIT))
                        raise error_for_status(endpoint, response.status, body, response.headers)
                    result = await read(response)
                except ProviderError as e:
                    response.close()
                    raise error_for_status(endpoint, e.status, e.body, {}) from e
                except LlmBadResponse as e:
                    response.close()
                    # From the parser's error, not this one: its text is not yet redacted.
                    raise LlmBadResponse(
                        redact(
                            f"{where} sent a reply CodeForge cannot read: {e.message}. Check that "
                            "the base URL is an OpenAI-compatible API root."
                        ),
                        status=response.status,
                    ) from e.__cause__
                except BaseException:
                    # Cancelled, timed out, refused: the connection goes, never back to the pool
                    # half-read, so the server sees the request end at once.
                    response.close()
                    raise
                response.release()
                return result
        except TimeoutError as e:
            raise Transient(
                redact(f"{where} gave no complete answer within {endpoint.timeout:g} s"),
            ) from e
        except aiohttp.ClientError as e:
            raise Transient(
                redact(f"{where} could not be reached or broke off: {_describe(e)}")
            ) from e

    # -- reading replies ---------------------------------------------------------------------

    async def _body(self, response: aiohttp.ClientResponse, redact: Redactor) -> bytes:
        """The whole reply, within the size limit, with the endpoint's secrets scrubbed (so
        no message quoting it can hold them, not even cut in half)."""
        if response.content_length is not None and response.content_length > self._max_bytes:
            raise LlmBadResponse(self._too_large(response.content_length))
        body = bytearray()
        async for chunk in response.content.iter_any():
            body += chunk
            if len(body) > self._max_bytes:
                raise LlmBadResponse(self._too_large(len(body)))
        return redact.scrub(bytes(body))

    def _too_large(self, size: int) -> str:
        return (
            f"the reply is larger than the adapter's limit ({size} > {self._max_bytes} bytes); "
            "lower max_tokens or raise max_response_bytes"
        )

    async def _read_stream(
        self,
        response: aiohttp.ClientResponse,
        deliver: Callable[[ChatDelta], Awaitable[None]],
        redact: Redactor,
    ) -> Reply:
        decoder = SseDecoder(self._max_bytes)
        assembler = StreamAssembler()
        received = 0
        async for chunk in response.content.iter_any():
            received += len(chunk)
            if received > self._max_bytes:
                raise LlmBadResponse(self._too_large(received))
            for event in decoder.feed(chunk):
                for delta in assembler.add(redact.scrub(event)):
                    await deliver(delta)
                if assembler.done:
                    return assembler.result()
        for event in decoder.close():
            for delta in assembler.add(redact.scrub(event)):
                await deliver(delta)
        if not assembler.complete:
            raise Transient(
                f"the model endpoint {redact.url} ended its streamed reply before it was "
                "complete (no finish_reason, no [DONE])"
            )
        return assembler.result()


async def _prefix(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The first `limit` bytes of a reply (an error's message; the rest is not wanted)."""
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


def _check_base_url(endpoint: ModelEndpoint, redact: Redactor) -> None:
    try:
        parts = urlsplit(endpoint.base_url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # e.g. a port that is not a number
        valid = False
    if valid and (parts.username or parts.password):
        # As with project sources: credentials in a URL get stored and shown.
        raise LlmBadRequest(
            redact(
                f"the model's base URL {redact.url} carries credentials; remove them and "
                "store the key as the model's secret instead"
            )
        )
    if not valid:
        raise LlmBadRequest(
            redact(
                f"the model's base URL {endpoint.base_url!r} is not an http(s) URL; set it to the "
                "API root, e.g. https://api.openai.com/v1 or http://localhost:11434/v1"
            )
        )


def _seconds_until(when: datetime | None, now: datetime) -> float | None:
    return None if when is None else max(0.0, (when - now).total_seconds())


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
