"""API keys (admins only): create one — its secret shown once, on this page — and revoke."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from codeforge.domain.keys import Role
from codeforge.services.api_keys import ApiKeys
from codeforge.web import views
from codeforge.web.forms import Form
from codeforge.web.pages import Pages
from codeforge.web.session import PageUser


class KeyPages(Controller):
    path = "/keys"

    @get("/")
    async def list_keys(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        keys: NamedDependency[ApiKeys],
        cursor: FromQuery[uuid.UUID | None] = None,
    ) -> Template:
        page = await keys.list(user.principal, limit=views.PAGE, after=cursor)
        return pages.render(request, user, "keys.html", page=page, roles=list(Role), created=None)

    @post("/")
    async def create(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        keys: NamedDependency[ApiKeys],
    ) -> Template:
        user.principal.require_admin()
        issued = await keys.create(
            name=form.text("name", max_length=100),
            role=form.choice("role", Role),
            tenant_id=user.principal.tenant_id,
        )
        page = await keys.list(user.principal, limit=views.PAGE, after=None)
        # Rendered, not redirected: the secret must not travel in a URL or a cookie.
        return pages.render(
            request, user, "keys.html", http_status=201, page=page, roles=list(Role), created=issued
        )

    @post("/{key_id:uuid}/revoke")
    async def revoke(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        keys: NamedDependency[ApiKeys],
        key_id: FromPath[uuid.UUID],
    ) -> Redirect:
        revoked = await keys.revoke(user.principal, key_id)
        note = (
            " That was the key you signed in with: sign in again."
            if (key_id == user.principal.key_id)
            else ""
        )
        return pages.redirect(
            request, "/keys", message=f"Key {revoked.name} revoked: it stops working now.{note}"
        )
