"""Signing in with an API key (a browser session) and out again."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from codeforge.domain.errors import Unauthenticated
from codeforge.services.sessions import COOKIE_NAME, BrowserSessions
from codeforge.web.forms import Form, remember
from codeforge.web.pages import Pages, safe_path, with_query
from codeforge.web.session import (
    PageUser,
    check_sign_in_token,
    cleared_session_cookies,
    session_cookies,
    sign_in_token,
)


class SignInPages(Controller):
    @get("/sign-in")
    async def form(
        self,
        request: Request[Any, Any, Any],
        pages: NamedDependency[Pages],
        next: FromQuery[str] = "/",
    ) -> Template:
        token, cookie = sign_in_token(request)
        return pages.render(
            request,
            None,
            "sign_in.html",
            next=safe_path(next),
            sign_in_token=token,
            cookies=[cookie] if cookie else [],
        )

    @post("/sign-in")
    async def sign_in(
        self,
        request: Request[Any, Any, Any],
        pages: NamedDependency[Pages],
        sessions: NamedDependency[BrowserSessions],
    ) -> Redirect:
        data = await request.form()
        remember(request, data)
        form = Form(data)
        target = safe_path(form.raw("next"))
        # An error brings the user back to this form, still headed for the same page.
        request.state.form_back = with_query("/sign-in", next=target)
        check_sign_in_token(request, form.raw("sign_in_token"))
        key = form.raw("api_key").strip()
        if not key:
            raise Unauthenticated("paste an API key to sign in")
        opened = await sessions.open(key)
        cookies = session_cookies(opened, secure=request.url.scheme == "https")
        return pages.redirect(
            request, target, message=f"Signed in ({opened.principal.role.value}).", cookies=cookies
        )

    @post("/sign-out")
    async def sign_out(
        self,
        request: Request[Any, Any, Any],
        pages: NamedDependency[Pages],
        sessions: NamedDependency[BrowserSessions],
        user: NamedDependency[PageUser],
    ) -> Redirect:
        await sessions.close(request.cookies.get(COOKIE_NAME, ""))
        return pages.redirect(
            request, "/sign-in", message="Signed out.", cookies=cleared_session_cookies()
        )
