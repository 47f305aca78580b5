"""The typed shape of CodeForge's configuration.

Every field here has a default equal to the built-in layer
(`config/codeforge.yaml`; a test keeps the two identical) and is documented in
`config/codeforge.example.yaml`. Loading and layering live in `codeforge.config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

Port = Annotated[int, Meta(ge=1, le=65535)]
PortOrAuto = Annotated[int, Meta(ge=0, le=65535)]
Seconds = Annotated[float, Meta(gt=0)]
PositiveInt = Annotated[int, Meta(ge=1)]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class Section(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every settings section: immutable, and unknown keys are errors."""


class HttpSettings(Section, frozen=True):
    host: str = "127.0.0.1"
    port: Port = 8080
    # The address people reach this server at (https://codeforge.example.com), for links
    # in approval notices and pull requests; empty: not known (runs named, not linked).
    public_url: str = ""
    # Bodies larger than this are refused with 413 before they are read whole.
    max_body_bytes: PositiveInt = 10 * 1024 * 1024


class RateLimitSettings(Section, frozen=True):
    """Token buckets per client IP and per API key; reloadable on SIGHUP."""

    enabled: bool = True
    per_ip_per_minute: PositiveInt = 600
    per_key_per_minute: PositiveInt = 1200
    burst: PositiveInt = 60


class ApiSettings(Section, frozen=True):
    # How long a stored response answers a repeated Idempotency-Key.
    idempotency_ttl: Seconds = 86400.0
    # How long a duplicate request waits for the first one to finish before 409.
    idempotency_wait: Seconds = 10.0
    # Lifetime of a browser session cookie.
    session_ttl: Seconds = 43200.0
    # Seconds between SSE/WebSocket heartbeats on an idle stream.
    stream_heartbeat: Seconds = 15.0
    # Seconds an authenticated API key is remembered by a process (0: look it up on
    # every request). A key revoked in another process stops working within this time.
    key_cache_ttl: Annotated[float, Meta(ge=0)] = 5.0
    # Runs a process keeps in memory to answer reads of one run, least recently read
    # dropped first (0: read the database every time). The event feed keeps them
    # current: the writing process at once, others within milliseconds.
    run_cache_size: Annotated[int, Meta(ge=0)] = 10_000
    # Seconds a kept run is trusted at most: a backstop for changes made around the
    # event store (an UPDATE in psql).
    run_cache_max_age: Seconds = 10.0


class LogSettings(Section, frozen=True):
    level: LogLevel = "info"
    format: Literal["auto", "json", "console"] = "auto"
    queue_size: Annotated[int, Meta(ge=100)] = 10_000


class PoolSettings(Section, frozen=True):
    min_size: Annotated[int, Meta(ge=0)] = 2
    max_size: PositiveInt = 15
    max_lifetime: Seconds = 3600.0
    max_idle: Seconds = 600.0
    health_check_period: Seconds = 60.0
    # How long a request waits for a free connection before failing.
    timeout: Seconds = 30.0


class EmbeddedDatabaseSettings(Section, frozen=True):
    # Empty means <data_dir>/postgres.
    dir: str = ""
    # 0 picks a free loopback port at each start.
    port: PortOrAuto = 0
    start_timeout: Seconds = 60.0


class DatabaseSettings(Section, frozen=True):
    # Empty means: run the embedded PostgreSQL under the data dir.
    url: str = ""
    migrate_on_start: bool = True
    pool: PoolSettings = msgspec.field(default_factory=PoolSettings)
    embedded: EmbeddedDatabaseSettings = msgspec.field(default_factory=EmbeddedDatabaseSettings)


class QueueSettings(Section, frozen=True):
    kind: Literal["memory", "nats"] = "memory"
    url: str = "nats://127.0.0.1:4222"
    # JetStream streams are <stream_name>_WORK and <stream_name>_FANOUT.
    stream_name: str = "CODEFORGE"
    # A failing handler's message comes again after retry_delay seconds, at most
    # max_retries times; then it goes to <subject>.dlq.
    max_retries: Annotated[int, Meta(ge=0)] = 3
    retry_delay: Seconds = 2.0
    # Seconds a NATS delivery may stay unacknowledged before it is redelivered.
    ack_wait: Seconds = 30.0
    # Seconds a circuit breaker stays open after failure_threshold publish failures.
    breaker_failure_threshold: PositiveInt = 5
    breaker_reset_timeout: Seconds = 30.0
    # Seconds between outbox relay passes (it is also woken when this process writes).
    relay_interval: Seconds = 1.0


