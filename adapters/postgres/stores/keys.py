"""API keys in PostgreSQL (table `api_keys`, migration 0002)."""

from __future__ import annotations

import uuid
from datetime import datetime

from psycopg import sql

from adapters import store_rules as rules
from adapters.postgres.stores.base import PostgresEntityStore, Unique
from codeforge.domain.errors import ValidationFailed
from codeforge.domain.keys import ApiKey

# GREATEST ignores NULL, and keeps the latest use when requests finish out of order.
_TOUCH = sql.SQL("""
UPDATE api_keys SET last_used_at = GREATEST(last_used_at, %(at)s)
WHERE id = %(id)s RETURNING id
""")


class PostgresApiKeyStore(PostgresEntityStore[ApiKey]):
    """Implements `codeforge.ports.stores.ApiKeyStore`.

    `touch` of a key that no longer exists raises `NotFound`; `count_active`
    counts the keys of every tenant that are not revoked.
    """

    entity_type = ApiKey
    table = "api_keys"
    noun = "API key"
    filters = {"role": "role"}
    unique = {
        "api_keys_prefix_key": Unique("prefix", "an API key with prefix {value!r} already exists")
    }

    async def find_by_prefix(self, prefix: str) -> ApiKey | None:
        if not rules.storable_text(prefix):
            return None
        return await self._find("prefix = %(prefix)s", {"prefix": prefix})

    async def touch(self, key_id: uuid.UUID, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValidationFailed("at must carry a time zone", field="at")
        if not await self._execute(_TOUCH, {"id": key_id, "at": at}):
            raise rules.not_found(self.noun, key_id)

    async def count_active(self) -> int:
        rows = await self._execute(
            sql.SQL("SELECT count(*) AS active FROM api_keys WHERE revoked_at IS NULL"), {}
        )
        return int(rows[0]["active"])
