"""The composition root: the one module in codeforge/ that imports adapters/.

Wiring only. Services take their collaborators in their constructors and never
import this module; tests swap an adapter with `container.<provider>.override(...)`.
Async providers (anything depending on the pool) resolve with `await`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from dependency_injector import containers, providers

from adapters.embeddings.local import LocalEmbedder
from adapters.embeddings.local import installed as local_embeddings_installed
from adapters.embeddings.openai import OpenAICompatibleEmbedder
from adapters.git.local import LocalGit
from adapters.git_host import GiteaHost, GitHubHost, GitLabHost
from adapters.llm.openai import OpenAICompatibleModel
from adapters.llm.replay import ReplayModel
from adapters.memory.queue import MemoryQueue
from adapters.nats.event_feed import NatsEventFeed
from adapters.nats.queue import NatsQueue
from adapters.postgres.artifacts import PostgresArtifactStore
from adapters.postgres.checkpoints import PostgresCheckpointStore
from adapters.postgres.code_graph import PostgresCodeGraphStore
from adapters.postgres.costs import PostgresCostLedger
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
from adapters.postgres.stores.policies import PostgresPolicyStore
from adapters.sandbox.bwrap import BwrapSandboxFactory
from adapters.sandbox.docker import DockerSandboxFactory
from adapters.sandbox.hybrid import HybridSandboxFactory
from adapters.sandbox.mount import MountSandboxFactory
from adapters.secrets.env import EnvSecretStore
from adapters.secrets.file import FileSecretStore
from adapters.webhook.approvals import NoNotifier, WebhookNotifier
from codeforge.agent.backends.aider import AiderBackend
from codeforge.agent.backends.aider_install import AiderInstall
from codeforge.agent.backends.proxy_watch import ProxyWatch
from codeforge.agent.delivery import Delivery
from codeforge.agent.executor import AgentExecutor
from codeforge.agent.executor import Stores as AgentStores
from codeforge.agent.file_tree import FileTreeContext
from codeforge.agent.llm_proxy import LlmProxy
from codeforge.agent.workspaces import RunWorkspaces
from codeforge.context.engine import ContextEngine
from codeforge.context.projects import ProjectContext
from codeforge.context.provider import RepoContextProvider
from codeforge.context.retrieval import EngineCodeSearch
from codeforge.domain.runs import SandboxMode
from codeforge.http.idempotency import Idempotency
from codeforge.http.llm_socket import LlmProxySocket, socket_path
from codeforge.http.rate_limits import RateLimits
from codeforge.log import register_secret
from codeforge.ports.events import RunEventFeed
from codeforge.ports.git_host import GitHost
from codeforge.ports.llm import LanguageModel, ModelEndpoint
from codeforge.ports.queue import Queue, RetryPolicy
from codeforge.ports.sandbox import ISOLATION, SandboxFactory
from codeforge.services.agents import Agents
from codeforge.services.api_keys import ApiKeys
from codeforge.services.approvals import RunApprovals
from codeforge.services.artifacts import Artifacts
from codeforge.services.audit import Audit
from codeforge.services.checkpoint_diffs import CheckpointDiffs
from codeforge.services.checkpoints import BlobCheckpointer, CheckpointJanitor
from codeforge.services.circuit_breaker import CircuitBreaker
from codeforge.services.costs import Costs
from codeforge.services.dead_letters import DeadLetters
from codeforge.services.event_log import EventLog
from codeforge.services.event_streams import EventStreams
from codeforge.services.git_work import GitRunner
from codeforge.services.key_cache import KeyCache
from codeforge.services.lease_reaper import LeaseReaper
from codeforge.services.model_health import ModelHealth
from codeforge.services.models import Models
from codeforge.services.outbox_relay import OutboxRelay
from codeforge.services.policies import Policies
from codeforge.services.policy_gate import EffectivePolicies, PolicyEngineGate
from codeforge.services.policy_presets import PolicyPresets
from codeforge.services.projects import Projects
from codeforge.services.queue_health import QueueProbe
from codeforge.services.readiness import Readiness
from codeforge.services.run_cache import CachingEventStore, RunCache, watched_cache
from codeforge.services.run_control import RunControl
from codeforge.services.run_history import RunHistory
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
    """The choice, with the chosen factory started (docker's warm pool) until shutdown."""
    required = ISOLATION if settings.sandbox.require_isolation else ()
    choice = await choose_sandbox(settings.sandbox.kind, factories, required=required)
    chosen = factories[choice.kind] if choice.kind is not None and choice.usable else None
    if chosen is not None:
        await chosen.start()
    try:
        yield choice
    finally:
        if chosen is not None:
            await chosen.close()


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


async def running_llm(settings: Settings) -> AsyncIterator[LanguageModel]:
    model = OpenAICompatibleModel(
        breaker_failure_threshold=settings.llm.breaker_failure_threshold,
        breaker_reset_timeout=settings.llm.breaker_reset_timeout,
    )
    try:
        yield model
    finally:
        await model.close()


async def running_git_hosts(settings: Settings) -> AsyncIterator[dict[str, GitHost]]:
    """One adapter per kind of git host; a project's `git_host.kind` picks one."""
    d = settings.delivery
    hosts: dict[str, GitHost] = {
        cls.kind: cls(timeout=d.host_timeout, max_retries=d.host_max_retries)
        for cls in (GitHubHost, GitLabHost, GiteaHost)
    }
    try:
        yield hosts
    finally:
        for host in hosts.values():
            await host.close()


async def running_llm_socket(
    proxy: LlmProxy, watch: ProxyWatch, path: Path
) -> AsyncIterator[LlmProxySocket]:
    """The proxy on this process's unix socket, for sandboxed backends, until shutdown."""
    server = LlmProxySocket(lambda: proxy, watch, path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def webhook_secret(secrets: Secrets, settings: Settings) -> Callable[[], str | None]:
    name = settings.approvals.webhook_secret
    return lambda: secrets.get(name) if name else None


def embedder_kind(settings: Settings) -> str:
    kind = settings.context.embeddings
    if kind == "auto":
        # Semantic search when the optional extra is installed; keyword + graph otherwise.
        return "local" if local_embeddings_installed() else "none"
    return kind


def openai_embedder(llm: LanguageModel, settings: Settings, secrets: Secrets) -> object:
    name = settings.context.embedding_model
    model = next(m for m in settings.models if m.name == name)  # checked at load
    endpoint = ModelEndpoint(
        base_url=model.base_url,
        model=model.model or model.name,
        api_key=secrets.require(model.api_key_secret) if model.api_key_secret else "",
        timeout=settings.llm.timeout,
        max_retries=settings.llm.max_retries,
    )
    return OpenAICompatibleEmbedder(llm, endpoint, name)


def code_search_factory(
    settings: Settings, engine: ContextEngine
) -> Callable[[str], EngineCodeSearch] | None:
    if not settings.context.agent_tools:
        return None
    return lambda root: EngineCodeSearch(engine, root)


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
    stored_events = providers.Singleton(PostgresEventStore, db_pool)
    outbox = providers.Singleton(PostgresOutbox, db_pool)
    dead_letter_store = providers.Singleton(PostgresDeadLetterStore, db_pool)
    event_feed = providers.Selector(
        settings.provided.feed.kind,
        postgres=providers.Resource(running_feed, db_pool),
        nats=providers.Resource(running_nats_feed, settings.provided.queue.url),
    )
    # Every part of the process reads and writes runs through this one instance, so
    # its cache sees each write of the process (read-your-writes); the feed tells it
    # of other processes' writes.
    run_cache = providers.Singleton(
        watched_cache,
        providers.Singleton(
            RunCache,
            max_entries=settings.provided.api.run_cache_size,
            max_age=settings.provided.api.run_cache_max_age,
        ),
        event_feed,
    )
    event_store = providers.Singleton(CachingEventStore, stored_events, run_cache)
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
                warm_pool=settings.provided.sandbox.docker_warm_pool,
                scratch_bytes=settings.provided.sandbox.docker_scratch_bytes,
                storage_quota=settings.provided.sandbox.docker_storage_quota,
                writable_root=settings.provided.sandbox.docker_writable_root,
            ),
            SandboxMode.HYBRID: providers.Singleton(
                HybridSandboxFactory,
                inner=providers.Selector(
                    settings.provided.sandbox.hybrid_isolation,
                    bwrap=providers.Singleton(BwrapSandboxFactory),
                    mount=providers.Singleton(MountSandboxFactory),
                ),
                layer=settings.provided.sandbox.hybrid_layer,
                layers_directory=settings.provided.sandbox.hybrid_layers_dir,
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
        git=git,
        secrets=secrets,
    )
    event_streams = providers.Singleton(
        EventStreams, runs, event_feed, settings.provided.api.stream_heartbeat
    )

    # --- language models ----------------------------------------------------
    llm = providers.Selector(
        settings.provided.llm.kind,
        openai=providers.Resource(running_llm, settings),
    )
    models = providers.Singleton(
        Models, model_store, llm=llm, secrets=secrets, llm_settings=settings.provided.llm
    )
    model_health = providers.Singleton(
        ModelHealth,
        model_store,
        llm,
        secrets,
        interval=settings.provided.llm.health_interval,
        timeout=settings.provided.llm.health_timeout,
    )

    # --- code intelligence (codeforge/context) ------------------------------
    file_tree_context = providers.Singleton(FileTreeContext)
    embedder = providers.Selector(
        providers.Callable(embedder_kind, settings),
        local=providers.Singleton(LocalEmbedder),
        openai=providers.Singleton(openai_embedder, llm, settings, secrets),
        none=providers.Object(None),
    )
    context_engine = providers.Singleton(
        ContextEngine, providers.Callable(lambda p: p / "cache" / "context", data_path), embedder
    )
    code_graph_store = providers.Singleton(PostgresCodeGraphStore, db_pool)
    context_provider = providers.Selector(
        providers.Callable(lambda s: "engine" if s.context.in_prompts else "tree", settings),
        engine=providers.Singleton(RepoContextProvider, context_engine, file_tree_context),
        tree=file_tree_context,
    )
    project_context = providers.Singleton(
        ProjectContext, projects, context_engine, code_graph_store
    )

    # --- the agent runtime --------------------------------------------------
    cost_ledger = providers.Singleton(PostgresCostLedger, db_pool)
    checkpoint_store = providers.Singleton(PostgresCheckpointStore, db_pool)
    artifact_store = providers.Singleton(PostgresArtifactStore, db_pool)
    # --- the permission policy (docs/policy.md) -----------------------------
    policy_store = providers.Singleton(PostgresPolicyStore, db_pool)
    policy_presets = providers.Singleton(PolicyPresets, settings.provided.policy.presets_dir)
    effective_policies = providers.Singleton(
        EffectivePolicies,
        policy_store,
        policy_presets,
        project_store,
        agent_store,
        event_store,
        default_profile=settings.provided.policy.default_profile,
        cache_seconds=settings.provided.policy.cache_seconds,
    )
    policy_gate = providers.Singleton(PolicyEngineGate, effective_policies)
    # Defined above the policy providers (others need them earlier); a saved
    # `policy_profile` is checked against the policies and presets from here.
    projects.add_kwargs(check_profile=effective_policies.provided.check_profile_name)
    agents.add_kwargs(check_profile=effective_policies.provided.check_profile_name)
    policies = providers.Singleton(
        Policies,
        policy_store,
        effective_policies,
        project_store,
        agent_store,
        event_store,
        default_mode=providers.Callable(default_mode, sandbox_choice),
    )
    checkpointer = providers.Singleton(
        BlobCheckpointer,
        checkpoint_store,
        git,
        providers.Callable(lambda p: p / "checkpoints", data_path),
        max_file_bytes=settings.provided.checkpoints.max_file_bytes,
        keep_per_run=settings.provided.checkpoints.keep_per_run,
    )
    checkpoint_janitor = providers.Singleton(
        CheckpointJanitor, checkpoint_store, interval=settings.provided.checkpoints.gc_interval
    )
    run_workspaces = providers.Singleton(
        RunWorkspaces, git, projects, providers.Callable(lambda p: p / "runs", data_path)
    )
    git_hosts = providers.Resource(running_git_hosts, settings)
    delivery = providers.Singleton(
        Delivery,
        git,
        artifact_store,
        secrets=secrets,
        hosts=git_hosts,
        public_url=settings.provided.http.public_url,
    )
    agent_stores = providers.Singleton(
        AgentStores, task_store, agent_store, project_store, tenant_store, model_store, event_store
    )
    costs = providers.Singleton(Costs, cost_ledger)
    artifacts = providers.Singleton(Artifacts, artifact_store, event_store)
    approvals = providers.Singleton(RunApprovals, event_store, run_control)
    audit = providers.Singleton(Audit, event_store)
    checkpoint_diffs = providers.Singleton(
        CheckpointDiffs, event_store, checkpoint_store, projects.provided.base_files
    )
    run_history = providers.Singleton(
        RunHistory,
        runs,
        event_store,
        event_log,
        checkpoint_store,
        run_control,
        base_has=projects.provided.base_has,
    )

    llm_proxy = providers.Singleton(
        LlmProxy,
        llm=llm,
        events=event_store,
        event_log=event_log,
        agents=agent_store,
        projects=project_store,
        tenants=tenant_store,
        models=model_store,
        ledger=cost_ledger,
        secrets=secrets,
        signing_key=providers.Callable(signing_key_from, secrets),
        settings=settings.provided.llm,
        max_output_tokens=settings.provided.agent.max_output_tokens,
    )

    # The proxy as sandboxed backends reach it (network mode llm): a socket per process.
    proxy_watch = providers.Singleton(ProxyWatch)
    llm_socket_path = providers.Singleton(
        lambda s: socket_path(s.data_path, s.llm.proxy_socket), settings
    )
    llm_socket = providers.Resource(running_llm_socket, llm_proxy, proxy_watch, llm_socket_path)
    aider_install = providers.Singleton(
        AiderInstall, settings.provided.aider, providers.Callable(lambda p: p / "tools", data_path)
    )
    aider_backend = providers.Singleton(
        AiderBackend,
        install=aider_install,
        watch=proxy_watch,
        proxy=llm_proxy,
        socket=llm_socket_path,
        gate=policy_gate,
        checkpoints=checkpointer,
        git=git,
        scratch_dir=providers.Callable(lambda p: p / "checkpoints", data_path),
        context=context_provider,
        feed=event_feed,
        agent_settings=settings.provided.agent,
        settings=settings.provided.aider,
    )

    approval_notifier = providers.Selector(
        providers.Callable(lambda s: "webhook" if s.approvals.webhook_url else "none", settings),
        webhook=providers.Singleton(
            WebhookNotifier,
            settings.provided.approvals.webhook_url,
            secret=providers.Callable(webhook_secret, secrets, settings),
        ),
        none=providers.Singleton(NoNotifier),
    )

    # --- workers ------------------------------------------------------------
    # Tests override the executor with a scripted stand-in where the agent is not the point.
    run_executor = providers.Singleton(
        AgentExecutor,
        stores=agent_stores,
        secrets=secrets,
        workspaces=run_workspaces,
        sandboxes=sandbox_factories,
        llm=llm,
        gate=policy_gate,
        checkpoints=checkpointer,
        ledger=cost_ledger,
        delivery=delivery,
        context=context_provider,
        code_search=providers.Callable(code_search_factory, settings, context_engine),
        feed=event_feed,
        agent_settings=settings.provided.agent,
        llm_settings=settings.provided.llm,
        approval_settings=settings.provided.approvals,
        notifier=approval_notifier,
        replay_model=providers.Object(ReplayModel),
        public_url=settings.provided.http.public_url,
        aider=aider_backend,
    )
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
        LeaseReaper,
        event_store,
        event_log,
        ledger=cost_ledger,
        max_attempts=settings.provided.worker.max_attempts,
        interval=settings.provided.worker.reaper_interval,
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
