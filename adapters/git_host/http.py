"""What the three git host adapters share: HTTP with retries, paging, and error mapping.

`HostClient` sends one REST request with aiohttp and returns the decoded JSON reply, or
raises the port's typed error. Every host answers failures alike enough to map them in
one place:

    401                                   GitHostAuthFailed
    403 with no requests left (GitHub)    GitHostRateLimited (x-ratelimit-reset, retry-after)
    403                                   GitHostAuthFailed (the token may not do this)
    404                                   GitHostNotFound
    409, 422 (and other 4xx)              GitHostRejected, quoting the host's reasons
    429                                   retried when Retry-After is short, else GitHostRateLimited
    5xx, lost connection, timeout         retried, then GitHostUnavailable
    a 2xx that is not JSON                GitHostBadResponse

Each message names the host, quotes what it said and says how to fix it; the token is
scrubbed from all of them (whatever a host or proxy echoes back). Redirects are not
followed: an API that moved is a configuration error to fix, and following one could
send the token elsewhere.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import aiohttp
import msgspec
import structlog
import yarl

from codeforge.ports.git_host import (
    GitHostAuthFailed,
    GitHostBadResponse,
    GitHostError,
    GitHostNotFound,
    GitHostRateLimited,
    GitHostRejected,
    GitHostUnavailable,
    HostTarget,
)

log = structlog.get_logger("codeforge.git_host")

USER_AGENT = "codeforge"
QUOTE_LIMIT = 600
ERROR_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    data: Any


class _Transient(Exception):
    """Worth another attempt; carries the error to raise when none is left."""

    def __init__(self, error: GitHostError, retry_after: float | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


def segment(value: str) -> str:
    """One URL path segment: every reserved character encoded ("acme/app" -> "acme%2Fapp")."""
    return quote(value, safe="")


def repo_path(repository: str) -> str:
    """ "owner/name" as two path segments, each encoded."""
    owner, _, name = repository.partition("/")
    return f"{segment(owner)}/{segment(name)}"


class HostClient:
    """JSON over HTTP for one kind of host (`host` names it in messages: "GitHub")."""

    def __init__(
        self,
        host: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 2,
        retry_after_cap: float = 30.0,
        backoff_base: float = 0.5,
        max_body_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.host = host
        self._timeout = timeout
        self._max_retries = max_retries
        self._retry_after_cap = retry_after_cap
        self._backoff_base = backoff_base
        self._max_bytes = max_body_bytes
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None and not http.closed:
            await http.close()

    async def call(
        self,
        target: HostTarget,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
    ) -> Reply:
        """One request to `api_url + path` (path segments already encoded), retried
        while transient."""
        url = _url(target, self.host, path, params)
        scrub = _Scrubber(target)
        body = None if json is None else msgspec.json.encode(json)
        sent = {"User-Agent": USER_AGENT, **headers}
        if body is not None:
            sent["Content-Type"] = "application/json"
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(method, url, sent, body, target, scrub)
            except _Transient as e:
                wait = e.retry_after
                too_long = wait is not None and wait > self._retry_after_cap
                if attempt > self._max_retries or too_long:
                    raise e.error from e.__cause__
                delay = wait if wait is not None else self._backoff(attempt)
                log.warning(
                    "git host call failed; retrying",
                    host=self.host,
                    attempt=attempt,
                    delay_s=round(delay, 3),
                    error=e.error.message,
                )
                await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        step = self._backoff_base * 2.0 ** (attempt - 1)
        return step * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        return self._http

    async def _attempt(
        self,
        method: str,
        url: yarl.URL,
        headers: Mapping[str, str],
        body: bytes | None,
        target: HostTarget,
        scrub: _Scrubber,
    ) -> Reply:
        where = f"{self.host} at {scrub.api_url}"
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    response = await self._client().request(
                        method, url, data=body, headers=headers, allow_redirects=False
                    )
                except ValueError as e:
                    if isinstance(e, aiohttp.ClientError):
                        raise
                    # aiohttp refuses a header value with a line break (the token's too): the
                    # message may quote it, so it is neither shown nor chained.
                    raise GitHostAuthFailed(
                        f"{where}: the request could not be sent ({type(e).__name__}); check "
                        "the token in the project's git_host.token_secret for line breaks"
                    ) from None
                async with response:
                    raw = await _read(response, self._max_bytes)
                    status = response.status
                    reply_headers = {k.lower(): v for k, v in response.headers.items()}
        except TimeoutError as e:
            raise _Transient(
                GitHostUnavailable(f"{where} did not answer within {self._timeout:g} s"), None
            ) from e
        except aiohttp.ClientError as e:
            raise _Transient(
                GitHostUnavailable(scrub(f"{where} could not be reached: {_describe(e)}")), None
            ) from e
        raw = scrub.bytes(raw)
        if 200 <= status < 300:
            if not raw.strip():
                return Reply(status, reply_headers, None)
            try:
                return Reply(status, reply_headers, msgspec.json.decode(raw))
            except (msgspec.DecodeError, RecursionError) as e:
                raise GitHostBadResponse(
                    f"{where} answered HTTP {status} with something that is not JSON "
                    f"({_quote(raw)!r}); check git_host.api_url (it is the REST API root)",
                    status=status,
                ) from e
        raise_for(self.host, where, status, raw, reply_headers, target)
        raise AssertionError("unreachable")  # pragma: no cover


def raise_for(
    host: str,
    where: str,
    status: int,
    raw: bytes,
    headers: Mapping[str, str],
    target: HostTarget,
) -> None:
    """Raise the typed error for a non-2xx reply (`_Transient` when worth retrying)."""
    said = host_message(raw)
    quoted = f": {said}" if said else ""
    wait = retry_after(headers)
    repo = target.repository
    if status == 401:
        raise GitHostAuthFailed(
            f"{where} refused the token (HTTP 401){quoted}. Check the secret named by the "
            "project's git_host.token_secret: it may be wrong, expired or revoked",
            status=status,
        )
    if status == 403 and headers.get("x-ratelimit-remaining") == "0":
        raise GitHostRateLimited(
            f"{where} rate limit is used up (HTTP 403){quoted}; "
            + (f"it resets in {wait:.0f} s" if wait is not None else "try again later"),
            status=status,
            retry_after=wait,
        )
    if status == 403 and wait is not None:  # GitHub's secondary rate limit
        raise _Transient(
            GitHostRateLimited(
                f"{where} asks to slow down (HTTP 403){quoted}", status=status, retry_after=wait
            ),
            wait,
        )
    if status == 403:
        raise GitHostAuthFailed(
            f"{where} does not let this token do that in {repo!r} (HTTP 403){quoted}. Give the "
            "token write access to the repository's code and pull requests",
            status=status,
        )
    if status == 404:
        raise GitHostNotFound(
            f"{where} answered 404 for {repo!r}{quoted}: the repository does not exist, the "
            "token cannot see it, or a branch is missing. Check the project's "
            "git_host.repository and the token's access",
            status=status,
        )
    if status == 429:
        raise _Transient(
            GitHostRateLimited(
                f"{where} rate limit was reached (HTTP 429){quoted}"
                + (f"; retry after {wait:.0f} s" if wait is not None else ""),
                status=status,
                retry_after=wait,
            ),
            wait,
        )
    if status >= 500:
        raise _Transient(
            GitHostUnavailable(f"{where} is unavailable (HTTP {status}){quoted}", status=status),
            wait,
        )
    if 300 <= status < 400:
        raise GitHostBadResponse(
            f"{where} redirected the request (HTTP {status}) to "
            f"{headers.get('location') or 'elsewhere'}; set git_host.api_url to the API root "
            "the host really answers on",
            status=status,
        )
    raise GitHostRejected(f"{where} refused the request (HTTP {status}){quoted}", status=status)


def host_message(raw: bytes) -> str:
    """What the host said, in one line: `message` (a string, a list or a dict of field
    errors), GitHub's `errors[]`, else the text itself."""
    try:
        data = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return _quote(raw)
    parts: list[str] = []
    if isinstance(data, dict):
        parts += _flatten(data.get("message", data.get("error")))
        errors = data.get("errors")
        for error in errors if isinstance(errors, list) else []:
            if isinstance(error, dict):
                text = error.get("message") or " ".join(
                    str(error[k]) for k in ("resource", "field", "code") if error.get(k)
                )
                if text:
                    parts.append(str(text))
            elif isinstance(error, str):
                parts.append(error)
    else:
        parts += _flatten(data)
    text = "; ".join(p for p in parts if p)
    return _one_line(text) if text else _quote(raw)


