"""One PostgreSQL URL, spelled the way each library wants it."""

from __future__ import annotations

_SCHEMES = ("postgresql+psycopg://", "postgresql://", "postgres://")


def libpq_url(url: str) -> str:
    """The URL psycopg understands (`postgresql://…`)."""
    for scheme in _SCHEMES:
        if url.startswith(scheme):
            return "postgresql://" + url[len(scheme) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('@')[-1]!r}")


def yoyo_url(url: str) -> str:
    """The URL yoyo-migrations needs to pick its psycopg 3 backend."""
    return "postgresql+psycopg://" + libpq_url(url)[len("postgresql://") :]
