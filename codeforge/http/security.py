"""Who is calling the API, and may they do this?

Every /api route needs a bearer API key or a session cookie; a cookie request
with an unsafe method must also carry its CSRF token (cookies are sent by the
browser on its own, so the token proves the page, not just the browser).
Viewer keys cannot mutate. Signing in (POST /api/v1/sessions) is the one open
route: it takes the key in its body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog
from litestar.types import ASGIApp, Receive, Scope, Send

from codeforge.domain.errors import DomainError, Forbidden, Unauthenticated
from codeforge.domain.keys import Principal
from codeforge.http.asgi import cookie, header, send_problem
from codeforge.http.errors import STATUS_OF
from codeforge.services.api_keys import ApiKeys
from codeforge.services.sessions import COOKIE_NAME, CSRF_HEADER, BrowserSessions

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_ROUTES = frozenset({("POST", "/api/v1/sessions")})
# Signing out must work for every role.
ANY_ROLE_ROUTES = frozenset({("DELETE", "/api/v1/sessions")})


@dataclass(frozen=True)
class Authentication:
    keys: ApiKeys
    sessions: BrowserSessions

    async def principal(self, scope: Scope) -> Principal:
        method = scope.get("method", "GET")
        authorization = header(scope, "authorization")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("send the API key as 'Authorization: Bearer <key>'")
            return await self.keys.authenticate(token.strip())
        session_cookie = cookie(scope, COOKIE_NAME)
        if session_cookie:
            principal, session = await self.sessions.resolve(session_cookie)
            if method not in SAFE_METHODS:
                self.sessions.check_csrf(session, header(scope, CSRF_HEADER))
            return principal
        raise Unauthenticated(
            "this API needs an API key: 'Authorization: Bearer <key>' "
            "(or a session cookie from POST /api/v1/sessions)"
        )


def authentication_middleware(
    authentication: Callable[[], Authentication],
) -> Callable[[ASGIApp], ASGIApp]:
    """A Litestar middleware factory; `authentication` is looked up per request
    because the services behind it exist only once the runtime has started."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def authenticate(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in ("http", "websocket"):
                await app(scope, receive, send)
                return
            route = (scope.get("method", "GET"), scope["path"].rstrip("/"))
            if route in OPEN_ROUTES:
                await app(scope, receive, send)
                return
            try:
                principal = await authentication().principal(scope)
                if route[0] not in SAFE_METHODS and route not in ANY_ROLE_ROUTES:
                    principal.require_mutation()
            except DomainError as e:
                status = STATUS_OF.get(type(e), 403 if isinstance(e, Forbidden) else 401)
                if scope["type"] == "websocket":
                    # WebSocket close codes 4000-4999 are the application's: 4401, 4403.
                    await send({"type": "websocket.close", "code": 4000 + status})
                    return
                extra = {"www-authenticate": "Bearer"} if status == 401 else None
                await send_problem(scope, send, status, e.message, extra)
                return
            scope["state"]["principal"] = principal
            with structlog.contextvars.bound_contextvars(
                tenant_id=str(principal.tenant_id), key_id=str(principal.key_id)
            ):
                await app(scope, receive, send)

        return authenticate

    return middleware