def _flatten(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str | int | float)]
    if isinstance(value, dict):  # GitLab: {"source_branch": ["is invalid"]}
        return [f"{k} {' '.join(_flatten(v))}" for k, v in value.items()]
    return []


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait: `Retry-After` (seconds or an HTTP date), else GitHub's
    `x-ratelimit-reset` (epoch seconds) when no requests are left."""
    raw = headers.get("retry-after")
    if raw is not None:
        try:
            seconds = float(raw)
        except ValueError:
            try:
                when = parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    reset = headers.get("x-ratelimit-reset") or headers.get("ratelimit-reset")
    if reset is not None and headers.get("x-ratelimit-remaining", "0") == "0":
        try:
            value = float(reset)
        except ValueError:
            return None
        now = time.time() if now is None else now
        # GitHub sends an epoch time; GitLab's RateLimit-Reset is one too.
        return max(0.0, value - now) if value > 1e9 else max(0.0, value)
    return None


def has_next_page(headers: Mapping[str, str]) -> bool | None:
    """Whether the reply says there is a next page: a `Link: <…>; rel="next"` (GitHub,
    GitLab, Gitea) or GitLab's `X-Next-Page`. None when it says nothing."""
    link = headers.get("link")
    if link is not None:
        return any('rel="next"' in part for part in link.split(","))
    following = headers.get("x-next-page")
    if following is not None:
        return bool(following.strip())
    return None


