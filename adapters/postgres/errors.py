"""Driver errors, told in one line."""

from __future__ import annotations


def describe(error: BaseException) -> str:
    """libpq spreads its messages over several indented lines; operators read one."""
    return " ".join(str(error).split()) or type(error).__name__
