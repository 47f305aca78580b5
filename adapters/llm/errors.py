"""What an OpenAI-compatible endpoint's failures mean, as the port's typed errors.

Providers agree on HTTP statuses only roughly and on error bodies not at all, so the
mapping reads both, in this order:

    401, 403                              LlmAuthFailed
    a context-length code or phrase       LlmContextTooLong   (any status but 429)
    404, or a "model not found" phrase    LlmModelNotFound
    429 "insufficient_quota"              LlmUnavailable, not retried (billing, not load)
    408, 429, 5xx                         transient: retried, then LlmUnavailable
    other 3xx/4xx                         LlmBadRequest

The phrases are the ones OpenAI, vLLM, Ollama, llama.cpp, LiteLLM, OpenRouter, Anthropic
(through a proxy) and Gemini send; the tests in `tests/contract/test_llm_contract.py` hold
a sample of each. Every message names the endpoint, quotes the provider's own message and
says how to fix it; `Redactor` scrubs the API key (and any credential in the base URL or
the extra headers) out of every message, whatever the provider echoed back.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from codeforge.ports.llm import (
    LlmAuthFailed,
    LlmBadRequest,
    LlmContextTooLong,
    LlmError,
    LlmModelNotFound,
    LlmUnavailable,
    ModelEndpoint,
)

__all__ = [
    "Redactor",
    "Transient",
    "error_for_status",
    "provider_message",
    "retry_after_seconds",
]

# The provider's own message is quoted, but not a whole HTML error page.
QUOTE_LIMIT = 600

CONTEXT_CODES = frozenset(
    {"context_length_exceeded", "exceed_context_size_error", "context_window_exceeded"}
)
CONTEXT_PHRASES = re.compile(
    r"maximum context length"  # OpenAI, vLLM, OpenRouter, Mistral, Groq
    r"|context length exceeded|context_length_exceeded"
    r"|exceeds? the (available )?context (length|size|window)"  # Ollama, llama.cpp
    r"|longer than the model's context length"  # LiteLLM (vLLM, Together)
    r"|model's maximum context limit"  # LiteLLM
    r"|context ?window ?exceeded|contextwindowexceedederror"  # LiteLLM proxy
    r"|prompt is too long"  # Anthropic
    r"|input is too long"  # Bedrock, Cohere
    r"|exceeds the maximum number of tokens allowed",  # Gemini
    re.IGNORECASE,
)
MODEL_PHRASES = re.compile(
    r"model_not_found"
    r"|\bmodel\b[^.\n]{0,200}?\b(does not exist|not found)"  # OpenAI, vLLM, Ollama
    r"|\b(invalid|unknown|no such) model\b"  # LiteLLM ("Invalid model name passed")
    r"|not a valid model",  # OpenRouter
    re.IGNORECASE,
)
TRANSIENT_STATUSES = frozenset({408, 425, 429})

# Header names whose values are credentials, to scrub from messages like the key itself.
SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie", re.IGNORECASE)


class Transient(LlmUnavailable):
    """A failure worth another attempt (429, 5xx, connection lost, timeout).

    Internal to the adapter: the retry loop catches it, and when no attempt is left it
    raises a plain `LlmUnavailable` with the same message and the attempts counted.
    """


class Redactor:
    """Scrubs one endpoint's credentials out of text meant for people."""

    def __init__(self, endpoint: ModelEndpoint) -> None:
        secrets = {endpoint.api_key} if endpoint.api_key else set()
        secrets |= {v for k, v in endpoint.headers.items() if SECRET_HEADER.search(k) and v}
        parts = urlsplit(endpoint.base_url)
        if parts.password:
            secrets.add(parts.password)
        # A key of one or two characters would scrub half the message; such keys are not
        # secret anyway. Longest first, so a key containing another is scrubbed whole.
        self._secrets = sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True)
        self._encoded = [s.encode("utf-8", "replace") for s in self._secrets]
        # The host and port as written, without any user info.
        host = parts.netloc.rpartition("@")[2]
        self.url = urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
        """The base URL without user info or query: safe to show."""

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def scrub(self, data: bytes) -> bytes:
        """`data` with the secrets replaced, before any of it is parsed, quoted or cut."""
        for secret in self._encoded:
            if secret in data:
                data = data.replace(secret, b"***")
        return data


