"""Rate limits on the API: a token bucket per client IP and one per API key.

The IP bucket is checked before authentication (so guessing keys is slow too),
the key bucket after it. Responses carry the tighter of the two as
`X-RateLimit-Remaining` / `X-RateLimit-Reset`; a refusal is 429 with
`Retry-After`. Limits are per process and reloadable (SIGHUP).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from codeforge.http.asgi import client_ip, send_problem, with_headers
from codeforge.services.rate_limit import RateDecision, RateLimiter
from codeforge.settings import RateLimitSettings

_KEY_DECISION = "rate_limit_key_decision"


class RateLimits:
    def __init__(self, settings: RateLimitSettings) -> None:
        self.enabled = settings.enabled
        self.by_ip = RateLimiter(settings.per_ip_per_minute, settings.burst)
        self.by_key = RateLimiter(settings.per_key_per_minute, settings.burst)

    def reconfigure(self, settings: RateLimitSettings) -> None:
        self.enabled = settings.enabled
        self.by_ip.reconfigure(settings.per_ip_per_minute, settings.burst)
        self.by_key.reconfigure(settings.per_key_per_minute, settings.burst)

    def by_ip_middleware(self) -> Callable[[ASGIApp], ASGIApp]:
        def middleware(app: ASGIApp) -> ASGIApp:
            async def limit(scope: Scope, receive: Receive, send: Send) -> None:
                if not self.enabled or scope["type"] != "http":
                    await app(scope, receive, send)
                    return
                decision = self.by_ip.take(client_ip(scope))
                if not decision.allowed:
                    await _refuse(scope, send, decision, "this address")
                    return

                async def send_with_limits(message: Message) -> None:
                    tighter = _tighter(decision, scope["state"].get(_KEY_DECISION))
                    await send(with_headers(message, _headers(tighter)))

                await app(scope, receive, send_with_limits)

            return limit

        return middleware

    def by_key_middleware(self) -> Callable[[ASGIApp], ASGIApp]:
        def middleware(app: ASGIApp) -> ASGIApp:
            async def limit(scope: Scope, receive: Receive, send: Send) -> None:
                principal = scope.get("state", {}).get("principal")
                if not self.enabled or scope["type"] != "http" or principal is None:
                    await app(scope, receive, send)
                    return
                decision = self.by_key.take(str(principal.key_id))
                scope["state"][_KEY_DECISION] = decision
                if not decision.allowed:
                    await _refuse(scope, send, decision, "this API key")
                    return
                await app(scope, receive, send)

            return limit

        return middleware


def _tighter(a: RateDecision, b: RateDecision | None) -> RateDecision:
    return a if b is None or a.remaining <= b.remaining else b


def _headers(decision: RateDecision) -> dict[str, str]:
    return {
        "x-ratelimit-remaining": str(decision.remaining),
        "x-ratelimit-reset": str(math.ceil(decision.reset_after)),
    }


async def _refuse(scope: Scope, send: Send, decision: RateDecision, who: str) -> None:
    retry = max(1, math.ceil(decision.retry_after))
    await send_problem(
        scope,
        send,
        429,
        f"too many requests from {who}; retry in {retry}s",
        {**_headers(decision), "retry-after": str(retry)},
    )
