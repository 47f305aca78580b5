"""What every API handler shares: the caller, paging, and the documented headers."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar.params import HeaderParameter, QueryParameter
from litestar.types import Scope

from codeforge.domain.errors import ValidationFailed
from codeforge.domain.keys import Principal

Limit = Annotated[int, QueryParameter(ge=1, le=200, description="Items per page (1-200).")]
Cursor = Annotated[
    str | None,
    QueryParameter(description="`next_cursor` of the previous page; omit for the first."),
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description=(
            "Makes a retry safe: the first request with a key runs and its response is kept "
            "24 h; a repeat with the same body replays it (`Idempotent-Replayed: true`), a "
            "different body is 422, a repeat while the first still runs waits or gets 409."
        ),
    ),
]
Version = Annotated[
    int | None,
    QueryParameter(required=False, description="Delete only if still at this version."),
]


def principal_of(scope: Scope) -> Principal:
    # `scope`, not `request`: the same dependency serves HTTP handlers and WebSockets.
    principal: Principal = scope["state"]["principal"]
    return principal


def cursor_id(cursor: str | None) -> uuid.UUID | None:
    if cursor is None:
        return None
    try:
        return uuid.UUID(cursor)
    except ValueError:
        raise ValidationFailed("cursor is not one this API returned", field="cursor") from None


def filters(**given: object) -> dict[str, str]:
    return {name: str(value) for name, value in given.items() if value is not None}
