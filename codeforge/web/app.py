"""The admin pages as one Litestar router: controllers, their services, their errors.

Services reach page handlers the way they reach the API's: Litestar `Provide`
bridged from `Runtime.services` (never an HTTP call to ourselves). Every page
answers with a strict Content-Security-Policy (scripts and styles from /static only,
no inline code), and never from a cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request, Router
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from codeforge.http.asgi import with_headers
from codeforge.http.errors import EXCEPTION_HANDLERS
from codeforge.runtime import Runtime
from codeforge.services.sessions import signing_key_from
from codeforge.web.dashboard import DashboardPage
from codeforge.web.errors import Handler, negotiated, page_error_handler
from codeforge.web.flash import Flashes
from codeforge.web.forms import Form
from codeforge.web.inspector import InspectorPages
from codeforge.web.keys import KeyPages
from codeforge.web.models import ModelPages
from codeforge.web.pages import Pages
from codeforge.web.policies import PolicyPages
from codeforge.web.projects import ProjectPages
from codeforge.web.runs import RunPages
from codeforge.web.session import PageUser, SignInRequired, page_user
from codeforge.web.sign_in import SignInPages
from codeforge.web.tasks import TaskPages
from codeforge.web.templating import STATIC

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}

# Services by the name page handlers take them under.
SERVICES = {
    "projects": "projects",
    "tasks": "tasks",
    "agents": "agents",
    "models": "models",
    "model_health": "model_health",
    "runs": "runs",
    "costs": "costs",
    "artifacts": "artifacts",
    "approvals": "approvals",
    "history": "run_history",
    "keys": "api_keys",
    "sessions": "sessions",
    "diffs": "checkpoint_diffs",
    "policies": "policies",
}


def web_routers(runtime: Runtime, pages: Pages) -> list[Router]:
    """The pages (at /) and their static assets (at /static)."""
    on_error = page_error_handler(pages)

    def service(name: str) -> Provide:
        def provide() -> Any:
            return getattr(runtime.services, name)

        return Provide(provide, sync_to_thread=False)

    async def provide_form(
        request: Request[Any, Any, Any], user: NamedDependency[PageUser]
    ) -> Form:
        # `user` first: the CSRF token is checked before any field is read.
        return Form(await request.form())

    router = Router(
        path="/",
        route_handlers=[
            SignInPages,
            DashboardPage,
            ProjectPages,
            TaskPages,
            RunPages,
            InspectorPages,
            ModelPages,
            PolicyPages,
            KeyPages,
        ],
        dependencies={
            "pages": Provide(lambda: pages, sync_to_thread=False),
            "user": Provide(page_user),
            "form": Provide(provide_form),
            "readiness": Provide(lambda: runtime.readiness, sync_to_thread=False),
            **{param: service(name) for param, name in SERVICES.items()},
        },
        # Every key the app maps for the API is mapped again here, or the API's
        # handler (problem+json) would win for pages by exception type.
        exception_handlers={
            exc: on_error for exc in (*EXCEPTION_HANDLERS, SignInRequired, Exception)
        },
        middleware=[_security_headers],
        include_in_schema=False,
    )
    static = create_static_files_router(
        path="/static", directories=[STATIC], include_in_schema=False, name="static"
    )
    return [router, static]


def page_renderer(runtime: Runtime) -> Pages:
    return Pages(Flashes(_signing_key(runtime)))


def app_exception_handlers(pages: Pages, api: dict[type[Exception], Any]) -> dict[Any, Any]:
    """The app's handlers, where a path no route matches (404, 405) answers a browser
    that asked for a page with a page, and everyone else as before."""
    on_error = page_error_handler(pages)
    handler: Handler = api[HTTPException]
    return {**api, HTTPException: negotiated(handler, on_error)}


def _signing_key(runtime: Runtime) -> Callable[[], bytes]:
    # The secret exists only once the runtime has started (sessions create it).
    current: list[Callable[[], bytes]] = []

    def key() -> bytes:
        if not current:
            current.append(signing_key_from(runtime.services.secrets))
        return current[0]()

    return key


def _security_headers(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            await send(with_headers(message, SECURITY_HEADERS))

        await app(scope, receive, send_with_headers)

    return middleware
