"""What every store adapter checks before it stores anything, so errors name the field.

The in-memory stores (`adapters.memory.stores`) apply the same rules: both adapters
refuse the same entities with the same `ValidationFailed`, and the contract suite
holds them to it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from codeforge.domain.entity import Entity
from codeforge.domain.errors import Conflict, NotFound, ValidationFailed
from codeforge.domain.runs import RunStatus
from codeforge.domain.tenants import Tenant
from codeforge.ports.stores import MAX_PAGE

E = TypeVar("E", bound=Entity)

# Kept as Python objects by to_builtins: psycopg adapts them natively and exactly.
NATIVE = (datetime, uuid.UUID, Decimal)
INT32_MAX = 2**31 - 1

_AT_FIELD = re.compile(r"at `\$\.([A-Za-z_][A-Za-z0-9_]*)")


def checked(entity: E, noun: str, int_fields: Iterable[str] = ()) -> E:
    """`entity` re-validated against its own type, or `ValidationFailed` naming the field.

    Structs are not validated when built, so a wrong type or an unknown enum value
    would otherwise reach a CHECK constraint with a message about the table, not
    the field. Times must carry a time zone (a naive time means nothing once
    stored) and text must be storable (no NUL, valid UTF-8).
    """
    builtins = msgspec.to_builtins(entity, builtin_types=NATIVE)
    try:
        valid = msgspec.convert(builtins, type(entity))
    except msgspec.ValidationError as e:
        match = _AT_FIELD.search(str(e))
        raise ValidationFailed(f"invalid {noun}: {e}", field=match[1] if match else None) from e
    for name, value in builtins.items():
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ValidationFailed(f"{name} must carry a time zone", field=name)
        if not storable_text(value):
            raise ValidationFailed(
                f"{name} contains a NUL character or invalid Unicode", field=name
            )
    for name in int_fields:
        value = getattr(valid, name)
        if not -INT32_MAX - 1 <= value <= INT32_MAX:
            raise ValidationFailed(f"{name} must be at most {INT32_MAX}", field=name)
    return valid


def storable_text(value: object) -> bool:
    """True when every string in `value` (nested lists and dicts too) can be stored."""
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(storable_text(k) and storable_text(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(storable_text(v) for v in value)
    return True


def fits_numeric(value: Decimal | None, precision: int, scale: int) -> bool:
    """Whether NUMERIC(precision, scale) holds `value` exactly (it would round it silently)."""
    if value is None:
        return True
    if not value.is_finite():
        return False
    quantum = Decimal(1).scaleb(-scale)
    return value == value.quantize(quantum) and abs(value) < Decimal(10) ** (precision - scale)


def page_size(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    return limit


def filter_values(
    entity_type: type[Entity], allowed: Iterable[str], filters: Mapping[str, str] | None
) -> dict[str, Any]:
    """The filters as typed values of the entity's fields; unknown names are refused."""
    allowed = sorted(allowed)
    types = {f.name: f.type for f in msgspec.structs.fields(entity_type)}
    values: dict[str, Any] = {}
    for name, raw in (filters or {}).items():
        if name not in allowed:
            raise ValidationFailed(
                f"unknown filter {name!r}; allowed: {', '.join(allowed) or 'none'}", field=name
            )
        if not storable_text(raw):
            raise ValidationFailed(f"filter {name!r} contains a NUL character", field=name)
        try:
            values[name] = msgspec.convert(raw, types[name])
        except msgspec.ValidationError as e:
            raise ValidationFailed(f"invalid value for filter {name!r}: {e}", field=name) from e
    return values


def article(noun: str) -> str:
    return f"an {noun}" if noun[0].lower() in "aeiou" else f"a {noun}"


def not_found(noun: str, entity_id: uuid.UUID) -> NotFound:
    return NotFound(f"{noun} {entity_id} not found")


def stale(noun: str, entity_id: uuid.UUID, version: int) -> Conflict:
    return Conflict(
        f"{noun} {entity_id} was changed by someone else "
        f"(version {version} is not current); reload and retry",
        field="version",
    )


def duplicate_id(noun: str, entity_id: uuid.UUID) -> Conflict:
    return Conflict(f"{article(noun)} with id {entity_id} already exists", field="id")


MONEY_PRECISION, MONEY_SCALE = 14, 6


def check_tenant(tenant: Tenant) -> None:
    """The rules of a tenant row beyond its type: own scope, money and integer columns."""
    if tenant.tenant_id != tenant.id:
        raise ValidationFailed("a tenant's tenant_id must be its own id", field="tenant_id")
    money: dict[str, Decimal | None] = {
        "budget_usd": tenant.budget_usd,
        "limits": tenant.limits.max_cost_usd,
    }
    for field, value in money.items():
        if not fits_numeric(value, MONEY_PRECISION, MONEY_SCALE):
            raise ValidationFailed(
                f"{field} must be a finite amount below 10^{MONEY_PRECISION - MONEY_SCALE} "
                f"with at most {MONEY_SCALE} decimal places",
                field=field,
            )
    for count in (tenant.limits.max_steps, tenant.limits.max_wall_seconds):
        if count is not None and count > INT32_MAX:
            raise ValidationFailed(f"limits must be at most {INT32_MAX}", field="limits")


# --- the event store ------------------------------------------------------------


def check_aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise ValidationFailed("times must carry a time zone", field="now")


RUN_FILTERS = ("status", "task_id", "agent_id", "project_id")


def event_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise ValidationFailed(f"limit must be 0 or more, not {limit}", field="limit")


def run_page_size(limit: int) -> int:
    """Runs are listed at most MAX_PAGE at a time; a larger request gets MAX_PAGE."""
    if limit < 1:
        raise ValidationFailed(f"limit must be at least 1, not {limit}", field="limit")
    return min(limit, MAX_PAGE)


def run_filters(filters: Mapping[str, str] | None) -> dict[str, RunStatus | uuid.UUID]:
    """Filter values in the run's own types; unknown names and bad values are refused."""
    parsed: dict[str, RunStatus | uuid.UUID] = {}
    for name, value in (filters or {}).items():
        if name not in RUN_FILTERS:
            raise ValidationFailed(
                f"runs cannot be filtered by {name!r} (use one of {', '.join(RUN_FILTERS)})",
                field=name,
            )
        try:
            parsed[name] = RunStatus(value) if name == "status" else uuid.UUID(value)
        except ValueError:
            raise ValidationFailed(f"{value!r} is not a valid {name}", field=name) from None
    return parsed
