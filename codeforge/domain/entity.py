"""What every stored entity carries: identity, tenant, optimistic-lock version, times."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Self

import msgspec
from msgspec import Struct

from codeforge.domain.ids import DEFAULT_TENANT_ID


class Entity(Struct, frozen=True, kw_only=True):
    """Immutable: a change is a new value (`evolve`), stored with `version` + 1.

    Stores update `WHERE id = … AND version = <the version read>`; a stale
    version is a Conflict, so two concurrent edits never silently overwrite.
    """

    id: uuid.UUID
    tenant_id: uuid.UUID = DEFAULT_TENANT_ID
    version: int = 1
    created_at: datetime
    updated_at: datetime

    def evolve(self, now: datetime, **changes: object) -> Self:
        return msgspec.structs.replace(self, updated_at=now, **changes)
