"""Agents in PostgreSQL (table `agents`, migration 0002)."""

from __future__ import annotations

from adapters.postgres.stores.base import PostgresEntityStore, Unique
from codeforge.domain.agents import Agent


class PostgresAgentStore(PostgresEntityStore[Agent]):
    """Implements `codeforge.ports.stores.AgentStore`."""

    entity_type = Agent
    table = "agents"
    noun = "agent"
    filters = {"name": "name", "backend": "backend", "model": "model"}
    unique = {"agents_tenant_name_key": Unique("name", "an agent named {value!r} already exists")}
