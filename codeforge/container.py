"""The composition root: the one module in codeforge/ that imports adapters/.

Wiring only. Services take their collaborators in their constructors and never
import this module; tests swap an adapter with `container.<provider>.override(...)`.
"""

from __future__ import annotations

from dependency_injector import containers, providers

from adapters.postgres.migrations import YoyoMigrator
from adapters.postgres.pool import open_pool
from adapters.postgres.readiness import PostgresProbe
from adapters.postgres.server import EmbeddedDatabase, ExternalDatabase, running_database
from codeforge.services.readiness import Readiness
from codeforge.services.shutdown import Phase, ShutdownSequence
from codeforge.settings import Settings


def database_kind(settings: Settings) -> str:
    return "external" if settings.database.url else "embedded"


def shutdown_timeouts(settings: Settings) -> dict[Phase, float]:
    s = settings.shutdown
    return {
        Phase.STOP_ACCEPTING_HTTP: s.http_timeout,
        Phase.SUSPEND_WORK: s.work_timeout,
        Phase.DRAIN_QUEUE: s.queue_timeout,
        Phase.CLOSE_POOL: s.pool_timeout,
    }


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    database_server = providers.Selector(
        providers.Callable(database_kind, settings),
        external=providers.Singleton(ExternalDatabase, settings),
        embedded=providers.Singleton(EmbeddedDatabase, settings),
    )
    database_url = providers.Resource(running_database, database_server)
    db_pool = providers.Resource(open_pool, database_url, settings.provided.database.pool)
    migrator = providers.Factory(YoyoMigrator, database_url)
    database_probe = providers.Factory(PostgresProbe, db_pool)

    readiness = providers.Singleton(Readiness)
    shutdown = providers.Singleton(
        ShutdownSequence, providers.Callable(shutdown_timeouts, settings)
    )
