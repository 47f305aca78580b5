"""Server-rendered admin pages: page controllers, Jinja templates, static assets.

`web_routers(runtime)` gives the pages (at /) and their assets (at /static);
`template_config()` the Jinja environment; `app_exception_handlers(...)` makes a path
that no route matches answer a browser with a page. See docs/pages.md.
"""

from __future__ import annotations

from codeforge.web.app import app_exception_handlers, page_renderer, web_routers
from codeforge.web.templating import template_config

__all__ = ["app_exception_handlers", "page_renderer", "template_config", "web_routers"]
