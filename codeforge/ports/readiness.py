"""Readiness: can this process do its work right now?"""

from __future__ import annotations

from typing import Protocol


class ReadinessProbe(Protocol):
    """One dependency's health check, run by `/health/ready`.

    Contract: `check()` returns when the dependency is usable — optionally a short
    description of its state, shown as `detail` (e.g. "connected; breaker closed") — and raises
    any exception (its message is shown to operators, so keep it useful and free of
    secrets) when it is not. It must be cheap and must not hang: the caller also
    applies a timeout. `name` is stable ("database", "queue", "llm").
    """

    name: str

    async def check(self) -> str | None: ...
