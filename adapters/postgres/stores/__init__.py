"""Entity stores in PostgreSQL: one generic table store, one small module per entity."""

from adapters.postgres.stores.agents import PostgresAgentStore
from adapters.postgres.stores.keys import PostgresApiKeyStore
from adapters.postgres.stores.model_configs import PostgresModelConfigStore
from adapters.postgres.stores.projects import PostgresProjectStore
from adapters.postgres.stores.tasks import PostgresTaskStore
from adapters.postgres.stores.tenants import PostgresTenantStore

__all__ = [
    "PostgresAgentStore",
    "PostgresApiKeyStore",
    "PostgresModelConfigStore",
    "PostgresProjectStore",
    "PostgresTaskStore",
    "PostgresTenantStore",
]
