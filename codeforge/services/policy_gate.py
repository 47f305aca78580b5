"""The policy gate: each run's effective policy, compiled once and cached, asked per call.

`EffectivePolicies` puts a run's policy together (see `codeforge.domain.policy.layers`):
the tenant's global policies, the base profile — the project's `policy_profile`, else
the agent's, else `policy.default_profile` — the agent's profile as a restriction when
both name one, the sandbox sections for the run's sandbox kind, and the run's
`policy_overrides`. A profile name is looked up among the project's own policies,
then the tenant-wide profiles, then the presets.

Compiled policies are cached per (tenant, run, sandbox) for `policy.cache_seconds`;
a change through this process's `Policies` service drops the tenant's entries at
once, and other processes see it when their entries expire. Parsed documents are
cached by (id, version), so an expiry recompiles without re-reading YAML.

`PolicyEngineGate` implements the `PolicyGate` port. It never raises: a policy that
cannot be put together (a profile that does not exist, a stored document that no
longer loads, the database out of reach) denies the call and says why — failing
closed, never open.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from codeforge.domain.agents import Agent
from codeforge.domain.errors import DomainError, NotFound, ValidationFailed
from codeforge.domain.policy import (
    EffectivePolicy,
    PolicyProfile,
    PolicyRequest,
    ProfileSource,
    Restriction,
    build_run_override,
    compose,
)
from codeforge.domain.policy.stored import Policy, PolicyScope
from codeforge.domain.projects import Project
from codeforge.ports.events import EventStore
from codeforge.ports.policy import Decision, PolicyDecision, PolicyStore, ToolRequest
from codeforge.ports.stores import AgentStore, ProjectStore
from codeforge.services.event_streams import SingleFlight
from codeforge.services.policy_documents import parse_policy
from codeforge.services.policy_presets import PolicyPresets

__all__ = ["ComposedPolicy", "EffectivePolicies", "PolicyEngineGate", "ProfileMissing"]

log = structlog.get_logger("codeforge.policy")

DEFAULT = "default"
_MAX_COMPILED = 2048
_MAX_PARSED = 512


class ProfileMissing(ValidationFailed):
    """A project or agent names a profile that exists nowhere."""


@dataclass(frozen=True)
class ComposedPolicy:
    policy: EffectivePolicy
    # The base profile, as reasons name it ("preset headless-safe-sandbox").
    profile: str
    sandbox: str


@dataclass
class _Entry:
    composed: ComposedPolicy
    expires: float


class EffectivePolicies:
    def __init__(
        self,
        store: PolicyStore,
        presets: PolicyPresets,
        projects: ProjectStore,
        agents: AgentStore,
        events: EventStore,
        *,
        default_profile: str,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._presets = presets
        self._projects = projects
        self._agents = agents
        self._events = events
        self._default_profile = default_profile
        self._ttl = cache_seconds
        self._clock = clock
        self._compiled: OrderedDict[tuple[uuid.UUID, uuid.UUID, str], _Entry] = OrderedDict()
        self._parsed: OrderedDict[tuple[uuid.UUID, int], PolicyProfile] = OrderedDict()
        self._shared = SingleFlight()

    @property
    def presets(self) -> PolicyPresets:
        return self._presets

    def invalidate(self, tenant_id: uuid.UUID) -> None:
        """Forget the tenant's compiled policies (a policy of the tenant changed)."""
        for key in [k for k in self._compiled if k[0] == tenant_id]:
            del self._compiled[key]

    async def for_run(
        self, tenant_id: uuid.UUID, run_id: uuid.UUID, project_id: uuid.UUID, sandbox: str
    ) -> ComposedPolicy:
        key = (tenant_id, run_id, sandbox)
        entry = self._compiled.get(key)
        if entry is not None and entry.expires > self._clock():
            self._compiled.move_to_end(key)
            return entry.composed

        async def load() -> ComposedPolicy:
            run = await self._events.get_run(tenant_id, run_id)
            project = await self._projects.get(tenant_id, project_id)
            agent = await self._agent(tenant_id, run.agent_id)
            composed = await self.compose(
                tenant_id,
                project=project,
                agent=agent,
                overrides=run.policy_overrides,
                sandbox=sandbox or run.mode.value,
            )
            self._compiled[key] = _Entry(composed, self._clock() + self._ttl)
            self._compiled.move_to_end(key)
            while len(self._compiled) > _MAX_COMPILED:
                self._compiled.popitem(last=False)
            return composed

        return await self._shared.run(key, load)

    async def compose(
        self,
        tenant_id: uuid.UUID,
        *,
        project: Project,
        agent: Agent | None,
        overrides: Mapping[str, Any],
        sandbox: str,
        document: str | None = None,
    ) -> ComposedPolicy:
        """The effective policy for a run of `agent` on `project` (or a preview of it).
        `document`: an unsaved YAML profile to use as the base profile (previews)."""
        run: Restriction = build_run_override(overrides)
        globals_ = [
            ProfileSource(await self._profile(p), "global", f"global policy {p.name!r}")
            for p in await self._globals(tenant_id)
        ]
        agent_name = agent.policy_profile if agent is not None else DEFAULT
        restriction: ProfileSource | None = None
        if document is not None:
            base = ProfileSource(
                parse_policy(document, name=None), "project", "the previewed document"
            )
            if agent_name != DEFAULT:
                restriction = await self._named(tenant_id, agent_name, project, "agent")
        elif project.policy_profile != DEFAULT:
            base = await self._named(tenant_id, project.policy_profile, project, "project")
            if agent_name != DEFAULT:
                restriction = await self._named(tenant_id, agent_name, project, "agent")
        elif agent_name != DEFAULT:
            base = await self._named(tenant_id, agent_name, project, "agent")
        else:
            base = await self._named(tenant_id, self._default_profile, project, "default")
        policy = compose(base=base, globals_=globals_, agent=restriction, run=run, sandbox=sandbox)
        return ComposedPolicy(policy=policy, profile=base.label, sandbox=sandbox)

    async def check_profile_name(
        self, tenant_id: uuid.UUID, name: str, *, project_id: uuid.UUID | None, whose: str
    ) -> None:
        """Refuse a `policy_profile` that names nothing, when it is saved — not at the
        first run, where every call would be denied.

        `whose` is "project" (a profile of that project, a tenant-wide one, or a preset;
        `project_id` None for a project not stored yet) or "agent" (resolved per project
        at run time, so a profile of any project of the tenant counts)."""
        if name == DEFAULT or self._presets.find(name) is not None:
            return
        if whose == "project":
            for place in (project_id, None) if project_id is not None else (None,):
                try:
                    stored = await self._store.get_by_name(tenant_id, name, place)
                except NotFound:
                    continue
                if stored.scope is PolicyScope.PROJECT:
                    return
        else:
            page = await self._store.list(
                tenant_id, limit=1, filters={"name": name, "scope": PolicyScope.PROJECT.value}
            )
            if page.items:
                return
        presets = ", ".join(sorted(self._presets.names))
        raise ValidationFailed(
            f"no policy profile named {name!r}: neither a preset ({presets}) nor a profile "
            f"saved for this {'project or tenant' if whose == 'project' else 'tenant'}; "
            "save one under /api/v1/policies first, or use 'default'",
            field="policy_profile",
        )

    async def _agent(self, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> Agent | None:
        try:
            return await self._agents.get(tenant_id, agent_id)
        except NotFound:
            return None  # deleted since the run started: its profile no longer applies

    async def _globals(self, tenant_id: uuid.UUID) -> list[Policy]:
        found: list[Policy] = []
        after: uuid.UUID | None = None
        while True:
            page = await self._store.list(
                tenant_id, limit=200, after=after, filters={"scope": PolicyScope.GLOBAL.value}
            )
            found += page.items
            if page.next_cursor is None:
                return sorted(found, key=lambda p: p.name)
            after = page.items[-1].id

    async def _named(
        self, tenant_id: uuid.UUID, name: str, project: Project, chosen_by: str
    ) -> ProfileSource:
        for place in (project.id, None):
            try:
                stored = await self._store.get_by_name(tenant_id, name, place)
            except NotFound:
                continue
            if stored.scope is PolicyScope.PROJECT:
                scope = "project" if chosen_by == "default" else chosen_by
                return ProfileSource(await self._profile(stored), scope, f"profile {name!r}")
        preset = self._presets.find(name)
        if preset is not None:
            return ProfileSource(preset.profile, f"preset:{name}", f"preset {name}")
        whose = {
            "project": f"project {project.name!r}",
            "agent": "the run's agent",
            "default": "policy.default_profile",
        }[chosen_by]
        presets = ", ".join(sorted(self._presets.names))
        raise ProfileMissing(
            f"{whose} names the policy profile {name!r}, which does not exist (neither a "
            f"policy of the project or tenant nor a preset: {presets})",
            field="policy_profile",
        )

    async def _profile(self, stored: Policy) -> PolicyProfile:
        key = (stored.id, stored.version)
        profile = self._parsed.get(key)
        if profile is None:
            profile = parse_policy(
                stored.document, name=stored.name, source=f"policy {stored.name!r}"
            )
            self._parsed[key] = profile
            while len(self._parsed) > _MAX_PARSED:
                self._parsed.popitem(last=False)
        return profile


class PolicyEngineGate:
    """Implements `codeforge.ports.policy.PolicyGate` over `EffectivePolicies`."""

    def __init__(self, policies: EffectivePolicies) -> None:
        self._policies = policies

    async def decide(self, request: ToolRequest) -> PolicyDecision:
        try:
            composed = await self._policies.for_run(
                request.tenant_id, request.run_id, request.project_id, request.sandbox
            )
        except DomainError as e:
            return _closed(f"the run's policy cannot be used: {e.message}")
        except Exception as e:  # the store out of reach: fail closed, and say so
            log.warning("policy unavailable", run_id=str(request.run_id), error=str(e))
            return _closed(f"the policy could not be loaded ({e}); retry later")
        try:
            verdict = composed.policy.decide(
                PolicyRequest(
                    tool=request.tool,
                    category=request.category,
                    paths=request.paths,
                    command=request.command,
                )
            )
        except Exception:  # a bug must not open the gate
            log.exception("policy evaluation failed", run_id=str(request.run_id))
            return _closed("the policy failed to evaluate this call")
        return PolicyDecision(
            decision=verdict.decision,
            rule=verdict.rule,
            scope=verdict.scope,
            reason=verdict.reason,
            automatic=verdict.automatic,
        )


def _closed(reason: str) -> PolicyDecision:
    return PolicyDecision(decision=Decision.DENY, rule="", scope="default", reason=reason)
