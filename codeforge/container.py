"""The composition root: the one module in codeforge/ that imports adapters/.

Wiring only. Services take their collaborators in their constructors and never
import this module; tests swap an adapter with `container.<provider>.override(...)`.
Async providers (anything depending on the pool) resolve with `await`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from dependency_injector import containers, providers

from adapters.embeddings.local import LocalEmbedder
from adapters.embeddings.local import installed as local_embeddings_installed
from adapters.git.local import LocalGit
from adapters.memory.queue import MemoryQueue
from adapters.nats.event_feed import NatsEventFeed
from adapters.nats.queue import NatsQueue
from adapters.postgres.code_graph import PostgresCodeGraphStore
from adapters.postgres.dead_letters import PostgresDeadLetterStore
from adapters.postgres.event_feed import PostgresEventFeed
from adapters.postgres.event_store import PostgresEventStore
from adapters.postgres.idempotency import PostgresIdempotencyStore
from adapters.postgres.migrations import YoyoMigrator
from adapters.postgres.outbox import PostgresOutbox
from adapters.postgres.pool import open_pool
from adapters.postgres.readiness import PostgresProbe
from adapters.postgres.server import EmbeddedDatabase, ExternalDatabase, running_database
from adapters.postgres.sessions import PostgresSessionStore
from adapters.postgres.stores import (
    PostgresAgentStore,
    PostgresApiKeyStore,
    PostgresModelConfigStore,
    PostgresProjectStore,
    PostgresTaskStore,
    PostgresTenantStore,
)
from adapters.sandbox.bwrap import BwrapSandboxFactory
from adapters.sandbox.docker import DockerSandboxFactory
from adapters.sandbox.mount import MountSandboxFactory
from adapters.secrets.env import EnvSecretStore
from adapters.secrets.file import FileSecretStore
from codeforge.context.engine import ContextEngine
from codeforge.context.projects import ProjectContext
from codeforge.domain.runs import SandboxMode
from codeforge.http.idempotency import Idempotency
from codeforge.http.rate_limits import RateLimits
from codeforge.log import register_secret
from codeforge.ports.events import RunEventFeed
from codeforge.ports.queue import Queue, RetryPolicy
from codeforge.ports.sandbox import ISOLATION, SandboxFactory
from codeforge.services.agents import Agents
from codeforge.services.api_keys import ApiKeys
from codeforge.services.circuit_breaker import CircuitBreaker
from codeforge.services.dead_letters import DeadLetters
from codeforge.services.event_log import EventLog
from codeforge.services.event_streams import EventStreams
from codeforge.services.git_work import GitRunner
from codeforge.services.key_cache import KeyCache
from codeforge.services.lease_reaper import LeaseReaper
from codeforge.services.models import Models
from codeforge.services.outbox_relay import OutboxRelay
from codeforge.services.projects import Projects
from codeforge.services.queue_health import QueueProbe
from codeforge.services.readiness import Readiness
from codeforge.services.run_control import RunControl
from codeforge.services.run_worker import RunWorker
from codeforge.services.runs import Runs
from codeforge.services.sandbox_choice import SandboxChoice, SandboxReadiness, choose_sandbox
from codeforge.services.secrets import Secrets
from codeforge.services.sessions import BrowserSessions, signing_key_from
from codeforge.services.shutdown import Phase, ShutdownSequence
from codeforge.services.subjects import subject_registry
from codeforge.services.tasks import Tasks
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


def default_mode(choice: SandboxChoice) -> SandboxMode:
    # With no usable kind, runs still record the configured fallback; readiness says why.
    return choice.kind or SandboxMode.MOUNT


async def resolved_sandbox(
    settings: Settings, factories: dict[SandboxMode, SandboxFactory]
) -> AsyncIterator[SandboxChoice]:
    required = ISOLATION if settings.sandbox.require_isolation else ()
    yield await choose_sandbox(settings.sandbox.kind, factories, required=required)


async def running_feed(pool: object) -> AsyncIterator[RunEventFeed]:
    feed = PostgresEventFeed(pool)  # type: ignore[arg-type]
    await feed.start()
    try:
        yield feed
    finally:
        await feed.close()


async def running_queue(queue: Queue, grace: float) -> AsyncIterator[Queue]:
    """Connected for the process's life; drained (handlers finish, publishes flushed) at the end."""
    await queue.start()  # type: ignore[attr-defined]
    try:
        yield queue
    finally:
        await queue.drain(grace)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(max_retries=settings.queue.max_retries, delay=settings.queue.retry_delay)