class FeedSettings(Section, frozen=True):
    """The live event feed between processes (the log itself is always PostgreSQL)."""

    # postgres: LISTEN/NOTIFY (every process shares the database anyway); nats: core
    # NATS pub/sub on queue.url, for deployments that keep database connections few.
    kind: Literal["postgres", "nats"] = "postgres"


class SandboxSettings(Section, frozen=True):
    # auto: bwrap where bubblewrap works, else mount.
    kind: Literal["auto", "mount", "bwrap", "docker", "hybrid"] = "auto"
    # Refuse sandboxes without filesystem, network and process isolation (mount):
    # `serve` reports it at start and in /health/ready instead of letting runs fail late.
    require_isolation: bool = False
    # For kind docker: the engine (empty: $DOCKER_HOST or the default socket) and the
    # image each run's container starts from (it must be present: no pulls happen).
    docker_host: str = ""
    docker_image: str = "debian:bookworm-slim"
    # Containers kept started per template so a run does not wait for one (0: none).
    # Needs root (the workspace is bound in at open); without it opens are cold.
    docker_warm_pool: Annotated[int, Meta(ge=0, le=16)] = 0
    # Bytes of each of /tmp and HOME in a container (tmpfs; counts against its memory).
    docker_scratch_bytes: PositiveInt = 256 * 1024 * 1024
    # Storage quota in bytes of each container's writable layer (0: none). Only where
    # the storage driver enforces one (overlay2 on xfs with pquota): otherwise refused.
    docker_storage_quota: Annotated[int, Meta(ge=0)] = 0
    # Let commands write the container's root filesystem (install packages); false:
    # read-only, only the workspace, /tmp and HOME are writable.
    docker_writable_root: bool = False
    # For kind hybrid: how its commands are isolated (bwrap, or mount: none at all),
    # where its layers live (empty: the system temp directory) and which kind of layer
    # (auto: an overlay mount where CodeForge may mount, i.e. as root, else a copy).
    hybrid_isolation: Literal["bwrap", "mount"] = "bwrap"
    hybrid_layer: Literal["auto", "overlay", "copy"] = "auto"
    hybrid_layers_dir: str = ""


class PolicySettings(Section, frozen=True):
    # The profile of runs whose project and agent both say "default": a preset
    # (config/policies/<name>.yaml) or a tenant-wide stored profile of that name.
    default_profile: str = "headless-safe-sandbox"
    # How long a process reuses a run's compiled policy before it re-reads the stored
    # policies; a change made through this process applies at once.
    cache_seconds: Annotated[float, Meta(ge=0)] = 5.0
    # A folder of preset YAML files that replaces the built-in config/policies ("").
    presets_dir: str = ""


class LlmSettings(Section, frozen=True):
    # openai: any OpenAI-compatible endpoint (the only adapter so far).
    kind: Literal["openai"] = "openai"
    base_url: str = ""
    # The name of a secret (CODEFORGE_SECRET_<NAME> or the file store), never the key itself.
    api_key_secret: str = ""
    default_model: str = ""
    # Seconds one attempt of a model call may take, until its reply is complete.
    timeout: Seconds = 120.0
    # Attempts after the first for 429, 5xx, timeouts and lost connections.
    max_retries: Annotated[int, Meta(ge=0, le=10)] = 3
    # A model endpoint's circuit breaker opens after this many failures in a row.
    breaker_failure_threshold: PositiveInt = 5
    breaker_reset_timeout: Seconds = 30.0
    # A model with no price cannot be held against a budget; runs with a budget refuse
    # it unless this is true (their model calls then cost "unknown").
    allow_unpriced_models: bool = False
    # Seconds between background health checks of the config file's models (a free
    # `GET /models` per endpoint, shown in /health/ready); 0: only on demand.
    health_interval: Annotated[float, Meta(ge=0)] = 60.0
    # Seconds one health check (background, or POST /api/v1/models/{id}/check) may take.
    health_timeout: Seconds = 15.0
    # The unix socket where a worker serves the LLM proxy to sandboxed backends (aider);
    # empty: <data_dir>/run/llm-proxy-<pid>.sock (one per process).
    proxy_socket: str = ""


