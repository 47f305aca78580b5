"""The run event catalogue: the log that is the source of truth.

Events are past tense, frozen, tagged msgspec Structs. The tag (`type`) and
`SCHEMA_VERSION` are stored beside the payload. Stored events live forever, so:
a new field always has a default; a change that a default cannot express bumps
`SCHEMA_VERSION` and adds an `upcast` step, and `decode_event` upgrades old
payloads on read. Each issue adds its own types here (ARCHITECTURE.md, "Runs,
events and the feed").
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

import msgspec
from msgspec import Struct

from codeforge.domain.limits import Limits


class Event(Struct, frozen=True, kw_only=True, tag_field="type", tag=True):
    SCHEMA_VERSION: ClassVar[int] = 1

    @classmethod
    def upcast(cls, payload: dict[str, Any], version: int) -> dict[str, Any]:
        """Turn a payload stored at `version` into the current shape (override per type)."""
        return payload


class RunRequested(Event, frozen=True, kw_only=True):
    project_id: uuid.UUID
    task_id: uuid.UUID
    agent_id: uuid.UUID
    mode: str
    deliver: str
    # The effective limits: the tightest of tenant, project, agent and request.
    limits: Limits = Limits()
    policy_overrides: dict[str, Any] = {}
    requested_by: uuid.UUID | None = None
    # A fork continues another run's conversation and files from its event at fork_seq.
    forked_from: uuid.UUID | None = None
    fork_seq: int | None = None
    # A replay re-executes another run with its recorded model responses.
    replay_of: uuid.UUID | None = None


class RunStarted(Event, frozen=True, kw_only=True):
    worker: str
    lease_expires_at: datetime


class HeartbeatRecorded(Event, frozen=True, kw_only=True):
    worker: str
    lease_expires_at: datetime


class RunSuspended(Event, frozen=True, kw_only=True):
    reason: str


class RunResumed(Event, frozen=True, kw_only=True):
    worker: str
    lease_expires_at: datetime


class RunCompleted(Event, frozen=True, kw_only=True):
    summary: str = ""
    # What was delivered: a patch, a commit sha, a branch or a pull request URL.
    artifact: dict[str, Any] = {}
    cost_usd: Decimal = Decimal(0)


class RunFailed(Event, frozen=True, kw_only=True):
    reason: str
    detail: str = ""


class RunCancelled(Event, frozen=True, kw_only=True):
    reason: str = "cancelled by user"


# --- the agent's steps (agent-runtime issue) ----------------------------------------
#
# Together these rebuild the conversation (`codeforge.agent.conversation`): the
# assembled prompt, every model reply, every tool result, every nudge and every
# compaction. Text is stored complete up to the caps the runtime applies; the
# token-by-token and chunk-by-chunk stream is ephemeral (live only).


class WorkspacePrepared(Event, frozen=True, kw_only=True):
    """The run's own git worktree and branch, made from the project's clone."""

    path: str
    branch: str
    base_commit: str


class PromptAssembled(Event, frozen=True, kw_only=True):
    """What the model is first given: enough to rebuild the conversation's start."""

    model: str
    system: str
    user: str
    tools: list[str] = []
    # Where each part came from: instructions files, the context pack's summary.
    sources: dict[str, Any] = {}
    context_tokens: int = 0


class ContextPackBuilt(Event, frozen=True, kw_only=True):
    """What of the repository went into the first prompt, and why (its text is in
    `PromptAssembled`): provenance for the inspector and for reproducing the prompt."""

    provider: str
    query: str = ""
    token_budget: int = 0
    tokens: int = 0
    # Each {"path", "start_line", "end_line", "reason", "tokens"}.
    items: list[dict[str, Any]] = []
    notices: list[str] = []


class ModelResponded(Event, frozen=True, kw_only=True):
    step: int
    model: str
    content: str = ""
    # Each {"id", "name", "arguments"} with arguments as the raw JSON text sent.
    tool_calls: list[dict[str, Any]] = []
    finish_reason: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    usage_reported: bool = True
    # None when the model has no price (an unbudgeted run may use it).
    cost_usd: Decimal | None = None
    latency_s: float = 0.0
    attempts: int = 1


class ToolCallRequested(Event, frozen=True, kw_only=True):
    step: int
    call_id: str
    tool: str
    arguments: dict[str, Any] = {}
    # The arguments as sent, when they were not a JSON object.
    raw_arguments: str = ""


class PolicyDecided(Event, frozen=True, kw_only=True):
    call_id: str
    tool: str
    decision: str
    rule: str = ""
    scope: str = ""
    reason: str = ""


class ToolCallCompleted(Event, frozen=True, kw_only=True):
    call_id: str
    tool: str
    ok: bool
    # What the model is shown (capped), stdout and stderr together for bash.
    output: str = ""
    exit_code: int | None = None
    duration_s: float = 0.0
    truncated: bool = False
    timed_out: bool = False
    # Paths the tool wrote, or that changed during a shell command.
    touched_paths: list[str] = []
    diff: str = ""


class CheckpointCreated(Event, frozen=True, kw_only=True):
    """The workspace as it was after the event at `after_seq`, restorable on any worker."""

    checkpoint_id: uuid.UUID
    after_seq: int
    # Paths this step changed; `files` and `bytes` count every path that differs from base.
    changed: list[str] = []
    files: int = 0
    bytes: int = 0


class RunRewound(Event, frozen=True, kw_only=True):
    """The run goes back to its event at `to_seq`: what followed is dropped from its
    conversation, and its files go back to the checkpoint at or before it (the base
    commit when none is). Written while the run is suspended; applied on resume."""

    to_seq: int
    checkpoint_id: uuid.UUID | None = None
    requested_by: uuid.UUID | None = None