def provider_message(body: bytes) -> tuple[str, str]:
    """(the provider's message, its error code or type) from an error body, best effort."""
    text = body.decode("utf-8", "replace").strip()
    message, code = "", ""
    try:
        data = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        data = None
    if isinstance(data, dict):
        error: Any = data.get("error", data)
        if isinstance(error, str):  # Ollama: {"error": "model 'x' not found"}
            message = error
        elif isinstance(error, dict):
            found = error.get("message") or error.get("detail") or error.get("msg")
            message = found if isinstance(found, str) else ""
            code = " ".join(
                str(error[k]) for k in ("code", "type") if isinstance(error.get(k), str | int)
            )
        if not message and isinstance(data.get("detail"), str):  # FastAPI-style servers
            message = data["detail"]
    if not message:
        message = " ".join(text.split())  # e.g. a proxy's HTML or plain-text page
    if len(message) > QUOTE_LIMIT:
        message = message[:QUOTE_LIMIT] + "…"
    return message, code


def retry_after_seconds(headers: Any, now: datetime | None = None) -> float | None:
    """The wait a 429/503 asks for: `retry-after-ms` (OpenAI), else `Retry-After` in
    seconds or as an HTTP date. None when absent or unreadable."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def error_for_status(endpoint: ModelEndpoint, status: int, body: bytes, headers: Any) -> LlmError:
    """The typed error for a non-2xx answer (a `Transient` when it is worth retrying)."""
    redact = Redactor(endpoint)
    said, code = provider_message(body)
    # Each message goes on after the quote with ". How to fix it", so no second full stop.
    quoted = f": {said.rstrip(' .')}" if said else ""
    where = f"the model endpoint {redact.url}"
    model = endpoint.model
    marker = f"{code} {said}"

    if status in (401, 403):
        fix = (
            "No API key is configured for this model: store one in the model's secret."
            if not endpoint.api_key
            else f"Check the API key in the model's secret, and that it may use model {model!r}."
        )
        return LlmAuthFailed(
            redact(f"{where} refused the credentials (HTTP {status}){quoted}. {fix}"), status=status
        )
    if status != 429 and (CONTEXT_PHRASES.search(marker) or set(code.split()) & CONTEXT_CODES):
        return LlmContextTooLong(
            redact(
                f"the prompt does not fit the context window of model {model!r} at {redact.url} "
                f"(HTTP {status}){quoted}. Shorten the conversation or the context pack, lower "
                "max_tokens, or choose a model with a longer context window."
            ),
            status=status,
        )
    if status == 404 or (400 <= status < 500 and status != 429 and MODEL_PHRASES.search(marker)):
        return LlmModelNotFound(
            redact(
                f"{where} does not know model {model!r} (HTTP {status}){quoted}. Check the model "
                f"id (GET {redact.url}/models lists them) and that the base URL is the API root "
                "(it usually ends in /v1)."
            ),
            status=status,
        )
    if status == 429 and "insufficient_quota" in marker:
        return LlmUnavailable(
            redact(
                f"{where} refused the call: the account's quota is used up (HTTP 429){quoted}. "
                "Check the provider account's plan and billing; retrying will not help."
            ),
            status=status,
        )
    if status in TRANSIENT_STATUSES or status >= 500:
        wait = retry_after_seconds(headers)
        return Transient(
            redact(f"{where} is unavailable (HTTP {status}){quoted}"),
            status=status,
            retry_after=wait,
        )
    if 300 <= status < 400:
        location = headers.get("Location", "")
        return LlmBadRequest(
            redact(
                f"{where} redirected the request (HTTP {status}) to {location or 'elsewhere'}. "
                "Set the model's base URL to the address the endpoint really answers on."
            ),
            status=status,
        )
    return LlmBadRequest(
        redact(
            f"{where} refused the request for model {model!r} (HTTP {status}){quoted}. Check "
            "that the provider supports what the request uses (tools, tool_choice, "
            "temperature, max_tokens)."
        ),
        status=status,
    )