class AgentSettings(Section, frozen=True):
    """The native agent loop's defaults; a run's limits (max steps, wall time) win."""

    # Used when no tenant, project, agent or run sets max_steps / max_wall_seconds.
    default_max_steps: PositiveInt = 50
    default_wall_seconds: Seconds = 600.0
    # The most tokens one model reply may use (fewer when a budget is nearly spent).
    max_output_tokens: PositiveInt = 4096
    # Tokens of repository context (the repo map and retrieved code) in the first prompt.
    context_tokens: PositiveInt = 4000
    # Compact old tool output when the conversation passes this share of the window.
    compact_at: Annotated[float, Meta(gt=0.1, lt=1.0)] = 0.8
    # Unproductive steps in a row before a corrective message, and as many again to stop.
    stall_window: PositiveInt = 5
    # Characters of one tool's output the model is shown (head and tail kept).
    tool_output_chars: Annotated[int, Meta(ge=1000)] = 30_000
    # Default and largest timeout of one shell command, in seconds.
    bash_timeout: Seconds = 120.0
    bash_max_timeout: Seconds = 600.0


AiderVersion = Annotated[str, Meta(pattern=r"^[0-9][0-9A-Za-z.+!-]*$")]


class AiderSettings(Section, frozen=True):
    """The aider backend (agents with `backend: aider`): the aider CLI in its own venv."""

    # A virtual environment with aider-chat installed, used as it is (never created or
    # changed). Empty: CodeForge creates one under <data_dir>/tools on first use.
    venv: str = ""
    # The aider-chat release installed into the venv CodeForge creates.
    version: AiderVersion = "0.86.2"
    # The Python that creates that venv (aider-chat 0.86 needs 3.10-3.12); empty: the
    # interpreter running CodeForge.
    python: str = ""
    # Seconds creating the venv may take before it counts as failed.
    install_timeout: Seconds = 900.0
    # Create the venv in the background when a worker starts, not at the first aider run.
    install_at_start: bool = False
    # How aider asks the model for edits (diff: SEARCH/REPLACE blocks).
    edit_format: Literal["diff", "diff-fenced", "udiff", "whole"] = "diff"


class ModelSettings(Section, frozen=True):
    """A model from the config file: registered at start as `source: config`, read-only."""

    name: str
    base_url: str
    # The provider's model id; empty means the same as `name`.
    model: str = ""
    api_key_secret: str = ""
    input_price_per_mtok: float | None = None
    output_price_per_mtok: float | None = None
    context_window: PositiveInt = 128_000


class ContextSettings(Section, frozen=True):
    """Code intelligence: the repo map, search and code graph (codeforge/context)."""

    # auto: local MiniLM when the [embeddings] extra is installed, else none (keyword,
    # repo map and graph only); openai: `embedding_model`, a model from `models:`.
    embeddings: Literal["auto", "local", "openai", "none"] = "auto"
    embedding_model: str = ""
    # A run's first prompt gets the repo map and retrieved code (else the file tree).
    in_prompts: bool = True
    # The agent gets the find_context and code_graph tools.
    agent_tools: bool = True


class CheckpointSettings(Section, frozen=True):
    """Checkpoints of runs' worktrees (blobs in PostgreSQL), and their bounds."""

    # Larger files are listed in a checkpoint but not stored (a restore leaves them be).
    max_file_bytes: PositiveInt = 10 * 1024 * 1024
    # A run keeps its first checkpoint and this many newest; older ones are pruned.
    keep_per_run: PositiveInt = 200
    # Seconds between collections of blobs no checkpoint uses any more.
    gc_interval: Seconds = 3600.0


class ApprovalSettings(Section, frozen=True):
    """What happens when the policy gate asks before a tool call."""

    # Seconds a run waits for an answer; then the ask counts as denied.
    timeout_seconds: Seconds = 600.0
    # No human approver: asks follow the auto-approval rules at once (codeforge run is
    # always headless; a run may ask for it with policy_overrides.headless: true).
    headless: bool = False
    # POSTed a JSON notice for every ask (empty: no webhook).
    webhook_url: str = ""
    # The NAME of a secret that signs webhook bodies (X-CodeForge-Signature), or empty.
    webhook_secret: str = ""


