"""Projects in PostgreSQL (table `projects`, migration 0002)."""

from __future__ import annotations

import uuid

from adapters import store_rules as rules
from adapters.postgres.stores.base import PostgresEntityStore, Unique
from codeforge.domain.errors import NotFound
from codeforge.domain.projects import Project


class PostgresProjectStore(PostgresEntityStore[Project]):
    """Implements `codeforge.ports.stores.ProjectStore`."""

    entity_type = Project
    table = "projects"
    noun = "project"
    filters = {"name": "name", "source_kind": "source_kind"}
    unique = {
        "projects_tenant_name_key": Unique("name", "a project named {value!r} already exists")
    }

    async def get_by_name(self, tenant_id: uuid.UUID, name: str) -> Project:
        if rules.storable_text(name):
            found = await self._find(
                "tenant_id = %(scope)s AND name = %(name)s", {"scope": tenant_id, "name": name}
            )
            if found is not None:
                return found
        raise NotFound(f"no project named {name!r}", field="name")
