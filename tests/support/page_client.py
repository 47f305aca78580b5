"""A cookie-keeping HTTP client that uses the admin pages the way a browser's forms do.

For the page tests that need no browser (each form, each error, each refusal): it
signs in through the sign-in form, reads the CSRF token out of the page it posts
from, posts urlencoded forms, and follows the redirect to the page that shows the
outcome. The browser suite (`tests/e2e/test_pages.py`) drives the same pages in
Chromium.
"""

from __future__ import annotations

import html
import re

import httpx

from tests.support.app_client import AppClient

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_SIGN_IN_TOKEN = re.compile(r'name="sign_in_token" value="([^"]+)"')
_FLASH = re.compile(
    r'<div class="flash flash-(\w+)"[^>]*>\s*<strong>[^<]*</strong>\s*(.*?)\s*</div>', re.S
)


class PageClient:
    def __init__(self, client: AppClient) -> None:
        self.client = client

    async def sign_in(self, key: str, next: str = "/") -> httpx.Response:
        form = await self.client.get("/sign-in", params={"next": next})
        assert form.status_code == 200, form.text
        token = _SIGN_IN_TOKEN.search(form.text)
        assert token is not None
        return await self.client.post(
            "/sign-in",
            data={"api_key": key, "sign_in_token": token.group(1), "next": next},
            follow_redirects=True,
        )

    async def page(self, path: str, status: int = 200) -> str:
        response = await self.client.get(path, headers={"accept": "text/html"})
        assert response.status_code == status, (path, response.status_code, response.text[-2000:])
        return response.text

    async def submit(
        self, on: str, action: str, fields: dict[str, str], *, token: str | None = None
    ) -> httpx.Response:
        """Post a form found on page `on` to `action`, as its submit button would, and
        follow the redirect (the page that says what happened)."""
        if token is None:
            found = _TOKEN.search(await self.page(on))
            assert found is not None, f"no form with a CSRF token on {on}"
            token = found.group(1)
        return await self.client.post(
            action,
            data={"csrf_token": token, "back": on, **fields},
            headers={"accept": "text/html"},
            follow_redirects=True,
        )


def flash_of(page: str) -> tuple[str, str] | None:
    """(level, message) of the message at the top of a page, if any."""
    found = _FLASH.search(page)
    return (found.group(1), html.unescape(found.group(2))) if found else None


def text_of(page: str) -> str:
    """The page's text, tags removed and entities decoded (for assertions on wording)."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))
