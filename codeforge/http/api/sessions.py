"""/api/v1/sessions — sign a browser in with an API key, and out again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import JSONBody

from codeforge.http.api.routes import delete, post
from codeforge.http.api.schemas import SessionCreate, SessionView
from codeforge.services.sessions import COOKIE_NAME, BrowserSessions


class SessionController(Controller):
    path = "/sessions"
    tags = ["sessions"]

    @post(
        "/",
        summary="Exchange an API key for a session cookie and a CSRF token",
        description=(
            "Sets an HttpOnly, SameSite=Strict cookie. Requests made with the cookie must "
            "send the returned token as `X-CSRF-Token` on POST, PUT, PATCH and DELETE."
        ),
    )
    async def sign_in(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[SessionCreate],
        sessions: NamedDependency[BrowserSessions],
    ) -> Response[SessionView]:
        opened = await sessions.open(data.api_key)
        view = SessionView(
            tenant_id=opened.principal.tenant_id,
            role=opened.principal.role,
            expires_at=opened.expires_at,
            csrf_token=opened.csrf_token,
        )
        cookie = Cookie(
            key=COOKIE_NAME,
            value=opened.cookie,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            # Seconds from now (Litestar's `expires` is relative, not a timestamp).
            max_age=max(0, int((opened.expires_at - datetime.now(UTC)).total_seconds())),
        )
        return Response(view, status_code=201, cookies=[cookie])

    @delete(
        "/",
        status_code=204,
        summary="Sign out: the session ends now and the cookie is cleared",
        response_cookies=[
            Cookie(key=COOKIE_NAME, value="", path="/", max_age=0, httponly=True),
        ],
    )
    async def sign_out(
        self, request: Request[Any, Any, Any], sessions: NamedDependency[BrowserSessions]
    ) -> None:
        value = request.cookies.get(COOKIE_NAME)
        if value:
            await sessions.close(value)
