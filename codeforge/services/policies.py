"""Policies: stored profiles and global policies, the presets, and previews.

Who may do what: every role of the tenant reads; a key that may mutate writes
project-scope profiles; only an admin writes global policies (they bind every run of
the tenant). Every document is checked when it is saved (YAML, keys, rules, their
examples), so a stored policy always loads; errors point at the line. A change drops
the tenant's compiled policies in this process at once (see `policy_gate`).

Preview answers what the gate would decide on one tool call for a project (and
optionally an agent, a run, a sandbox kind, run overrides, or an unsaved document),
with the rule, the scope that decided and why — and, for a command, each part's
verdict.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from msgspec import Struct

from codeforge.domain.errors import NotFound, ValidationFailed
from codeforge.domain.ids import new_id
from codeforge.domain.keys import Principal
from codeforge.domain.policy import TOOL_KINDS, PartVerdict, PolicyRequest
from codeforge.domain.policy.stored import Policy, PolicyScope, validate_policy_name
from codeforge.domain.projects import Project
from codeforge.domain.runs import SandboxMode
from codeforge.ports.events import EventStore
from codeforge.ports.policy import PolicyStore
from codeforge.ports.stores import AgentStore, Page, ProjectStore
from codeforge.services.clock import Clock, utc_now
from codeforge.services.policy_documents import parse_policy
from codeforge.services.policy_gate import EffectivePolicies
from codeforge.services.policy_presets import Preset

__all__ = ["Policies", "PolicyPreview", "PreviewCall"]

_NAME_LINE = re.compile(r"^name:.*$", re.MULTILINE)


class PreviewCall(Struct, frozen=True, kw_only=True):
    """A tool call to preview, as a model would make it."""

    tool: str = "bash"
    arguments: dict[str, Any] = {}
    command: str | None = None
    path: str | None = None
    project_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    run_id: uuid.UUID | None = None
    sandbox: SandboxMode | None = None
    overrides: dict[str, Any] | None = None
    document: str | None = None


class PolicyPreview(Struct, frozen=True, kw_only=True):
    decision: str
    rule: str
    scope: str
    reason: str
    # For a command: the verdict on each command it runs.
    parts: list[PartVerdict]
    # For an ask: whether a headless run may approve it by its own rules (false for
    # network access, protected paths and commands the policy cannot read).
    automatic: bool
    # The base profile, the effective mode, and the sandbox kind the answer is for.
    profile: str
    mode: str
    sandbox: str


class Policies:
    def __init__(
        self,
        store: PolicyStore,
        effective: EffectivePolicies,
        projects: ProjectStore,
        agents: AgentStore,
        events: EventStore,
        *,
        default_mode: SandboxMode = SandboxMode.MOUNT,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._effective = effective
        self._presets = effective.presets
        self._projects = projects
        self._agents = agents
        self._events = events
        self._default_mode = default_mode
        self._clock = clock

    # -- presets -------------------------------------------------------------------------

    def presets(self) -> list[Preset]:
        return self._presets.list()

    def preset(self, name: str) -> Preset:
        return self._presets.get(name)

    # -- stored policies ------------------------------------------------------------------

    async def get(self, principal: Principal, policy_id: uuid.UUID) -> Policy:
        return await self._store.get(principal.tenant_id, policy_id)

    async def list(
        self,
        principal: Principal,
        *,
        limit: int,
        after: uuid.UUID | None,
        filters: dict[str, str],
    ) -> Page[Policy]:
        return await self._store.list(
            principal.tenant_id, limit=limit, after=after, filters=filters
        )

    async def create(
        self,
        principal: Principal,
        *,
        name: str,
        document: str,
        scope: PolicyScope = PolicyScope.PROJECT,
        project_id: uuid.UUID | None = None,
        based_on: str = "",
    ) -> Policy:
        self._may_write(principal, scope)
        validate_policy_name(name, self._presets.names)
        await self._check_project(principal, scope, project_id)
        profile = parse_policy(document, name=name)
        now = self._clock()
        policy = await self._store.add(
            Policy(
                id=new_id(),
                tenant_id=principal.tenant_id,
                name=name,
                scope=scope,
                project_id=project_id,
                document=document,
                description=profile.description,
                mode=profile.mode.value,
                based_on=based_on,
                created_at=now,
                updated_at=now,
            )
        )
        self._effective.invalidate(principal.tenant_id)
        return policy

    async def from_preset(
        self,
        principal: Principal,
        *,
        preset: str,
        name: str,
        scope: PolicyScope = PolicyScope.PROJECT,
        project_id: uuid.UUID | None = None,
    ) -> Policy:
        """Save a preset as a new profile to edit: its document, renamed."""
        source = self._presets.get(preset)
        document = _NAME_LINE.sub(f"name: {name}", source.document, count=1)
        return await self.create(
            principal,
            name=name,
            document=document,
            scope=scope,
            project_id=project_id,
            based_on=preset,
        )

    async def update(
        self,
        principal: Principal,
        policy_id: uuid.UUID,
        version: int,
        changes: dict[str, Any],
    ) -> Policy:
        current = await self._store.get(principal.tenant_id, policy_id)
        self._may_write(principal, current.scope)
        name = changes.get("name", current.name)
        if name != current.name:
            validate_policy_name(name, self._presets.names)
        document = changes.get("document", current.document)
        profile = parse_policy(document, name=name)
        updated = await self._store.update(
            current.evolve(
                self._clock(),
                version=version,
                name=name,
                document=document,
                description=profile.description,
                mode=profile.mode.value,
            )
        )
        self._effective.invalidate(principal.tenant_id)
        return updated

    async def delete(self, principal: Principal, policy_id: uuid.UUID, version: int | None) -> None:
        current = await self._store.get(principal.tenant_id, policy_id)
        self._may_write(principal, current.scope)
        await self._store.delete(principal.tenant_id, policy_id, version)
        self._effective.invalidate(principal.tenant_id)

    @staticmethod
    def _may_write(principal: Principal, scope: PolicyScope) -> None:
        if scope is PolicyScope.GLOBAL:
            principal.require_admin()
        else:
            principal.require_mutation()

    async def _check_project(
        self, principal: Principal, scope: PolicyScope, project_id: uuid.UUID | None
    ) -> None:
        if project_id is None:
            return
        if scope is PolicyScope.GLOBAL:
            raise ValidationFailed(
                "a global policy applies to every project; leave project_id empty",
                field="project_id",
            )
        await self._project(principal, project_id)

    async def _project(self, principal: Principal, project_id: uuid.UUID) -> Project:
        try:
            return await self._projects.get(principal.tenant_id, project_id)
        except NotFound:
            raise ValidationFailed(f"project {project_id} not found", field="project_id") from None

    # -- preview --------------------------------------------------------------------------

    async def preview(self, principal: Principal, call: PreviewCall) -> PolicyPreview:
        tenant = principal.tenant_id
        overrides = call.overrides
        agent_id = call.agent_id
        project_id = call.project_id
        sandbox = call.sandbox
        if call.run_id is not None:
            run = await self._events.get_run(tenant, call.run_id)
            if project_id is not None and project_id != run.project_id:
                raise ValidationFailed("the run belongs to another project", field="project_id")
            project_id = run.project_id
            agent_id = agent_id or run.agent_id
            overrides = run.policy_overrides if overrides is None else overrides
            sandbox = sandbox or run.mode
        if project_id is None:
            raise ValidationFailed(
                "name the project (project_id) or a run (run_id)", field="project_id"
            )
        project = await self._project(principal, project_id)
        agent = None
        if agent_id is not None:
            try:
                agent = await self._agents.get(tenant, agent_id)
            except NotFound:
                raise ValidationFailed(f"agent {agent_id} not found", field="agent_id") from None
        kind = (sandbox or self._default_mode).value
        composed = await self._effective.compose(
            tenant,
            project=project,
            agent=agent,
            overrides=overrides or {},
            sandbox=kind,
            document=call.document,
        )
        verdict = composed.policy.decide(_request(call))
        return PolicyPreview(
            decision=verdict.decision.value,
            rule=verdict.rule,
            scope=verdict.scope,
            reason=verdict.reason,
            parts=list(verdict.parts),
            automatic=verdict.automatic,
            profile=composed.profile,
            mode=composed.policy.mode.value,
            sandbox=kind,
        )


def _request(call: PreviewCall) -> PolicyRequest:
    tool = call.tool
    known = TOOL_KINDS.get(tool)
    if known is None:
        raise ValidationFailed(
            f"unknown tool {tool!r}; the tools are: {', '.join(sorted(TOOL_KINDS))}",
            field="tool",
        )
    category, _ = known
    arguments = call.arguments
    if category == "bash":
        command = call.command if call.command is not None else arguments.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ValidationFailed("give the command to preview", field="command")
        return PolicyRequest(tool=tool, category=category, command=command)
    path = call.path if call.path is not None else arguments.get("path", ".")
    if not isinstance(path, str):
        raise ValidationFailed("path must be a string", field="path")
    return PolicyRequest(tool=tool, category=category, paths=(path,))
