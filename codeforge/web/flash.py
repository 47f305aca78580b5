"""One-shot messages carried across a redirect: "Project created", or what was wrong.

A form post answers with a redirect (so reloading never posts twice); what it has to
say travels in a short-lived cookie, signed so that only this server's words are
shown as its own. An error names the field and brings back what was typed, so the
form can be filled in again (`codeforge.web.forms.remember` leaves secrets out).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from typing import Any, Literal

import msgspec
from litestar import Request
from litestar.datastructures import Cookie
from msgspec import Struct

FLASH_COOKIE = "codeforge_flash"
# In UTF-8 bytes.
MAX_MESSAGE = 600
MAX_VALUES = 1800


class Flash(Struct, frozen=True, kw_only=True):
    level: Literal["info", "error"] = "info"
    message: str
    # The form field the message is about, when it is about one.
    field: str | None = None
    # What the user had typed, to fill the form in again.
    values: dict[str, str] = {}


class Flashes:
    def __init__(self, signing_key: Callable[[], bytes]) -> None:
        # Read on every use: a rotated key applies after SIGHUP.
        self._key = signing_key

    def cookie(self, flash: Flash, *, secure: bool) -> Cookie:
        payload = base64.urlsafe_b64encode(msgspec.json.encode(_bounded(flash))).rstrip(b"=")
        value = f"{payload.decode()}.{self._sign(payload)}"
        return Cookie(
            key=FLASH_COOKIE,
            value=value,
            path="/",
            max_age=120,
            httponly=True,
            samesite="strict",
            secure=secure,
        )

    def read(self, request: Request[Any, Any, Any]) -> Flash | None:
        raw = request.cookies.get(FLASH_COOKIE)
        if not raw:
            return None
        payload, _, signature = raw.partition(".")
        if not hmac.compare_digest(self._sign(payload.encode()), signature):
            return None
        try:
            data = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            return msgspec.json.decode(data, type=Flash)
        except (ValueError, msgspec.DecodeError):
            return None

    @staticmethod
    def cleared() -> Cookie:
        return Cookie(key=FLASH_COOKIE, value="", path="/", max_age=0, httponly=True)

    def _sign(self, payload: bytes) -> str:
        mac = hmac.new(self._key(), b"flash:" + payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _bounded(flash: Flash) -> Flash:
    # A cookie holds about 4 KB (base64 adds a third): keep the message, and the values
    # while they fit, counted in UTF-8 bytes.
    values: dict[str, str] = {}
    room = MAX_VALUES
    for key, value in flash.values.items():
        size = len(key.encode()) + len(value.encode())
        if size > room:
            continue
        values[key] = value
        room -= size
    message = flash.message.encode()[:MAX_MESSAGE].decode("utf-8", "ignore")
    return Flash(level=flash.level, message=message, field=flash.field, values=values)
