"""The pages' small parts: form fields read with messages, flashes that cannot be forged,
redirect targets that stay on the site."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.datastructures import FormMultiDict

from codeforge.domain.errors import ValidationFailed
from codeforge.domain.runs import DeliverMode
from codeforge.web.flash import Flash, Flashes
from codeforge.web.forms import Form
from codeforge.web.pages import safe_path


def form(**fields: str) -> Form:
    return Form(FormMultiDict(fields))


def refused(read: Any) -> str:
    with pytest.raises(ValidationFailed) as caught:
        read()
    return f"{caught.value.field}: {caught.value.message}"


def test_fields_are_typed_and_every_mistake_names_its_field() -> None:
    f = form(
        steps="12", cost="$0.50", blank="  ", word="x" * 20, gates=" a \n\n b ", on="on", mode="pr"
    )
    assert f.integer("steps", minimum=1) == 12
    assert f.integer("blank") is None
    assert f.decimal("cost") == Decimal("0.50")
    assert f.decimal("missing") is None
    assert f.lines("gates") == ["a", "b"]
    assert f.checkbox("on")
    assert not f.checkbox("missing")
    assert f.choice("mode", DeliverMode) is DeliverMode.PR
    assert f.optional_choice("blank", DeliverMode) is None

    assert refused(lambda: f.text("blank")) == "blank: blank is required"
    assert refused(lambda: f.integer("word", label="max steps")) == (
        "word: max steps must be a whole number (got 'xxxxxxxxxxxxxxxxxxxx')"
    )
    assert refused(lambda: f.integer("steps", maximum=10)) == "steps: steps must be 10 or less"
    assert refused(lambda: form(c="-1").decimal("c")) == (
        "c: c must be an amount of 0 or more, like 0.50 (got '-1')"
    )
    assert refused(lambda: form(c="NaN").decimal("c")).startswith("c: c must be an amount")
    assert refused(lambda: f.choice("word", DeliverMode)) == (
        "word: word must be one of: patch, commit-local, branch, pr"
    )
    assert refused(lambda: f.text("word", max_length=5)) == (
        "word: word is too long (20 characters; at most 5)"
    )
    assert refused(lambda: f.uuid("word", label="agent")) == (
        "word: agent is not one this page offered"
    )
    assert (
        refused(f.version)
        == "version: this form lost the version it was shown with; reload the page"
    )


class Cookies:
    def __init__(self, **cookies: str) -> None:
        self.cookies = cookies


def test_a_flash_reads_back_only_with_its_signature() -> None:
    key = b"k" * 32
    flashes = Flashes(lambda: key)
    flash = Flash(level="error", message="bad source", field="source", values={"name": "app"})
    cookie = flashes.cookie(flash, secure=False)
    assert cookie.httponly
    assert cookie.samesite == "strict"
    assert cookie.max_age == 120
    assert flashes.read(Cookies(codeforge_flash=cookie.value)) == flash  # type: ignore[arg-type]
    payload, _, signature = str(cookie.value).partition(".")
    assert flashes.read(Cookies(codeforge_flash=f"{payload}x.{signature}")) is None  # type: ignore[arg-type]
    other = Flashes(lambda: b"another key")
    assert other.read(Cookies(codeforge_flash=cookie.value)) is None  # type: ignore[arg-type]
    assert flashes.read(Cookies(codeforge_flash="garbage")) is None  # type: ignore[arg-type]


def test_a_flash_fits_in_a_cookie_whatever_was_typed() -> None:
    flashes = Flashes(lambda: b"k")
    typed = {f"field{i}": "漢字" * 500 for i in range(10)}
    cookie = flashes.cookie(Flash(message="é" * 5000, values=typed), secure=True)
    assert len(str(cookie.value)) < 3900
    back = flashes.read(Cookies(codeforge_flash=cookie.value))  # type: ignore[arg-type]
    assert back is not None
    assert back.message.startswith("éé")


@given(st.text(max_size=40))
def test_a_redirect_target_is_always_a_path_on_this_site(target: str) -> None:
    path = safe_path(target)
    assert path.startswith("/")
    assert not path.startswith("//")
    assert "\\" not in path
    assert all(ord(c) >= 32 for c in path)


def test_site_paths_are_kept_and_everything_else_goes_home() -> None:
    assert safe_path("/runs/1?after=3#x") == "/runs/1?after=3#x"
    for bad in ("//evil.example", "https://evil.example", "/\\evil", "evil", "", None, "/a\nb"):
        assert safe_path(bad) == "/"