class DeliverySettings(Section, frozen=True):
    """Delivering runs to git hosts (deliver: branch, pr)."""

    # Seconds one git host API request may take, and retries of 5xx, lost connections
    # and short rate-limit waits.
    host_timeout: Seconds = 30.0
    host_max_retries: Annotated[int, Meta(ge=0, le=10)] = 2


class WorkerSettings(Section, frozen=True):
    """Workers take runs off the queue and hold a lease on each while it executes."""

    # Seconds a lease lasts without a heartbeat; the reaper ends a run whose lease ran out.
    lease_seconds: Seconds = 120.0
    heartbeat_seconds: Seconds = 30.0
    reaper_interval: Seconds = 15.0
    # A run whose worker was lost is resumed by another, unless it was already started
    # this many times (then it ends failed: worker_lost).
    max_attempts: PositiveInt = 3


class ShutdownSettings(Section, frozen=True):
    """Upper bounds for each shutdown phase; a phase that overruns is logged and skipped."""

    http_timeout: Seconds = 10.0
    work_timeout: Seconds = 30.0
    queue_timeout: Seconds = 10.0
    pool_timeout: Seconds = 10.0


class Settings(Section, frozen=True):
    data_dir: str = "./.codeforge"
    service_name: str = "codeforge"
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    rate_limit: RateLimitSettings = msgspec.field(default_factory=RateLimitSettings)
    api: ApiSettings = msgspec.field(default_factory=ApiSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    queue: QueueSettings = msgspec.field(default_factory=QueueSettings)
    feed: FeedSettings = msgspec.field(default_factory=FeedSettings)
    sandbox: SandboxSettings = msgspec.field(default_factory=SandboxSettings)
    policy: PolicySettings = msgspec.field(default_factory=PolicySettings)
    llm: LlmSettings = msgspec.field(default_factory=LlmSettings)
    models: list[ModelSettings] = msgspec.field(default_factory=list)
    agent: AgentSettings = msgspec.field(default_factory=AgentSettings)
    aider: AiderSettings = msgspec.field(default_factory=AiderSettings)
    approvals: ApprovalSettings = msgspec.field(default_factory=ApprovalSettings)
    checkpoints: CheckpointSettings = msgspec.field(default_factory=CheckpointSettings)
    context: ContextSettings = msgspec.field(default_factory=ContextSettings)
    delivery: DeliverySettings = msgspec.field(default_factory=DeliverySettings)
    worker: WorkerSettings = msgspec.field(default_factory=WorkerSettings)
    shutdown: ShutdownSettings = msgspec.field(default_factory=ShutdownSettings)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def embedded_database_path(self) -> Path:
        configured = self.database.embedded.dir
        return (
            Path(configured).expanduser().resolve() if configured else self.data_path / "postgres"
        )

    def problems(self) -> list[tuple[str, str]]:
        """Rules that span fields: (dotted key, what is expected) for each violation."""
        found: list[tuple[str, str]] = []
        pool = self.database.pool
        if pool.min_size > pool.max_size:
            found.append(
                ("database.pool.min_size", f"at most database.pool.max_size ({pool.max_size})")
            )
        url = self.database.url
        if url and not url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            found.append(
                ("database.url", "a PostgreSQL URL such as postgresql://user@host:5432/db")
            )
        if self.worker.heartbeat_seconds >= self.worker.lease_seconds:
            found.append(
                (
                    "worker.heartbeat_seconds",
                    f"less than worker.lease_seconds ({self.worker.lease_seconds:g})",
                )
            )
        if self.context.embeddings == "openai" and all(
            m.name != self.context.embedding_model for m in self.models
        ):
            found.append(
                ("context.embedding_model", "the name of a model under `models:` (kind openai)")
            )
        if not self.queue.url.startswith(("nats://", "tls://")) and self.queue.kind == "nats":
            found.append(("queue.url", "a NATS URL such as nats://127.0.0.1:4222"))
        public = self.http.public_url
        if public and (
            not public.startswith(("http://", "https://")) or any(c.isspace() for c in public)
        ):
            found.append(("http.public_url", "an http(s) URL such as https://codeforge.example"))
        return found
