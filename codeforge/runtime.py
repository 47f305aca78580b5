"""The running application: what `codeforge serve` starts and stops.

Start opens the database (embedded or configured), applies migrations, loads
the models from the config, issues the first admin key of a new install, and
registers readiness probes and shutdown actions. Stop runs the shutdown
sequence. Both are idempotent, so the CLI and tests can share them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import structlog

from codeforge.agent.backends.aider_install import AiderInstall, AiderProbe
from codeforge.agent.llm_proxy import LlmProxy
from codeforge.container import Container
from codeforge.context.projects import ProjectContext
from codeforge.http.idempotency import Idempotency
from codeforge.http.rate_limits import RateLimits
from codeforge.services.agents import Agents
from codeforge.services.api_keys import ApiKeys
from codeforge.services.approvals import RunApprovals
from codeforge.services.artifacts import Artifacts
from codeforge.services.audit import Audit
from codeforge.services.checkpoint_diffs import CheckpointDiffs
from codeforge.services.checkpoints import CheckpointJanitor
from codeforge.services.costs import Costs
from codeforge.services.dead_letters import DeadLetters
from codeforge.services.event_streams import EventStreams
from codeforge.services.lease_reaper import LeaseReaper
from codeforge.services.model_health import ModelHealth
from codeforge.services.models import Models
from codeforge.services.outbox_relay import OutboxRelay
from codeforge.services.policies import Policies
from codeforge.services.projects import Projects
from codeforge.services.readiness import Readiness
from codeforge.services.run_history import RunHistory
from codeforge.services.run_worker import RunWorker
from codeforge.services.runs import Runs
from codeforge.services.secrets import Secrets
from codeforge.services.sessions import BrowserSessions
from codeforge.services.shutdown import Phase, PhaseOutcome, ShutdownSequence
from codeforge.services.tasks import Tasks
from codeforge.settings import ModelSettings, Settings

log = structlog.get_logger("codeforge.runtime")


@dataclass(frozen=True)
class Services:
    """Everything the API's handlers and guards use, resolved once at start."""

    api_keys: ApiKeys
    sessions: BrowserSessions
    projects: Projects
    tasks: Tasks
    agents: Agents
    models: Models
    model_health: ModelHealth
    runs: Runs
    event_streams: EventStreams
    secrets: Secrets
    rate_limits: RateLimits
    idempotency: Idempotency
    dead_letters: DeadLetters
    costs: Costs
    artifacts: Artifacts
    llm_proxy: LlmProxy
    approvals: RunApprovals
    audit: Audit
    run_history: RunHistory
    context: ProjectContext
    policies: Policies
    checkpoint_diffs: CheckpointDiffs


def configured_models(settings: Settings) -> list[ModelSettings]:
    """`models:`, plus `llm.default_model` at `llm.base_url` when both are set."""
    models = list(settings.models)
    llm = settings.llm
    if llm.base_url and llm.default_model and all(m.name != llm.default_model for m in models):
        models.append(
            ModelSettings(
                name=llm.default_model, base_url=llm.base_url, api_key_secret=llm.api_key_secret
            )
        )
    return models


