"""One generic PostgreSQL entity store: a table, a msgspec Struct, optimistic locking.

A concrete store names its table, entity type, filters and unique constraints; the
SQL is built once per store from the columns, which by default are the Struct's
fields one to one (lists, dicts and nested Structs as JSONB, written by msgspec so
Decimals inside them travel as exact strings). Every statement runs on its own
autocommit connection: a single UPDATE … WHERE version = N is atomic, so of N
concurrent updates from one version exactly one matches a row.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Generic, LiteralString, NamedTuple, TypeVar

import msgspec
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from adapters import store_rules as rules
from adapters.postgres.errors import describe
from adapters.postgres.pool import DatabaseUnavailable
from codeforge.domain.entity import Entity
from codeforge.domain.errors import Conflict, ValidationFailed
from codeforge.ports.errors import PortError
from codeforge.ports.stores import Page

E = TypeVar("E", bound=Entity)

# Written by `add`, never by `update`.
_IMMUTABLE = frozenset({"id", "tenant_id", "version", "created_at"})

# The stores have a method named `list`, which hides the builtin in their bodies.
Rows = list[dict[str, Any]]


class Unique(NamedTuple):
    """A unique constraint, told in the domain's words: `message` formats `value`."""

    field: str
    message: str


class PostgresEntityStore(Generic[E]):
    """Implements `codeforge.ports.stores.EntityStore` for one table."""

    entity_type: type[E]
    table: str
    # In messages: "project 0190… not found".
    noun: str
    # Filter name -> column.
    filters: Mapping[str, str] = {}
    # Constraint name -> the field it guards.
    unique: Mapping[str, Unique] = {}
    # The column a caller's tenant_id is compared with.
    scope_column: str = "tenant_id"
    # Fields stored as INTEGER: larger values are refused up front, as in memory.
    int_fields: Sequence[str] = ()

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        columns = self.columns()
        table = sql.Identifier(self.table)
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        where = sql.SQL("{} = %(scope)s AND id = %(id)s").format(sql.Identifier(self.scope_column))
        self._names = names
        self._where_scope = sql.SQL("{} = %(scope)s").format(sql.Identifier(self.scope_column))
        self._insert = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
            table, names, sql.SQL(", ").join(map(sql.Placeholder, columns)), names
        )
        self._select = sql.SQL("SELECT {} FROM {} WHERE {}").format(names, table, where)
        self._version = sql.SQL("SELECT version FROM {} WHERE {}").format(table, where)
        assignments = [
            sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c))
            for c in columns
            if c not in _IMMUTABLE
        ]
        self._update = sql.SQL(
            "UPDATE {} SET {}, version = version + 1 WHERE {} AND version = %(version)s "
            "RETURNING {}"
        ).format(table, sql.SQL(", ").join(assignments), where, names)
        self._delete = sql.SQL("DELETE FROM {} WHERE {} RETURNING id").format(table, where)
        self._delete_versioned = sql.SQL(
            "DELETE FROM {} WHERE {} AND version = %(version)s RETURNING id"
        ).format(table, where)

    # -- how entities and rows map; stores with a different table shape override these --

    def columns(self) -> list[str]:
        return [f.name for f in msgspec.structs.fields(self.entity_type)]

    def to_row(self, entity: E) -> dict[str, Any]:
        row: dict[str, Any] = msgspec.to_builtins(entity, builtin_types=rules.NATIVE)
        # JSONB values are encoded without the native types: Decimals become strings.
        return {
            k: Jsonb(msgspec.to_builtins(getattr(entity, k))) if isinstance(v, dict | list) else v
            for k, v in row.items()
        }

    def from_row(self, row: Mapping[str, Any]) -> E:
        try:
            return msgspec.convert(row, self.entity_type)
        except msgspec.ValidationError as e:
            raise PortError(f"a stored {self.noun} cannot be read: {e}") from e

    def check(self, entity: E) -> E:
        """The entity to store, or `ValidationFailed`; stores add their own rules."""
        return rules.checked(entity, self.noun, self.int_fields)

    # -- the port --

    async def add(self, entity: E) -> E:
        entity = self.check(msgspec.structs.replace(entity, version=1))
        rows = await self._execute(self._insert, self.to_row(entity), entity)
        return self.from_row(rows[0])

    async def get(self, tenant_id: uuid.UUID, entity_id: uuid.UUID) -> E:
        rows = await self._execute(self._select, {"scope": tenant_id, "id": entity_id})
        if not rows:
            raise rules.not_found(self.noun, entity_id)
        return self.from_row(rows[0])

    async def update(self, entity: E) -> E:
        entity = self.check(entity)
        params = self.to_row(entity) | {"scope": entity.tenant_id}
        rows = await self._execute(self._update, params, entity)
        if not rows:
            raise await self._missing_or_stale(entity.tenant_id, entity.id, entity.version)
        return self.from_row(rows[0])

    async def delete(
        self, tenant_id: uuid.UUID, entity_id: uuid.UUID, version: int | None = None
    ) -> None:
        query = self._delete if version is None else self._delete_versioned
        params = {"scope": tenant_id, "id": entity_id, "version": version}
        if not await self._execute(query, params):
            raise await self._missing_or_stale(tenant_id, entity_id, version)

    async def list(
        self,
        tenant_id: uuid.UUID,
        *,
        limit: int = 50,
        after: uuid.UUID | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> Page[E]:
        rules.page_size(limit)
        wanted = rules.filter_values(self.entity_type, self.filters, filters)
        conditions: list[sql.Composable] = [self._where_scope]
        params: dict[str, Any] = {"scope": tenant_id, "limit": limit + 1}
        if after is not None:
            conditions.append(sql.SQL("id > %(after)s"))
            params["after"] = after
        for name, value in wanted.items():
            conditions.append(
                sql.SQL("{} = {}").format(
                    sql.Identifier(self.filters[name]), sql.Placeholder(f"filter_{name}")
                )
            )
            params[f"filter_{name}"] = msgspec.to_builtins(value, builtin_types=rules.NATIVE)
        query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY id LIMIT %(limit)s").format(
            self._names, sql.Identifier(self.table), sql.SQL(" AND ").join(conditions)
        )
        rows = await self._execute(query, params)
        items = [self.from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items=items, next_cursor=str(items[-1].id) if more else None)

    # -- shared with the stores' own queries --

    async def _find(self, condition: LiteralString, params: Mapping[str, Any]) -> E | None:
        """The first row matching `condition` (SQL with named placeholders), or None."""
        query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY id LIMIT 1").format(
            self._names, sql.Identifier(self.table), sql.SQL(condition)
        )
        rows = await self._execute(query, params)
        return self.from_row(rows[0]) if rows else None

    async def _execute(
        self, query: sql.Composed | sql.SQL, params: Mapping[str, Any], entity: E | None = None
    ) -> Rows:
        """Rows of `query` (none for statements without a result); driver errors translated."""
        try:
            async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(query, params)
                return await cur.fetchall() if cur.description else []
        except psycopg.errors.UniqueViolation as e:
            raise self._duplicate(e, entity) from e
        except (psycopg.IntegrityError, psycopg.DataError) as e:
            raise ValidationFailed(
                f"{rules.article(self.noun)} breaks a rule of the database: {describe(e)}"
            ) from e
        except psycopg.OperationalError as e:  # PoolTimeout included
            raise DatabaseUnavailable(f"the database is unavailable: {describe(e)}") from e
        except psycopg.Error as e:
            raise PortError(f"the {self.table} store failed: {describe(e)}") from e

    def _duplicate(self, error: psycopg.errors.UniqueViolation, entity: E | None) -> Conflict:
        constraint = error.diag.constraint_name or ""
        guarded = self.unique.get(constraint)
        if guarded is not None and entity is not None:
            value = getattr(entity, guarded.field)
            return Conflict(guarded.message.format(value=value), field=guarded.field)
        if constraint == f"{self.table}_pkey" and entity is not None:
            return rules.duplicate_id(self.noun, entity.id)
        return Conflict(f"{rules.article(self.noun)} already exists: {describe(error)}")

    async def _missing_or_stale(
        self, tenant_id: uuid.UUID, entity_id: uuid.UUID, version: int | None
    ) -> Exception:
        rows = await self._execute(self._version, {"scope": tenant_id, "id": entity_id})
        if not rows or version is None:
            return rules.not_found(self.noun, entity_id)
        return rules.stale(self.noun, entity_id, version)
