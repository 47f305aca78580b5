"""Entity stores in dicts, with the PostgreSQL stores' invariants.

Implements the stores of `codeforge.ports.stores` for one process, for tests and
single-process use: tenant scoping, unique names (per tenant; API key prefixes and
tenant names globally), versions, ordering by id and cursor pages behave as in
`adapters.postgres.stores`, and the same entities are refused with the same
`ValidationFailed` (the rules in `adapters.store_rules`, shared with PostgreSQL, and the
table's columns: NUMERIC(14, 6) tenant money, INTEGER counts). Entities are kept
encoded, so a caller that mutates a list it was handed does not change the store.
Mutations hold one lock, so of N concurrent updates from one version exactly one
wins. Not thread-safe.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Generic, NamedTuple, TypeVar

import msgspec

from adapters import store_rules as rules
from codeforge.domain.agents import Agent
from codeforge.domain.entity import Entity
from codeforge.domain.errors import Conflict, NotFound, ValidationFailed
from codeforge.domain.ids import DEFAULT_TENANT_ID
from codeforge.domain.keys import ApiKey
from codeforge.domain.model_configs import ModelConfig
from codeforge.domain.projects import Project
from codeforge.domain.tasks import Task
from codeforge.domain.tenants import Tenant
from codeforge.ports.stores import Page

E = TypeVar("E", bound=Entity)


class Unique(NamedTuple):
    """No two rows share `field` (within a tenant when `per_tenant`); `message` formats `value`."""

    field: str
    message: str
    per_tenant: bool = True


class MemoryEntityStore(Generic[E]):
    """Implements `codeforge.ports.stores.EntityStore` over a dict keyed by id."""

    entity_type: type[E]
    # In messages: "project 0190… not found".
    noun: str
    filters: Sequence[str] = ()
    unique: Sequence[Unique] = ()
    # Fields PostgreSQL keeps as INTEGER.
    int_fields: Sequence[str] = ()

    def __init__(self) -> None:
        self._rows: dict[uuid.UUID, bytes] = {}
        self._lock = asyncio.Lock()
        self._decoder = msgspec.msgpack.Decoder(self.entity_type)
        self._encoder = msgspec.msgpack.Encoder()

    def check(self, entity: E) -> E:
        """The entity to store, or `ValidationFailed`; stores add their own rules."""
        return rules.checked(entity, self.noun, self.int_fields)

    async def add(self, entity: E) -> E:
        entity = self.check(msgspec.structs.replace(entity, version=1))
        async with self._lock:
            if entity.id in self._rows:
                raise Conflict(
                    f"{rules.article(self.noun)} with id {entity.id} already exists", field="id"
                )
            self._check_unique(entity)
            return self._put(entity)

    async def get(self, tenant_id: uuid.UUID, entity_id: uuid.UUID) -> E:
        found = self._get(entity_id)
        if found is None or found.tenant_id != tenant_id:
            raise rules.not_found(self.noun, entity_id)
        return found

    async def update(self, entity: E) -> E:
        entity = self.check(entity)
        async with self._lock:
            stored = self._scoped(entity.tenant_id, entity.id)
            if stored.version != entity.version:
                raise rules.stale(self.noun, entity.id, entity.version)
            self._check_unique(entity)
            return self._put(
                msgspec.structs.replace(
                    entity, version=stored.version + 1, created_at=stored.created_at
                )
            )

    async def delete(
        self, tenant_id: uuid.UUID, entity_id: uuid.UUID, version: int | None = None
    ) -> None:
        async with self._lock:
            stored = self._scoped(tenant_id, entity_id)
            if version is not None and stored.version != version:
                raise rules.stale(self.noun, entity_id, version)
            del self._rows[entity_id]

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
        matching = [
            entity
            for entity in map(self._decoder.decode, self._rows.values())
            if entity.tenant_id == tenant_id
            and (after is None or entity.id > after)
            and all(getattr(entity, name) == value for name, value in wanted.items())
        ]
        matching.sort(key=lambda entity: entity.id)
        items = matching[:limit]
        more = len(matching) > limit
        return Page(items=items, next_cursor=str(items[-1].id) if more else None)

    # -- shared with the stores' own methods --

    def _get(self, entity_id: uuid.UUID) -> E | None:
        encoded = self._rows.get(entity_id)
        return None if encoded is None else self._decoder.decode(encoded)

    def _find(self, *, tenant_id: uuid.UUID | None = None, **equal: object) -> E | None:
        for encoded in self._rows.values():
            entity = self._decoder.decode(encoded)
            if (tenant_id is None or entity.tenant_id == tenant_id) and all(
                getattr(entity, k) == v for k, v in equal.items()
            ):
                return entity
        return None

    def _scoped(self, tenant_id: uuid.UUID, entity_id: uuid.UUID) -> E:
        found = self._get(entity_id)
        if found is None or found.tenant_id != tenant_id:
            raise rules.not_found(self.noun, entity_id)
        return found

    def _put(self, entity: E) -> E:
        self._rows[entity.id] = self._encoder.encode(entity)
        return self._decoder.decode(self._rows[entity.id])

    def _check_unique(self, entity: E) -> None:
        for rule in self.unique:
            value = getattr(entity, rule.field)
            other = self._find(
                tenant_id=entity.tenant_id if rule.per_tenant else None, **{rule.field: value}
            )
            if other is not None and other.id != entity.id:
                raise Conflict(rule.message.format(value=value), field=rule.field)


class MemoryTenantStore(MemoryEntityStore[Tenant]):
    """Implements `codeforge.ports.stores.TenantStore`: a tenant is its own scope.

    Starts with the default tenant, as migration 0001 gives every database.
    """

    entity_type = Tenant
    noun = "tenant"
    filters = ("name",)
    unique = (Unique("name", "a tenant named {value!r} already exists", per_tenant=False),)

    def __init__(self) -> None:
        super().__init__()
        now = datetime.now(UTC)
        self._put(
            Tenant(
                id=DEFAULT_TENANT_ID,
                tenant_id=DEFAULT_TENANT_ID,
                name="default",
                created_at=now,
                updated_at=now,
            )
        )

    async def get_by_name(self, name: str) -> Tenant:
        found = self._find(name=name)
        if found is None:
            raise NotFound(f"no tenant named {name!r}", field="name")
        return found

    def check(self, entity: Tenant) -> Tenant:
        tenant = super().check(entity)
        rules.check_tenant(tenant)
        return tenant


class MemoryProjectStore(MemoryEntityStore[Project]):
    """Implements `codeforge.ports.stores.ProjectStore`."""

    entity_type = Project
    noun = "project"
    filters = ("name", "source_kind")
    unique = (Unique("name", "a project named {value!r} already exists"),)

    async def get_by_name(self, tenant_id: uuid.UUID, name: str) -> Project:
        found = self._find(tenant_id=tenant_id, name=name)
        if found is None:
            raise NotFound(f"no project named {name!r}", field="name")
        return found


class MemoryTaskStore(MemoryEntityStore[Task]):
    """Implements `codeforge.ports.stores.TaskStore`."""

    entity_type = Task
    noun = "task"
    filters = ("project_id", "status")


class MemoryAgentStore(MemoryEntityStore[Agent]):
    """Implements `codeforge.ports.stores.AgentStore`."""

    entity_type = Agent
    noun = "agent"
    filters = ("name", "backend", "model")
    unique = (Unique("name", "an agent named {value!r} already exists"),)


class MemoryModelConfigStore(MemoryEntityStore[ModelConfig]):
    """Implements `codeforge.ports.stores.ModelConfigStore`."""

    entity_type = ModelConfig
    noun = "model"
    filters = ("name", "source")
    unique = (Unique("name", "a model named {value!r} already exists"),)
    int_fields = ("context_window",)

    async def get_by_name(self, tenant_id: uuid.UUID, name: str) -> ModelConfig:
        found = self._find(tenant_id=tenant_id, name=name)
        if found is None:
            raise NotFound(f"no model named {name!r}", field="name")
        return found


class MemoryApiKeyStore(MemoryEntityStore[ApiKey]):
    """Implements `codeforge.ports.stores.ApiKeyStore`.

    `touch` of a key that no longer exists raises `NotFound`; `count_active`
    counts the keys of every tenant that are not revoked.
    """

    entity_type = ApiKey
    noun = "API key"
    filters = ("role",)
    unique = (
        Unique("prefix", "an API key with prefix {value!r} already exists", per_tenant=False),
    )

    async def find_by_prefix(self, prefix: str) -> ApiKey | None:
        return self._find(prefix=prefix)

    async def touch(self, key_id: uuid.UUID, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValidationFailed("at must carry a time zone", field="at")
        async with self._lock:
            key = self._get(key_id)
            if key is None:
                raise rules.not_found(self.noun, key_id)
            # Keeps the latest use when requests finish out of order.
            latest = at if key.last_used_at is None else max(key.last_used_at, at)
            self._put(msgspec.structs.replace(key, last_used_at=latest))

    async def count_active(self) -> int:
        return sum(1 for key in map(self._decoder.decode, self._rows.values()) if key.active)
