"""The policy gate: every tool call an agent makes is asked here before it runs.

The gate answers allow, ask or deny, with the rule and the scope that decided and a
reason a person can read; the runtime records the answer as `PolicyDecided` and acts
on it (deny: the tool does not run and the model is told why; ask: the run waits for
an approver). The implementation is `codeforge.services.policy_gate.PolicyEngineGate`
(profiles, presets, global policies, run overrides; see docs/policy.md).

Contract: `decide` is side-effect free and fast (it runs before every tool call); it
never raises for a request it cannot classify — it answers `ask` (or `deny`) and says
why.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from msgspec import Struct

from codeforge.domain.policy.modes import Category as ToolCategory
from codeforge.domain.policy.modes import Decision
from codeforge.domain.policy.stored import Policy
from codeforge.ports.stores import EntityStore

__all__ = [
    "Decision",
    "PolicyDecision",
    "PolicyGate",
    "PolicyStore",
    "ToolCategory",
    "ToolRequest",
]


class ToolRequest(Struct, frozen=True, kw_only=True):
    """One tool call, described for the gate."""

    tenant_id: uuid.UUID
    run_id: uuid.UUID
    project_id: uuid.UUID
    tool: str
    category: ToolCategory
    arguments: dict[str, Any] = {}
    # Workspace-relative paths the call reads or writes (empty for bash: see `command`).
    paths: tuple[str, ...] = ()
    # The shell command of a bash call.
    command: str | None = None
    # The run's sandbox kind ("mount", "bwrap", ...): rules may depend on isolation.
    sandbox: str = ""


class PolicyDecision(Struct, frozen=True, kw_only=True):
    decision: Decision
    # The rule that matched, as written ("Bash(git status:*)"), or "" for a default.
    rule: str = ""
    # Where that rule came from: "global", "project", "run", "preset:<name>", "default".
    scope: str = ""
    reason: str = ""
    # For an ask: whether a run without a human approver may approve it by its headless
    # rules. False for network access, protected paths and commands the policy cannot
    # read: those wait for a person (or are denied when nobody can be asked).
    automatic: bool = True


class PolicyGate(Protocol):
    async def decide(self, request: ToolRequest) -> PolicyDecision: ...


class PolicyStore(EntityStore[Policy], Protocol):
    """Stored policies (the contract of `codeforge.ports.stores` applies).

    Filters: scope, project_id, name. Unique per tenant: the name within its place —
    one project's policies, or the tenant-wide ones (global and unbound profiles share
    that place). A duplicate is a Conflict on `name`.
    """

    async def get_by_name(
        self, tenant_id: uuid.UUID, name: str, project_id: uuid.UUID | None
    ) -> Policy:
        """The policy named `name` bound to `project_id` (None: the tenant-wide ones);
        NotFound when absent."""
        ...
