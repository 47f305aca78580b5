"""The Jinja environment of the pages: templates from this package, autoescaped, strict.

Undefined names are errors (`StrictUndefined`), so a template that refers to
something its handler did not pass fails in the tests instead of rendering blanks.
The filters format what the domain holds — times, money, ids, sizes — the same way
on every page.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from codeforge.domain.events import EVENT_TYPES

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        when=when,
        usd=usd,
        short=short,
        size=size,
        seconds=seconds,
        millis=millis,
        pretty=pretty,
        plural=plural,
        options=options,
    )
    environment.globals["event_types"] = ",".join(sorted(EVENT_TYPES))
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))


def when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def usd(value: Decimal | float | int | None, places: int = 4) -> str:
    if value is None:
        return "—"
    amount = Decimal(value).quantize(Decimal(1).scaleb(-places))
    return f"${amount:,}"


def short(value: uuid.UUID | str | None) -> str:
    """The last 8 hex digits: UUIDv7 ids share their leading (time) digits."""
    if value is None:
        return "—"
    return str(value).replace("-", "")[-8:]


def size(value: int | None) -> str:
    if value is None:
        return "—"
    number = float(value)
    for unit in ("bytes", "KB", "MB", "GB"):
        if number < 1024 or unit == "GB":
            return f"{int(number)} {unit}" if unit == "bytes" else f"{number:.1f} {unit}"
        number /= 1024
    return f"{value} bytes"


def seconds(value: float | int | None) -> str:
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def millis(value: float | int | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f} ms"


def pretty(value: Any) -> str:
    """Any value as indented JSON (structs, decimals and ids included)."""
    return json.dumps(msgspec.to_builtins(value), indent=2, ensure_ascii=False, default=str)


def options(items: Iterable[Any], value: str = "id", text: str = "name") -> list[tuple[Any, Any]]:
    """(value, text) pairs for a select, from the items' attributes."""
    return [(getattr(item, value), getattr(item, text)) for item in items]


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else (many or word + 's')}"
