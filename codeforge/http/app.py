"""The Litestar application factory."""

from __future__ import annotations

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from codeforge import __version__
from codeforge.http.api.router import api_router
from codeforge.http.errors import EXCEPTION_HANDLERS
from codeforge.http.health import HealthController
from codeforge.http.llm_proxy import llm_proxy_router
from codeforge.http.request_context import request_context_middleware
from codeforge.runtime import Runtime
from codeforge.services.sessions import COOKIE_NAME
from codeforge.web import app_exception_handlers, page_renderer, template_config, web_routers


def create_app(runtime: Runtime) -> Litestar:
    """Build the ASGI app around a runtime; starting the runtime is the caller's job."""
    settings = runtime.settings
    pages = page_renderer(runtime)
    app = Litestar(
        route_handlers=[
            HealthController,
            api_router(runtime),
            llm_proxy_router(runtime),
            # The admin pages (codeforge/web): at /, assets at /static.
            *web_routers(runtime, pages),
        ],
        # Container providers reach handlers through Litestar's own DI.
        dependencies={"readiness": Provide(lambda: runtime.readiness, sync_to_thread=False)},
        # A browser asking for a page that does not exist gets a page, not problem+json.
        exception_handlers=app_exception_handlers(pages, EXCEPTION_HANDLERS),
        template_config=template_config(),
        request_max_body_size=settings.http.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="CodeForge API",
            version=__version__,
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(type="http", scheme="bearer"),
                    "session": SecurityScheme(
                        type="apiKey", security_scheme_in="cookie", name=COOKIE_NAME
                    ),
                }
            ),
            security=[{"apiKey": []}, {"session": []}],
        ),
        # Logging is configured once by codeforge.log; Litestar must not add its own.
        logging_config=None,
        debug=False,
    )
    # Route middleware does not see requests that match no route (404/405), yet
    # those need a request id too; so the context wraps the whole handler chain,
    # outside Litestar's exception handling.
    app.asgi_handler = request_context_middleware(app.asgi_handler)
    return app
