"""Tenants: the unit of isolation. A key of one tenant never sees another's rows."""

from __future__ import annotations

from decimal import Decimal

from codeforge.domain.entity import Entity
from codeforge.domain.limits import Limits


class Tenant(Entity, frozen=True, kw_only=True):
    name: str
    # Total spend cap across all runs; None means no cap.
    budget_usd: Decimal | None = None
    limits: Limits = Limits()