async def running_nats_feed(url: str) -> AsyncIterator[RunEventFeed]:
    feed = NatsEventFeed(url)
    await feed.start()
    try:
        yield feed
    finally:
        await feed.close()


async def running_git(max_concurrent: int) -> AsyncIterator[GitRunner]:
    runner = GitRunner(LocalGit(), max_concurrent=max_concurrent)
    try:
        yield runner
    finally:
        await runner.aclose()


def embedder_kind() -> str:
    # Semantic search when the optional extra is installed; keyword + graph otherwise.
    return "local" if local_embeddings_installed() else "none"


def secret_stores(data_path: Path) -> list[object]:
    return [EnvSecretStore(), FileSecretStore.in_data_dir(data_path)]


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    data_path = providers.Callable(lambda s: s.data_path, settings)

    # --- database -----------------------------------------------------------
    database_server = providers.Selector(
        providers.Callable(database_kind, settings),
        external=providers.Singleton(ExternalDatabase, settings),
        embedded=providers.Singleton(EmbeddedDatabase, settings),
    )
    database_url = providers.Resource(running_database, database_server)
    db_pool = providers.Resource(open_pool, database_url, settings.provided.database.pool)
    migrator = providers.Factory(YoyoMigrator, database_url)
    database_probe = providers.Factory(PostgresProbe, db_pool)

    # --- stores -------------------------------------------------------------
    tenant_store = providers.Singleton(PostgresTenantStore, db_pool)
    project_store = providers.Singleton(PostgresProjectStore, db_pool)
    task_store = providers.Singleton(PostgresTaskStore, db_pool)
    agent_store = providers.Singleton(PostgresAgentStore, db_pool)
    model_store = providers.Singleton(PostgresModelConfigStore, db_pool)
    key_store = providers.Singleton(PostgresApiKeyStore, db_pool)
    session_store = providers.Singleton(PostgresSessionStore, db_pool)
    idempotency_store = providers.Singleton(PostgresIdempotencyStore, db_pool)
    event_store = providers.Singleton(PostgresEventStore, db_pool)
    outbox = providers.Singleton(PostgresOutbox, db_pool)
    dead_letter_store = providers.Singleton(PostgresDeadLetterStore, db_pool)
    event_feed = providers.Selector(
        settings.provided.feed.kind,
        postgres=providers.Resource(running_feed, db_pool),
        nats=providers.Resource(running_nats_feed, settings.provided.queue.url),
    )
    # The PostgreSQL store announces its writes itself (NOTIFY in the transaction).
    announcing_feed = providers.Selector(
        settings.provided.feed.kind, postgres=providers.Object(None), nats=event_feed
    )

    # --- queue --------------------------------------------------------------
    subjects = providers.Singleton(subject_registry)
    queue_client = providers.Selector(
        settings.provided.queue.kind,
        memory=providers.Singleton(
            MemoryQueue, subjects, retry=providers.Callable(retry_policy, settings)
        ),
        nats=providers.Singleton(
            NatsQueue,
            settings.provided.queue.url,
            subjects,
            stream_name=settings.provided.queue.stream_name,
            retry=providers.Callable(retry_policy, settings),
            ack_wait=settings.provided.queue.ack_wait,
        ),
    )
    queue = providers.Resource(
        running_queue, queue_client, settings.provided.shutdown.queue_timeout
    )
    publish_breaker = providers.Singleton(
        CircuitBreaker,
        "queue publish",
        failure_threshold=settings.provided.queue.breaker_failure_threshold,
        reset_timeout=settings.provided.queue.breaker_reset_timeout,
    )
    queue_probe = providers.Factory(QueueProbe, queue, publish_breaker)
    run_control = providers.Singleton(RunControl, queue, publish_breaker)
    dead_letters = providers.Singleton(DeadLetters, dead_letter_store, queue, subjects)
    outbox_relay = providers.Singleton(
        OutboxRelay,
        outbox,
        queue,
        subjects,
        publish_breaker,
        interval=settings.provided.queue.relay_interval,
    )

    # --- sandboxes ----------------------------------------------------------
    sandbox_factories = providers.Dict(
        {
            SandboxMode.MOUNT: providers.Singleton(MountSandboxFactory),
            SandboxMode.BWRAP: providers.Singleton(BwrapSandboxFactory),
            SandboxMode.DOCKER: providers.Singleton(
                DockerSandboxFactory,
                docker_host=settings.provided.sandbox.docker_host,
                image=settings.provided.sandbox.docker_image,
            ),
        }
    )
    sandbox_choice = providers.Resource(resolved_sandbox, settings, sandbox_factories)
    sandbox_probe = providers.Factory(SandboxReadiness, sandbox_choice)

    # --- outside parts ------------------------------------------------------
    secrets = providers.Singleton(
        Secrets, providers.Callable(secret_stores, data_path), register_secret
    )
    git = providers.Resource(running_git, 5)

    # --- services -----------------------------------------------------------
    readiness = providers.Singleton(Readiness)
    shutdown = providers.Singleton(
        ShutdownSequence, providers.Callable(shutdown_timeouts, settings)
    )
    key_cache = providers.Singleton(KeyCache, ttl=settings.provided.api.key_cache_ttl)
    api_keys = providers.Singleton(ApiKeys, key_store, tenant_store, cache=key_cache)
    sessions = providers.Singleton(
        BrowserSessions,
        session_store,
        api_keys,
        key_store,
        providers.Callable(signing_key_from, secrets),
        ttl_seconds=settings.provided.api.session_ttl,
    )
    projects = providers.Singleton(
        Projects, project_store, git, providers.Callable(lambda p: p / "workspaces", data_path)
    )
    tasks = providers.Singleton(Tasks, task_store, project_store, event_feed)
    agents = providers.Singleton(Agents, agent_store, model_store)
    models = providers.Singleton(Models, model_store)
    event_log = providers.Singleton(
        EventLog, event_store, secrets.provided.known_values, announce_to=announcing_feed
    )
    runs = providers.Singleton(
        Runs,
        event_store,
        event_log,
        task_store,
        agent_store,
        project_store,
        tenant_store,
        default_mode=providers.Callable(default_mode, sandbox_choice),
        on_started=outbox_relay.provided.wake,
        control=run_control,
    )
    event_streams = providers.Singleton(
        EventStreams, runs, event_feed, settings.provided.api.stream_heartbeat
    )

    # --- workers ------------------------------------------------------------
    # The agent runtime (next issue) provides the executor; until then none is installed
    # and runs wait in `requested`. Tests override it.
    run_executor = providers.Object(None)
    worker_id = providers.Callable(worker_name)
    run_worker = providers.Singleton(
        RunWorker,
        queue,
        event_store,
        event_log,
        run_executor,
        worker_id=worker_id,
        lease_seconds=settings.provided.worker.lease_seconds,
        heartbeat_seconds=settings.provided.worker.heartbeat_seconds,
    )
    lease_reaper = providers.Singleton(
        LeaseReaper, event_store, event_log, interval=settings.provided.worker.reaper_interval
    )

    # --- code intelligence (codeforge/context) ------------------------------
    embedder = providers.Selector(
        providers.Callable(embedder_kind),
        local=providers.Singleton(LocalEmbedder),
        none=providers.Object(None),
    )
    context_engine = providers.Singleton(
        ContextEngine, providers.Callable(lambda p: p / "cache" / "context", data_path), embedder
    )
    code_graph_store = providers.Singleton(PostgresCodeGraphStore, db_pool)
    project_context = providers.Singleton(
        ProjectContext, projects, context_engine, code_graph_store
    )

    # --- HTTP guards --------------------------------------------------------
    rate_limits = providers.Singleton(RateLimits, settings.provided.rate_limit)
    idempotency = providers.Singleton(
        Idempotency,
        idempotency_store,
        ttl_seconds=settings.provided.api.idempotency_ttl,
        wait_seconds=settings.provided.api.idempotency_wait,
        max_body_bytes=settings.provided.http.max_body_bytes,
    )
