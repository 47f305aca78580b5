"""Approval notices as a webhook: one JSON POST per ask, signed when a secret is set.

The body is the `ApprovalNotice` as JSON. With a signing secret, the request carries
`X-CodeForge-Signature: sha256=<hex HMAC of the body>` so the receiver can tell it came
from this install. A timeout, a connection error or a non-2xx answer is a `PortError`
(the caller logs it; the run keeps waiting for an answer through the API).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import aiohttp
import msgspec

from codeforge.ports.errors import PortError
from codeforge.ports.notifier import ApprovalNotice


class WebhookNotifier:
    def __init__(
        self, url: str, *, secret: Callable[[], str | None] = lambda: None, timeout: float = 5.0
    ) -> None:
        self._url = url
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def notify(self, notice: ApprovalNotice) -> None:
        body = msgspec.json.encode(notice)
        headers = {"Content-Type": "application/json", "User-Agent": "CodeForge"}
        key = self._secret()
        if key:
            digest = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
            headers["X-CodeForge-Signature"] = f"sha256={digest}"
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as http,
                http.post(self._url, data=body, headers=headers, allow_redirects=False) as answer,
            ):
                if answer.status >= 300:
                    raise PortError(f"the approval webhook answered {answer.status}")
        except (aiohttp.ClientError, TimeoutError) as e:
            raise PortError(f"the approval webhook could not be reached: {e!r}") from e


class NoNotifier:
    """No webhook configured: approvers watch the run (SSE, the pages) instead."""

    async def notify(self, notice: ApprovalNotice) -> None:
        return None