class RunResumeRequested(Event, frozen=True, kw_only=True):
    """Someone asked a suspended run to go on (a worker takes it and resumes it)."""

    requested_by: uuid.UUID | None = None


class ReplayDiverged(Event, frozen=True, kw_only=True):
    """A replay differed from the recorded run at this call."""

    step: int
    call_id: str
    tool: str
    # What differed: "ok", "output", "exit_code", "decision", "missing", "extra".
    field: str
    recorded: str = ""
    replayed: str = ""


class ApprovalRequested(Event, frozen=True, kw_only=True):
    """The policy gate asked: the run waits for an approver (status awaiting_approval)."""

    approval_id: str
    call_id: str
    tool: str
    arguments: dict[str, Any] = {}
    command: str | None = None
    paths: list[str] = []
    rule: str = ""
    scope: str = ""
    reason: str = ""
    # Seconds the run waits before the ask counts as denied.
    timeout_s: float = 0.0


class ApprovalDecided(Event, frozen=True, kw_only=True):
    approval_id: str
    decision: str  # "allow" | "deny"
    # "once": this call; "run": what the same rule asks about, for the rest of the run.
    scope: str = "once"
    # An API key id, "auto" (headless auto-approval rules) or "timeout".
    decided_by: str = ""
    reason: str = ""


class CheckpointRestored(Event, frozen=True, kw_only=True):
    """The workspace was made equal to a checkpoint (a resume elsewhere, a rewind, a fork)."""

    checkpoint_id: uuid.UUID
    # The paths the restore wrote or removed.
    paths: list[str] = []
    reason: str = ""


class QualityGatesChecked(Event, frozen=True, kw_only=True):
    """The gates ran after the agent called `finish`."""

    attempt: int
    passed: bool
    # Each {"name", "passed", "required", "command", "exit_code", "output", "duration_s"}.
    results: list[dict[str, Any]] = []


class WorkspaceRolledBack(Event, frozen=True, kw_only=True):
    """The worktree went back to a state whose gates passed (the base commit when none
    did); the attempt that failed is kept as the artifact named here."""

    checkpoint_id: uuid.UUID | None = None
    paths: list[str] = []
    kept_as: str = ""
    reason: str = ""


class AgentNudged(Event, frozen=True, kw_only=True):
    """A message the runtime added to the conversation (e.g. a stall correction)."""

    reason: str
    message: str


class ContextCompacted(Event, frozen=True, kw_only=True):
    """Older tool output was cut to fit the context window; rebuilds do the same."""

    # Tool results (by call id) whose output was replaced by a short notice.
    elided_calls: list[str] = []
    tokens_before: int = 0
    tokens_after: int = 0


class ArtifactStored(Event, frozen=True, kw_only=True):
    name: str
    media_type: str
    size: int
    sha256: str


# --- delivery to a git host (delivery issue) ---------------------------------------


class BranchPushed(Event, frozen=True, kw_only=True):
    """The run's branch is on the project's remote (deliver: branch, pr)."""

    # The remote's URL, without credentials.
    remote: str
    branch: str
    commit: str
    # False when the remote had the branch at this commit already (a delivery retried).
    created: bool = True


class PullRequestOpened(Event, frozen=True, kw_only=True):
    """The run's pull request (deliver: pr). `existing`: the task already had one open,
    found by the marker in its body, and no second one was opened."""

    host: str
    url: str
    number: int
    head: str
    base: str
    draft: bool = False
    existing: bool = False


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        RunRequested,
        RunStarted,
        HeartbeatRecorded,
        RunSuspended,
        RunResumed,
        RunCompleted,
        RunFailed,
        RunCancelled,
        WorkspacePrepared,
        ContextPackBuilt,
        PromptAssembled,
        ModelResponded,
        ToolCallRequested,
        PolicyDecided,
        ToolCallCompleted,
        CheckpointCreated,
        CheckpointRestored,
        RunRewound,
        RunResumeRequested,
        ReplayDiverged,
        ApprovalRequested,
        ApprovalDecided,
        QualityGatesChecked,
        WorkspaceRolledBack,
        AgentNudged,
        ContextCompacted,
        ArtifactStored,
        BranchPushed,
        PullRequestOpened,
    )
}


class UnknownEventType(Exception):
    pass


def register_event_type(cls: type[Event]) -> type[Event]:
    """For event types defined outside this module (later issues)."""
    EVENT_TYPES[cls.__name__] = cls
    return cls


def event_type_name(event: Event) -> str:
    return type(event).__name__


def encode_payload(event: Event) -> dict[str, Any]:
    payload: dict[str, Any] = msgspec.to_builtins(event)
    payload.pop("type", None)
    return payload


def decode_event(type_name: str, version: int, payload: dict[str, Any]) -> Event:
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise UnknownEventType(type_name)
    if version < cls.SCHEMA_VERSION:
        payload = cls.upcast(dict(payload), version)
    body = {k: v for k, v in payload.items() if k != "type"}
    return msgspec.convert(body, cls, strict=False)


class StoredEvent(Struct, frozen=True, kw_only=True):
    """An event as read back from the log, with its envelope."""

    run_id: uuid.UUID
    seq: int
    # The log's global order across runs (for paging events by task or agent).
    position: int = 0
    type: str
    schema_version: int
    event: Event
    tenant_id: uuid.UUID
    task_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    request_id: str | None = None
    created_at: datetime
