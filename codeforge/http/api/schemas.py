"""Request and response bodies of API v1.

Requests forbid unknown fields, so a typo is a 400 naming the field instead of
a silently ignored setting. PATCH bodies use UNSET for "not given" and carry
the `version` the client read (optimistic locking: a stale one is 409).
Entities are their own response bodies, except where a field must never leave
the server (an API key's hash).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

import msgspec
from msgspec import UNSET, Struct, UnsetType

from codeforge.domain.agents import Backend
from codeforge.domain.gates import QualityGates
from codeforge.domain.keys import ApiKey, Role
from codeforge.domain.limits import Limits
from codeforge.domain.runs import DeliverMode, SandboxMode
from codeforge.domain.tasks import TaskStatus

T = TypeVar("T")


class Request(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    def changes(self) -> dict[str, Any]:
        """The fields the client set, minus the version."""
        return {
            name: value
            for name in self.__struct_fields__
            if name != "version" and (value := getattr(self, name)) is not UNSET
        }


class ProblemField(Struct, frozen=True, kw_only=True):
    field: str | None = None
    message: str | None = None
    key: str | None = None
    source: str | None = None


class Problem(Struct, frozen=True, kw_only=True):
    """Every error body (RFC 9457 problem details, `application/problem+json`)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[ProblemField] | None = None


class ListPage(Struct, Generic[T], frozen=True):
    items: list[T]
    next_cursor: str | None = None


# --- projects ---------------------------------------------------------------


class ProjectCreate(Request, frozen=True, kw_only=True):
    name: str
    # A clone URL (https://, ssh://, git@host:repo) or an absolute local path.
    source: str
    default_branch: str | None = None
    quality_gates: list[str] = []
    gates: QualityGates = QualityGates()
    policy_profile: str = "default"
    limits: Limits = Limits()
    description: str = ""
    budget_usd: Decimal | None = None


class ProjectUpdate(Request, frozen=True, kw_only=True):
    version: int
    default_branch: str | UnsetType = UNSET
    quality_gates: list[str] | UnsetType = UNSET
    gates: QualityGates | UnsetType = UNSET
    policy_profile: str | UnsetType = UNSET
    limits: Limits | UnsetType = UNSET
    description: str | UnsetType = UNSET
    budget_usd: Decimal | UnsetType | None = UNSET


class CheckoutRequest(Request, frozen=True, kw_only=True):
    ref: str
    create: bool = False


# --- tasks ------------------------------------------------------------------


class TaskCreate(Request, frozen=True, kw_only=True):
    project_id: uuid.UUID
    title: str
    prompt: str
    acceptance_criteria: list[str] = []


class TaskUpdate(Request, frozen=True, kw_only=True):
    version: int
    title: str | UnsetType = UNSET
    prompt: str | UnsetType = UNSET
    acceptance_criteria: list[str] | UnsetType = UNSET
    status: TaskStatus | UnsetType = UNSET


# --- agents -----------------------------------------------------------------


class AgentCreate(Request, frozen=True, kw_only=True):
    name: str
    model: str
    backend: Backend = Backend.NATIVE
    policy_profile: str = "default"
    limits: Limits = Limits()
    instructions: str = ""


class AgentUpdate(Request, frozen=True, kw_only=True):
    version: int
    name: str | UnsetType = UNSET
    model: str | UnsetType = UNSET
    backend: Backend | UnsetType = UNSET
    policy_profile: str | UnsetType = UNSET
    limits: Limits | UnsetType = UNSET
    instructions: str | UnsetType = UNSET


# --- models -----------------------------------------------------------------


class ModelCreate(Request, frozen=True, kw_only=True):
    name: str
    base_url: str
    model: str = ""
    api_key_secret: str = ""
    input_price_per_mtok: Decimal | None = None
    output_price_per_mtok: Decimal | None = None
    context_window: int = 128_000


class ModelUpdate(Request, frozen=True, kw_only=True):
    version: int
    base_url: str | UnsetType = UNSET
    model: str | UnsetType = UNSET
    api_key_secret: str | UnsetType = UNSET
    input_price_per_mtok: Decimal | UnsetType | None = UNSET
    output_price_per_mtok: Decimal | UnsetType | None = UNSET
    context_window: int | UnsetType = UNSET


# --- runs -------------------------------------------------------------------


class RunCreate(Request, frozen=True, kw_only=True):
    task_id: uuid.UUID
    agent_id: uuid.UUID
    # Execution mode = sandbox kind; the server's default when omitted.
    mode: SandboxMode | None = None
    deliver: DeliverMode = DeliverMode.PATCH
    # Tighten the limits of tenant, project and agent (never loosen them).
    limits: Limits | None = None
    policy_overrides: dict[str, Any] = {}


class ApprovalAnswerBody(Request, frozen=True, kw_only=True):
    decision: Literal["allow", "deny"]
    # "run": also allow (or deny) what the same rule asks about for the rest of the run.
    scope: Literal["once", "run"] = "once"
    reason: str = ""


class RunPause(Request, frozen=True, kw_only=True):
    reason: str = ""


class RunRewindBody(Request, frozen=True, kw_only=True):
    # The event to go back to: what followed it is dropped, files as at its checkpoint.
    to_seq: int
    # Only say what would change (files written, deleted) without doing it.
    dry_run: bool = False


class RunForkBody(Request, frozen=True, kw_only=True):
    # The source run's event to continue from.
    at_seq: int
    mode: SandboxMode | None = None
    deliver: DeliverMode | None = None
    # May only tighten the source run's limits.
    limits: Limits | None = None


class RunCancel(Request, frozen=True, kw_only=True):
    reason: str = ""


class EventView(Struct, frozen=True, kw_only=True):
    run_id: uuid.UUID
    seq: int
    position: int
    type: str
    schema_version: int
    data: dict[str, Any]
    task_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    request_id: str | None = None
    created_at: datetime


class EventList(Struct, frozen=True):
    items: list[EventView]
    # Pass as `after` to read on from here.
    last: int | None = None


# --- keys and sessions --------------------------------------------------------


class KeyCreate(Request, frozen=True, kw_only=True):
    name: str
    role: Role = Role.MEMBER


class KeyView(Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    role: Role
    prefix: str
    version: int
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyView:
        fields = msgspec.structs.asdict(key)
        fields.pop("key_hash")
        fields.pop("updated_at")
        return cls(**fields)


class KeyCreated(Struct, frozen=True, kw_only=True):
    key: KeyView
    # Shown once. CodeForge keeps only a hash.
    secret: str


class SessionCreate(Request, frozen=True, kw_only=True):
    api_key: str


class SessionView(Struct, frozen=True, kw_only=True):
    tenant_id: uuid.UUID
    role: Role
    expires_at: datetime
    # Send as X-CSRF-Token on every POST, PUT, PATCH and DELETE made with the cookie.
    csrf_token: str
