"""Every error on a page becomes a message on a page, here and only here.

Page handlers never catch (the policy editor's save aside, see `form_error`). What
they raise is mapped once:

- no session → the sign-in page (and back here after signing in); an expired or
  signed-out session, or a revoked key → the sign-in page, saying so;
- a form post that breaks a rule (400-422: a bad value, a stale version, a dirty
  git tree, a viewer's key) → back to the page the form was on, the message above
  the form, the field marked, what was typed filled in again (a form whose text is
  too big to carry across a redirect — a policy document — is answered with its
  page instead, through `form_error`: the same message, status and field);
- anything else (a page that does not exist, a dependency out of reach, a bug) →
  an error page with the status, the message and the request id. An unexpected error
  is logged with its traceback; the page shows only the request id to quote.

The statuses are the API's (`codeforge.http.errors.STATUS_OF`), so a page and the
API answer the same mistake alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from codeforge.domain.errors import DomainError, Forbidden, Unauthenticated
from codeforge.http.errors import STATUS_OF, TITLES
from codeforge.ports.errors import DependencyUnavailable
from codeforge.web.flash import Flash
from codeforge.web.forms import SECRET_FIELDS
from codeforge.web.pages import Pages, here, safe_path, with_query
from codeforge.web.session import SAFE_METHODS, SignInRequired

log = structlog.get_logger("codeforge.web")

Handler = Callable[[Request[Any, Any, Any], Exception], Response[Any]]
# Paths that are not pages: their errors stay problem+json (or plain) as they were.
NOT_PAGES = ("/api/", "/llm/", "/health", "/schema", "/static/")


def page_error_handler(renderer: Pages) -> Handler:
    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        unsafe = request.method not in SAFE_METHODS
        back = _back(request) if unsafe else here(request)
        if isinstance(exc, SignInRequired):
            return renderer.redirect(request, with_query("/sign-in", next=back))
        status, message, field = describe(exc)
        if isinstance(exc, Unauthenticated) and request.url.path != "/sign-in":
            return renderer.redirect(
                request, with_query("/sign-in", next=back), message=message, level="error"
            )
        if unsafe and 400 <= status < 500:
            values = request.state.get("form_values") or {}
            return renderer.redirect(
                request, back, message=message, level="error", field=field, values=values
            )
        if status >= 500 and not isinstance(exc, DependencyUnavailable | HTTPException):
            log.error("unhandled error on a page", path=request.url.path, exc_info=exc)
        elif status >= 500:
            log.warning("page failed", path=request.url.path, error=str(exc))
        return renderer.render(
            request,
            request.state.get("page_user"),
            "error.html",
            http_status=status,
            title=TITLES.get(status, "Error"),
            status_code=status,
            message=message,
            request_id=request.state.get("request_id"),
        )

    return handle


def describe(exc: Exception) -> tuple[int, str, str | None]:
    """(status, a message for a person, the form field it is about)."""
    if isinstance(exc, DomainError):
        status = next((s for t, s in STATUS_OF.items() if isinstance(exc, t)), 400)
        if isinstance(exc, Forbidden):
            status = 403
        return status, exc.message, exc.field
    if isinstance(exc, ValidationException):
        problems = exc.extra if isinstance(exc.extra, list) else []
        named = [
            f"{p.get('key')}: {p.get('message')}" if p.get("key") else str(p.get("message"))
            for p in problems
            if isinstance(p, dict)
        ]
        detail = "; ".join(named) or exc.detail
        return 400, f"the request was not understood: {detail}", None
    if isinstance(exc, HTTPException):
        if exc.status_code == 404:
            return 404, "there is no page here; check the address or use the menu", None
        if exc.status_code == 405:
            return 405, "this page cannot do that; use its buttons and forms", None
        return exc.status_code, exc.detail, None
    if isinstance(exc, DependencyUnavailable):
        return 503, f"{exc}; try again in a moment", None
    return 500, "something went wrong on our side; quote the request id if you report it", None


def form_error(exc: DomainError, values: Mapping[str, str]) -> tuple[int, Flash]:
    """For a form answered with its own page instead of a redirect (its text is too
    big for the cookie a redirect carries it in): the status and the message the
    redirect would have carried, with what was typed. Raises `exc` again when it is
    not the form's to show — a session that ended, a fault on our side — so the
    handler above maps it as always."""
    status, message, field = describe(exc)
    if isinstance(exc, Unauthenticated) or not 400 <= status < 500:
        raise exc
    typed = {k: v for k, v in values.items() if k not in SECRET_FIELDS}
    return status, Flash(level="error", message=message, field=field, values=typed)


def negotiated(api: Handler, page: Handler) -> Handler:
    """For app-level errors (a path no route matches): a page for a browser asking for
    a page, the API's problem+json for everyone else."""

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        wants_page = "text/html" in request.headers.get("accept", "")
        if wants_page and not request.url.path.startswith(NOT_PAGES):
            return page(request, exc)
        return api(request, exc)

    return handle


def _back(request: Request[Any, Any, Any]) -> str:
    """Where a form post returns to: its `back` field, else the page it came from."""
    sent = request.state.get("form_back")
    if sent:
        return safe_path(sent)
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc == request.url.netloc:
        return safe_path(referer.path + (f"?{referer.query}" if referer.query else ""))
    return "/"


__all__ = ["describe", "form_error", "negotiated", "page_error_handler"]
