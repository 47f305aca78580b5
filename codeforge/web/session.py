"""Who is looking at a page: the browser session behind its cookies.

Signing in on the page opens the same session the API's `POST /api/v1/sessions`
opens (`codeforge.services.sessions`): a signed, HttpOnly, SameSite=Strict cookie the
API accepts too — so the pages' scripts can read `/api` streams with it. The page also
keeps the session's CSRF token in a second HttpOnly cookie, `codeforge_csrf`, so every
page can put it into its forms (and a `<meta>` for the script's API calls). A form
post sends it back as `csrf_token`, checked against the hash the session stored: a
token planted in a cookie by anyone else matches no session.

The sign-in form has no session yet; it carries its own random token, double-submitted
(a cookie and a field that must be equal), so another site cannot sign a browser in
with the attacker's key.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from typing import Any

from litestar import Request
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from msgspec import Struct

from codeforge.domain.errors import Forbidden
from codeforge.domain.keys import Principal
from codeforge.services.sessions import COOKIE_NAME, BrowserSessions, OpenedSession
from codeforge.web.forms import remember

CSRF_COOKIE = "codeforge_csrf"
SIGN_IN_COOKIE = "codeforge_sign_in"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
STALE_FORM = (
    "this form is out of date (or did not come from this CodeForge page); "
    "reload the page and try again"
)


class SignInRequired(Exception):
    """No session cookie: the page needs a signed-in browser."""


class PageUser(Struct, frozen=True, kw_only=True):
    principal: Principal
    csrf_token: str

    @property
    def role(self) -> str:
        return self.principal.role.value

    @property
    def can_mutate(self) -> bool:
        return self.principal.role.can_mutate

    @property
    def is_admin(self) -> bool:
        return self.principal.role.can_administer


async def page_user(
    request: Request[Any, Any, Any], sessions: NamedDependency[BrowserSessions]
) -> PageUser:
    """The signed-in user; for a form post, only after its CSRF token checked out.

    Raises SignInRequired without a session, Unauthenticated for an expired or signed
    out one, Forbidden for a form post without the session's token.
    """
    cookie = request.cookies.get(COOKIE_NAME)
    token = request.cookies.get(CSRF_COOKIE)
    if not cookie or not token:
        # A session opened through the API alone has no token the page can use.
        raise SignInRequired()
    principal, session = await sessions.resolve(cookie)
    try:
        sessions.check_csrf(session, token)
    except Forbidden:
        # The token kept is another session's (this browser signed in again elsewhere,
        # e.g. through the API): the forms could never be sent. Sign in again.
        raise SignInRequired() from None
    if request.method not in SAFE_METHODS:
        form = await request.form()
        remember(request, form)
        sent = form.get(CSRF_FIELD)
        try:
            sessions.check_csrf(session, sent if isinstance(sent, str) else None)
        except Forbidden:
            raise Forbidden(STALE_FORM) from None
    user = PageUser(principal=principal, csrf_token=token)
    # For the error page, which is rendered outside the handler's dependencies.
    request.state.page_user = user
    return user


def session_cookies(opened: OpenedSession, *, secure: bool) -> list[Cookie]:
    # Litestar's `expires` counts seconds from now; the session row decides anyway.
    lifetime = max(0, int((opened.expires_at - datetime.now(UTC)).total_seconds()))
    return [
        _cookie(COOKIE_NAME, opened.cookie, secure=secure, max_age=lifetime),
        _cookie(CSRF_COOKIE, opened.csrf_token, secure=secure, max_age=lifetime),
        _expired(SIGN_IN_COOKIE),
    ]


def cleared_session_cookies() -> list[Cookie]:
    return [_expired(COOKIE_NAME), _expired(CSRF_COOKIE)]


def sign_in_token(request: Request[Any, Any, Any]) -> tuple[str, Cookie | None]:
    """The sign-in form's token, and the cookie to set when the browser has none yet."""
    current = request.cookies.get(SIGN_IN_COOKIE)
    if current:
        return current, None
    token = secrets.token_urlsafe(24)
    secure = request.url.scheme == "https"
    return token, _cookie(SIGN_IN_COOKIE, token, secure=secure, max_age=3600)


def check_sign_in_token(request: Request[Any, Any, Any], sent: str) -> None:
    expected = request.cookies.get(SIGN_IN_COOKIE) or ""
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise Forbidden(STALE_FORM)


def _cookie(key: str, value: str, *, secure: bool, max_age: int) -> Cookie:
    return Cookie(
        key=key,
        value=value,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure,
        max_age=max_age,
    )


def _expired(key: str) -> Cookie:
    return Cookie(key=key, value="", path="/", max_age=0, httponly=True, samesite="strict")