class _Scrubber:
    def __init__(self, target: HostTarget) -> None:
        self._token = target.token if len(target.token) >= 3 else ""
        parts = urlsplit(target.api_url)
        self.api_url = urlunsplit(
            (parts.scheme, parts.netloc.rpartition("@")[2], parts.path.rstrip("/"), "", "")
        )

    def __call__(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def bytes(self, data: bytes) -> bytes:
        if not self._token:
            return data
        return data.replace(self._token.encode("utf-8", "replace"), b"***")


def _url(
    target: HostTarget, host: str, path: str, params: Mapping[str, str | int] | None
) -> yarl.URL:
    api = target.api_url.rstrip("/")
    try:
        parts = urlsplit(api)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        valid = valid and not (parts.username or parts.password) and not parts.query
    except ValueError:
        valid = False
    if not valid:
        raise GitHostRejected(
            f"the {host} API URL {api!r} is not an http(s) URL without credentials or a query; "
            "set git_host.api_url to the API root (https://api.github.com, "
            "https://gitlab.example/api/v4, https://gitea.example/api/v1)"
        )
    query = f"?{urlencode(params)}" if params else ""
    # Encoded as given: GitLab's project ids are paths with %2F, which must stay encoded.
    return yarl.URL(f"{api}{path}{query}", encoded=True)


async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes:
    if not 200 <= response.status < 300:
        limit = ERROR_BODY_LIMIT
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > limit:
            if 200 <= response.status < 300:
                raise GitHostBadResponse(
                    f"the reply is larger than {limit} bytes", status=response.status
                )
            break
    return bytes(body[:limit])


def _quote(raw: bytes) -> str:
    return _one_line(raw.decode("utf-8", "replace"))


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= QUOTE_LIMIT else line[: QUOTE_LIMIT - 1] + "…"


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
