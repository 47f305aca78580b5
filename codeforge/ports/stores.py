"""Stores of entities: projects, tasks, agents, model configs, API keys, tenants.

Contract shared by every store (one contract suite checks every adapter):

- Every read and write is scoped by `tenant_id`: a row of another tenant does
  not exist for the caller (`NotFound`), never `Forbidden`.
- `add` stores version 1; a duplicate id or a duplicate unique name within the
  tenant raises `Conflict` naming the field.
- `update(entity)` writes only if the stored version equals `entity.version`,
  and returns the entity with `version + 1`; a stale version raises `Conflict`,
  a missing row `NotFound`. Of N concurrent updates from one version, exactly
  one succeeds.
- `delete(tenant_id, id, version=None)` removes the row (checking the version
  when given); missing → `NotFound`.
- `list` returns entities ordered by id (time-ordered, oldest first) after the
  cursor, at most `limit`, with `next_cursor` set when more remain. Filters are
  equality on the named fields; an unknown filter raises `ValidationFailed`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from msgspec import Struct

from codeforge.domain.agents import Agent
from codeforge.domain.entity import Entity
from codeforge.domain.keys import ApiKey
from codeforge.domain.model_configs import ModelConfig
from codeforge.domain.projects import Project
from codeforge.domain.tasks import Task
from codeforge.domain.tenants import Tenant

E = TypeVar("E", bound=Entity)
T = TypeVar("T")

MAX_PAGE = 200


class Page(Struct, Generic[T], frozen=True):
    items: list[T]
    next_cursor: str | None = None


class EntityStore(Protocol[E]):
    async def add(self, entity: E) -> E: ...

    async def get(self, tenant_id: uuid.UUID, entity_id: uuid.UUID) -> E: ...

    async def update(self, entity: E) -> E: ...

    async def delete(
        self, tenant_id: uuid.UUID, entity_id: uuid.UUID, version: int | None = None
    ) -> None: ...

    async def list(
        self,
        tenant_id: uuid.UUID,
        *,
        limit: int = 50,
        after: uuid.UUID | None = None,
        filters: Mapping[str, str] | None = None,
    ) -> Page[E]: ...


class TenantStore(EntityStore[Tenant], Protocol):
    """Tenants are their own scope: `tenant_id` and `id` are the same value."""

    async def get_by_name(self, name: str) -> Tenant:
        """Across all tenants (names are globally unique); NotFound when absent."""
        ...


class ProjectStore(EntityStore[Project], Protocol):
    """Filters: name, source_kind. Unique per tenant: name."""

    async def get_by_name(self, tenant_id: uuid.UUID, name: str) -> Project: ...


class TaskStore(EntityStore[Task], Protocol):
    """Filters: project_id, status."""


class AgentStore(EntityStore[Agent], Protocol):
    """Filters: name, backend, model. Unique per tenant: name."""


class ModelConfigStore(EntityStore[ModelConfig], Protocol):
    """Filters: name, source. Unique per tenant: name."""

    async def get_by_name(self, tenant_id: uuid.UUID, name: str) -> ModelConfig: ...


class ApiKeyStore(EntityStore[ApiKey], Protocol):
    """Filters: role. Keys are found across tenants by their public prefix."""

    async def find_by_prefix(self, prefix: str) -> ApiKey | None: ...

    async def touch(self, key_id: uuid.UUID, at: datetime) -> None:
        """Record use without bumping the version (use is not an edit)."""
        ...

    async def count_active(self) -> int: ...