class Runtime:
    def __init__(self, container: Container) -> None:
        self.container = container
        self._started = False
        self._start_lock = asyncio.Lock()
        self._services: Services | None = None
        self.admin_key_file: Path | None = None

    @property
    def settings(self) -> Settings:
        settings: Settings = self.container.settings()
        return settings

    @property
    def readiness(self) -> Readiness:
        readiness: Readiness = self.container.readiness()
        return readiness

    @property
    def shutdown(self) -> ShutdownSequence:
        shutdown: ShutdownSequence = self.container.shutdown()
        return shutdown

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("the runtime is not started")
        return self._services

    @property
    def rate_limits(self) -> RateLimits:
        # Needed to build the app, before start; it holds no connection.
        rate_limits: RateLimits = self.container.rate_limits()
        return rate_limits

    async def start(self, *, issue_first_admin_key: bool = True, with_worker: bool = True) -> None:
        async with self._start_lock:
            if self._started:
                return
            # Registered first so a start that fails half-way still closes what it opened.
            self.shutdown.register(Phase.CLOSE_POOL, "database", self._close_resources)
            self._started = True
            await self.container.db_pool()
            if self.settings.database.migrate_on_start:
                migrator = await self.container.migrator()
                applied = await asyncio.to_thread(migrator.apply)
                if applied:
                    log.info("migrations applied", migrations=applied)
            self.readiness.register(await self.container.database_probe())
            await self._start_queue()
            self.readiness.register(await self.container.sandbox_probe())
            self._services = await self._resolve_services()
            await self._services.models.load_from_config(configured_models(self.settings))
            self._start_model_health(self._services.model_health)
            if issue_first_admin_key:
                self.admin_key_file = await self._services.api_keys.ensure_first_admin(
                    self.settings.data_path
                )
            await self._start_workers(with_worker)

    async def _start_queue(self) -> None:
        queue = await self.container.queue()
        self.readiness.register(await self.container.queue_probe())
        relay: OutboxRelay = await self.container.outbox_relay()
        relay.start()
        # Records every dead letter in PostgreSQL (one recorder per pattern, shared by all
        # processes); the queue's drain stops it, after the other handlers finished.
        dead_letters: DeadLetters = await self.container.dead_letters()
        await dead_letters.start()
        # Order matters: no new jobs go out once work is suspending, then the queue
        # finishes its deliveries before the pool they may need is closed.
        self.shutdown.register(Phase.SUSPEND_WORK, "outbox relay", relay.stop)
        self.shutdown.register(
            Phase.DRAIN_QUEUE,
            "queue",
            lambda: queue.drain(self.settings.shutdown.queue_timeout),
        )

    def _start_model_health(self, health: ModelHealth) -> None:
        # Advisory: a model that is down is reported, but the service stays ready.
        self.readiness.register(health.probe, critical=False)
        health.start()
        self.shutdown.register(Phase.SUSPEND_WORK, "model health", health.stop)

    async def _start_workers(self, with_worker: bool) -> None:
        reaper: LeaseReaper = await self.container.lease_reaper()
        reaper.start()
        janitor: CheckpointJanitor = await self.container.checkpoint_janitor()
        janitor.start()
        self.shutdown.register(Phase.SUSPEND_WORK, "checkpoint janitor", janitor.stop)
        self.shutdown.register(Phase.SUSPEND_WORK, "lease reaper", reaper.stop)
        if not with_worker:
            return
        # Sandboxed backends (aider) reach the model through this process's proxy socket.
        await self.container.llm_socket()
        aider: AiderInstall = self.container.aider_install()
        self.readiness.register(AiderProbe(aider))
        self.shutdown.register(Phase.SUSPEND_WORK, "aider install", aider.close)
        if self.settings.aider.install_at_start:
            aider.start_background()
        worker: RunWorker = await self.container.run_worker()
        await worker.start()
        self.shutdown.register(Phase.SUSPEND_WORK, "run worker", worker.suspend_all)

    async def stop(self, reason: str = "requested") -> list[PhaseOutcome]:
        return await self.shutdown.run(reason)

    def apply_reloaded(self, settings: Settings) -> None:
        """The reloadable parts besides the log level: rate limits and secrets."""
        self.rate_limits.reconfigure(settings.rate_limit)
        if self._services is not None:
            self._services.secrets.reload()

    async def _resolve_services(self) -> Services:
        c = self.container
        return Services(
            api_keys=await c.api_keys(),
            sessions=await c.sessions(),
            projects=await c.projects(),
            tasks=await c.tasks(),
            agents=await c.agents(),
            models=await c.models(),
            model_health=await c.model_health(),
            runs=await c.runs(),
            event_streams=await c.event_streams(),
            secrets=c.secrets(),
            rate_limits=self.rate_limits,
            idempotency=await c.idempotency(),
            dead_letters=await c.dead_letters(),
            costs=await c.costs(),
            artifacts=await c.artifacts(),
            llm_proxy=await c.llm_proxy(),
            approvals=await c.approvals(),
            audit=await c.audit(),
            run_history=await c.run_history(),
            context=await c.project_context(),
            policies=await c.policies(),
            checkpoint_diffs=await c.checkpoint_diffs(),
        )

    async def _close_resources(self) -> None:
        result = self.container.shutdown_resources()
        if result is not None:
            await result
