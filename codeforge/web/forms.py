"""Reading submitted forms: every field typed, every mistake a message naming the field.

Browsers send text; these readers turn it into what the services take and raise
`ValidationFailed(field=...)` with a sentence a person can act on — which the page
error mapper shows above the form, with the form filled in again.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, TypeVar

from litestar import Request
from litestar.datastructures import FormMultiDict

from codeforge.domain.errors import ValidationFailed

E = TypeVar("E", bound=StrEnum)

MAX_TEXT = 100_000
# Every form names the page it was on, so an error can take the user back there.
BACK_FIELD = "back"
# Never carried back into a form, whatever the form was.
SECRET_FIELDS = frozenset({"api_key", "csrf_token", "sign_in_token"})


def remember(request: Request[Any, Any, Any], data: FormMultiDict) -> None:
    """Keep what the error mapper needs should the post fail: where it came from and
    what was typed (minus secrets)."""
    back = data.get(BACK_FIELD)
    request.state.form_back = back if isinstance(back, str) else None
    request.state.form_values = {
        k: v for k, v in data.items() if isinstance(v, str) and k not in SECRET_FIELDS
    }


class Form:
    """A submitted form (or a GET form's query string)."""

    def __init__(self, data: FormMultiDict | Mapping[str, Any]) -> None:
        self._data = data

    def raw(self, name: str) -> str:
        value = self._data.get(name)
        return value if isinstance(value, str) else ""

    def text(self, name: str, *, label: str | None = None, max_length: int = MAX_TEXT) -> str:
        """A required text field, stripped."""
        value = self.raw(name).strip()
        if not value:
            raise ValidationFailed(f"{label or _label(name)} is required", field=name)
        return self._capped(name, value, label, max_length)

    def optional_text(
        self, name: str, *, label: str | None = None, max_length: int = MAX_TEXT
    ) -> str:
        return self._capped(name, self.raw(name).strip(), label, max_length)

    def lines(self, name: str, *, label: str | None = None) -> list[str]:
        """One entry per non-empty line."""
        text = self.optional_text(name, label=label)
        return [line.strip() for line in text.splitlines() if line.strip()]

    def integer(
        self,
        name: str,
        *,
        label: str | None = None,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        """A whole number, or None when left empty."""
        value = self.raw(name).strip()
        if not value:
            return None
        try:
            number = int(value)
        except ValueError:
            raise ValidationFailed(
                f"{label or _label(name)} must be a whole number (got {value[:40]!r})", field=name
            ) from None
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            bounds = _bounds(minimum, maximum)
            raise ValidationFailed(f"{label or _label(name)} must be {bounds}", field=name)
        return number

    def version(self) -> int:
        """The version of the thing the form was shown with (optimistic locking)."""
        version = self.integer("version", minimum=1)
        if version is None:
            raise ValidationFailed(
                "this form lost the version it was shown with; reload the page", field="version"
            )
        return version

    def decimal(self, name: str, *, label: str | None = None) -> Decimal | None:
        """A non-negative amount (dollars), or None when left empty."""
        value = self.raw(name).strip().removeprefix("$")
        if not value:
            return None
        try:
            amount = Decimal(value)
        except InvalidOperation:
            amount = Decimal("NaN")
        if not amount.is_finite() or amount < 0:
            raise ValidationFailed(
                f"{label or _label(name)} must be an amount of 0 or more, like 0.50 "
                f"(got {value[:40]!r})",
                field=name,
            )
        return amount

    def checkbox(self, name: str) -> bool:
        return self.raw(name) in ("on", "true", "1", "yes")

    def choice(self, name: str, kind: type[E], *, label: str | None = None) -> E:
        value = self.raw(name).strip()
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(m.value for m in kind)
            raise ValidationFailed(
                f"{label or _label(name)} must be one of: {allowed}", field=name
            ) from None

    def optional_choice(self, name: str, kind: type[E], *, label: str | None = None) -> E | None:
        return self.choice(name, kind, label=label) if self.raw(name).strip() else None

    def uuid(self, name: str, *, label: str | None = None) -> uuid.UUID:
        value = self.raw(name).strip()
        if not value:
            raise ValidationFailed(f"choose a {label or _label(name)}", field=name)
        try:
            return uuid.UUID(value)
        except ValueError:
            raise ValidationFailed(
                f"{label or _label(name)} is not one this page offered", field=name
            ) from None

    def values(self) -> dict[str, Any]:
        return dict(self._data.items())

    def strings(self) -> dict[str, str]:
        """What was typed, to fill the form in again: text fields, secrets left out."""
        return {
            k: v for k, v in self._data.items() if isinstance(v, str) and k not in SECRET_FIELDS
        }

    def _capped(self, name: str, value: str, label: str | None, max_length: int) -> str:
        if len(value) > max_length:
            raise ValidationFailed(
                f"{label or _label(name)} is too long ({len(value):,} characters; "
                f"at most {max_length:,})",
                field=name,
            )
        return value


def _label(name: str) -> str:
    return name.replace("_", " ")


def _bounds(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"between {minimum:,} and {maximum:,}"
    if minimum is not None:
        return f"{minimum:,} or more"
    return f"{maximum:,} or less"
