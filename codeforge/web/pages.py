"""Rendering a page and answering a form: what every page handler shares.

`render` fills in what every template uses (the user, the flash message, the form
values to fill in again, where "back" is); `redirect` answers a form post with a
303 and an optional flash, so reloading the page that follows never posts twice.
A form whose text cannot travel in a cookie (a policy document) is answered with its
page instead, the message given to `render`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlencode

from litestar import Request
from litestar.datastructures import Cookie
from litestar.response import Redirect, Template

from codeforge.web.flash import Flash, Flashes
from codeforge.web.forms import BACK_FIELD
from codeforge.web.session import PageUser

__all__ = ["BACK_FIELD", "Pages", "here", "safe_path", "with_query"]


class Pages:
    def __init__(self, flashes: Flashes) -> None:
        self._flashes = flashes

    def render(
        self,
        request: Request[Any, Any, Any],
        user: PageUser | None,
        template: str,
        *,
        http_status: int = 200,
        cookies: Sequence[Cookie] = (),
        flash: Flash | None = None,
        **context: Any,
    ) -> Template:
        """`flash`: what to say at the top, given here instead of carried by a cookie
        (a form answered with its page rather than a redirect)."""
        carried = self._flashes.read(request)
        cleared = [Flashes.cleared()] if carried is not None else []
        flash = flash or carried
        return Template(
            template_name=template,
            status_code=http_status,
            cookies=[*cookies, *cleared],
            context={
                "user": user,
                "flash": flash,
                # What the user typed before an error, to fill the form in again.
                "filled": flash.values if flash is not None and flash.level == "error" else {},
                "error_field": flash.field if flash is not None else None,
                "here": here(request),
                "section": template.split("/", 1)[0].removesuffix(".html"),
                **context,
            },
            headers={"cache-control": "no-store"},
        )

    def redirect(
        self,
        request: Request[Any, Any, Any],
        to: str,
        *,
        message: str | None = None,
        level: Literal["info", "error"] = "info",
        field: str | None = None,
        values: dict[str, str] | None = None,
        cookies: Sequence[Cookie] = (),
    ) -> Redirect:
        jar = list(cookies)
        if message:
            flash = Flash(level=level, message=message, field=field, values=values or {})
            jar.append(self._flashes.cookie(flash, secure=request.url.scheme == "https"))
        return Redirect(path=safe_path(to), status_code=303, cookies=jar)


def here(request: Request[Any, Any, Any]) -> str:
    """This page's path and query, for a form's `back` field."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def safe_path(target: str | None, default: str = "/") -> str:
    """A path on this site (never another site: no scheme, no `//host`, no backslash)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 32 for c in target)
    ):
        return default
    return target


def with_query(path: str, **params: object) -> str:
    given = {k: str(v) for k, v in params.items() if v is not None}
    return f"{path}?{urlencode(given)}" if given else path
