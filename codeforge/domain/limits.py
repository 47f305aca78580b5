"""Limits on a run: steps, wall time and cost.

Tenant, project, agent and the run request each may set them; the effective
limit is the tightest (ARCHITECTURE.md, "Limits"): a run may tighten, never loosen.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, TypeVar

from msgspec import Meta, Struct

PositiveInt = Annotated[int, Meta(ge=1)]
N = TypeVar("N", int, Decimal)


class Limits(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """None means "no limit at this level"."""

    max_steps: PositiveInt | None = None
    max_wall_seconds: PositiveInt | None = None
    max_cost_usd: Decimal | None = None

    def __post_init__(self) -> None:
        # msgspec cannot constrain Decimal, so the rule lives here.
        if self.max_cost_usd is not None and self.max_cost_usd < 0:
            raise ValueError("max_cost_usd must be >= 0")

    def tighten(self, other: Limits) -> Limits:
        return Limits(
            max_steps=_least(self.max_steps, other.max_steps),
            max_wall_seconds=_least(self.max_wall_seconds, other.max_wall_seconds),
            max_cost_usd=_least(self.max_cost_usd, other.max_cost_usd),
        )

    @staticmethod
    def tightest(*levels: Limits | None) -> Limits:
        effective = Limits()
        for level in levels:
            if level is not None:
                effective = effective.tighten(level)
        return effective


def _least(a: N | None, b: N | None) -> N | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
