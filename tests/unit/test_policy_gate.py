"""The real gate: which profiles make a run's policy, caching and invalidation, and
failing closed — over the in-memory stores (the PostgreSQL ones share their contract)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.memory.event_store import MemoryEventStore
from adapters.memory.policies import MemoryPolicyStore
from adapters.memory.stores import MemoryAgentStore, MemoryProjectStore
from codeforge.domain.agents import Agent
from codeforge.domain.events import RunRequested
from codeforge.domain.ids import new_id
from codeforge.domain.keys import Principal, Role
from codeforge.domain.policy.stored import Policy, PolicyScope
from codeforge.domain.projects import Project, SourceKind
from codeforge.domain.runs import Run
from codeforge.ports.errors import DependencyUnavailable
from codeforge.ports.events import EventContext, OutboxMessage
from codeforge.ports.policy import Decision, PolicyDecision, ToolRequest
from codeforge.services.policies import Policies
from codeforge.services.policy_gate import EffectivePolicies, PolicyEngineGate
from codeforge.services.policy_presets import PolicyPresets

NOW = datetime(2025, 1, 1, tzinfo=UTC)
PRESETS = PolicyPresets()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FailingPolicyStore(MemoryPolicyStore):
    """The database dying mid-operation (the one double here)."""

    async def list(self, *args: Any, **kwargs: Any) -> Any:
        raise DependencyUnavailable("the database is unavailable: connection refused")


@dataclass
class World:
    store: MemoryPolicyStore
    projects: MemoryProjectStore
    agents: MemoryAgentStore
    events: MemoryEventStore
    effective: EffectivePolicies
    gate: PolicyEngineGate
    policies: Policies
    clock: Clock
    tenant: uuid.UUID
    admin: Principal

    async def project(self, profile: str = "default") -> Project:
        return await self.projects.add(
            Project(
                id=new_id(), tenant_id=self.tenant, name=f"p-{new_id().hex[-8:]}", source="/r",
                source_kind=SourceKind.PATH, policy_profile=profile, created_at=NOW,
                updated_at=NOW,
            )
        )  # fmt: skip

    async def agent(self, profile: str = "default") -> Agent:
        return await self.agents.add(
            Agent(
                id=new_id(), tenant_id=self.tenant, name=f"a-{new_id().hex[-8:]}", model="m",
                policy_profile=profile, created_at=NOW, updated_at=NOW,
            )
        )  # fmt: skip

    async def run(
        self, project: Project, agent: Agent, overrides: dict[str, Any] | None = None
    ) -> Run:
        requested = RunRequested(
            project_id=project.id, task_id=new_id(), agent_id=agent.id, mode="bwrap",
            deliver="patch", policy_overrides=overrides or {},
        )  # fmt: skip
        run = Run.requested(new_id(), self.tenant, requested, NOW)
        outbox = OutboxMessage(id=new_id(), subject="runs.start", payload={})
        await self.events.create_run(run, requested, outbox, EventContext(tenant_id=self.tenant))
        return run

    async def decide(
        self,
        run: Run,
        command: str | None = None,
        *,
        tool: str = "bash",
        path: str = "",
        sandbox: str = "bwrap",
    ) -> PolicyDecision:
        category = {"bash": "bash", "edit": "edit", "read_file": "read"}[tool]
        return await self.gate.decide(
            ToolRequest(
                tenant_id=self.tenant, run_id=run.id, project_id=run.project_id, tool=tool,
                category=category, paths=(path,) if path else (),  # type: ignore[arg-type]
                command=command, sandbox=sandbox,
            )
        )  # fmt: skip


def make_world(store: MemoryPolicyStore | None = None) -> World:
    store = store or MemoryPolicyStore()
    projects, agents, events = MemoryProjectStore(), MemoryAgentStore(), MemoryEventStore()
    clock = Clock()
    effective = EffectivePolicies(
        store, PRESETS, projects, agents, events,
        default_profile="headless-safe-sandbox", cache_seconds=5.0, clock=clock,
    )  # fmt: skip
    tenant = uuid.uuid4()
    return World(
        store=store, projects=projects, agents=agents, events=events, effective=effective,
        gate=PolicyEngineGate(effective), policies=Policies(store, effective, projects, agents,
        events), clock=clock, tenant=tenant,
        admin=Principal(tenant_id=tenant, key_id=uuid.uuid4(), role=Role.ADMIN),
    )  # fmt: skip


@pytest.fixture
def world() -> World:
    return make_world()


async def test_a_run_with_no_profile_named_gets_the_default_preset(world: World) -> None:
    run = await world.run(await world.project(), await world.agent())
    denied = await world.decide(run, "git status && git push")
    assert (denied.decision, denied.rule, denied.scope) == (
        Decision.DENY,
        "Bash(git push:*)",
        "preset:headless-safe-sandbox",
    )
    assert "CodeForge delivers" in denied.reason
    assert (await world.decide(run, "pytest -q")).decision is Decision.ALLOW


async def test_the_projects_stored_profile_is_its_base_and_says_so(world: World) -> None:
    project = await world.project("strict")
    await world.policies.create(
        world.admin, name="strict", project_id=project.id,
        document="mode: default\nrules:\n  allow: [Bash(make test)]\n",
    )  # fmt: skip
    run = await world.run(project, await world.agent())
    verdict = await world.decide(run, "make test")
    assert (verdict.decision, verdict.rule, verdict.scope) == (
        Decision.ALLOW,
        "Bash(make test)",
        "project",
    )
    assert (await world.decide(run, "pytest")).decision is Decision.ASK


async def test_the_agents_profile_is_the_base_when_the_project_names_none(world: World) -> None:
    run = await world.run(await world.project(), await world.agent("plan-readonly"))
    verdict = await world.decide(run, tool="edit", path="a.py")
    assert (verdict.decision, verdict.scope) == (Decision.DENY, "preset:plan-readonly")


async def test_an_agents_profile_only_tightens_a_projects(world: World) -> None:
    project = await world.project("headless-permissive-sandbox")
    lenient = await world.run(project, await world.agent())
    assert (await world.decide(lenient, "make deploy")).decision is Decision.ALLOW
    reviewer = await world.run(project, await world.agent("plan-readonly"))
    assert (await world.decide(reviewer, "make deploy")).decision is Decision.DENY
    safe_agent = await world.run(project, await world.agent("headless-safe-sandbox"))
    assert (await world.decide(safe_agent, "make deploy")).decision is Decision.ASK


async def test_a_runs_overrides_apply_to_that_run_only(world: World) -> None:
    project, agent = await world.project(), await world.agent()
    tight = await world.run(project, agent, {"rules": {"deny": ["Bash(pytest:*)"]}})
    verdict = await world.decide(tight, "pytest -q")
    assert (verdict.decision, verdict.scope) == (Decision.DENY, "run")
    other = await world.run(project, agent)
    assert (await world.decide(other, "pytest -q")).decision is Decision.ALLOW


async def test_global_policies_bind_every_run_and_a_change_applies_at_once(world: World) -> None:
    run = await world.run(await world.project(), await world.agent())
    assert (await world.decide(run, "pytest -q")).decision is Decision.ALLOW
    stored = await world.policies.create(
        world.admin, name="freeze", scope=PolicyScope.GLOBAL,
        document="rules:\n  deny:\n    - rule: Bash(pytest:*)\n      reason: the CI is down\n",
    )  # fmt: skip
    verdict = await world.decide(run, "pytest -q")
    assert (verdict.decision, verdict.scope) == (Decision.DENY, "global")
    assert "the CI is down" in verdict.reason
    await world.policies.delete(world.admin, stored.id, stored.version)
    assert (await world.decide(run, "pytest -q")).decision is Decision.ALLOW


async def test_a_change_from_another_process_is_seen_when_the_cache_expires(world: World) -> None:
    run = await world.run(await world.project(), await world.agent())
    assert (await world.decide(run, "pytest")).decision is Decision.ALLOW
    # Written straight to the store: this process's cache was not told.
    await world.store.add(
        Policy(
            id=new_id(), tenant_id=world.tenant, name="other", scope=PolicyScope.GLOBAL,
            document="rules:\n  deny: [Bash(pytest:*)]\n", created_at=NOW, updated_at=NOW,
        )
    )  # fmt: skip
    assert (await world.decide(run, "pytest")).decision is Decision.ALLOW
    world.clock.now += 5.1
    assert (await world.decide(run, "pytest")).decision is Decision.DENY


async def test_the_sandbox_kind_of_the_call_chooses_the_sandbox_section(world: World) -> None:
    run = await world.run(await world.project(), await world.agent())
    on_bwrap = await world.decide(run, "echo x > /tmp/out", sandbox="bwrap")
    on_mount = await world.decide(run, "echo x > /tmp/out", sandbox="mount")
    assert (on_bwrap.decision, on_mount.decision) == (Decision.ASK, Decision.DENY)


async def test_a_profile_that_exists_nowhere_denies_everything_and_says_which(
    world: World,
) -> None:
    run = await world.run(await world.project("no-such-profile"), await world.agent())
    verdict = await world.decide(run, tool="read_file", path="README.md")
    assert verdict.decision is Decision.DENY
    assert "'no-such-profile'" in verdict.reason
    assert "headless-safe-sandbox" in verdict.reason  # the presets it could have named


async def test_overrides_the_policy_cannot_read_deny_every_call(world: World) -> None:
    run = await world.run(await world.project(), await world.agent(), {"allow": ["Bash"]})
    verdict = await world.decide(run, "ls")
    assert verdict.decision is Decision.DENY
    assert "may only tighten" in verdict.reason


async def test_the_store_out_of_reach_fails_closed() -> None:
    world = make_world(FailingPolicyStore())
    run = await world.run(await world.project(), await world.agent())
    verdict = await world.decide(run, "ls")
    assert verdict.decision is Decision.DENY
    assert "could not be loaded" in verdict.reason


async def test_a_missing_run_fails_closed(world: World) -> None:
    project, agent = await world.project(), await world.agent()
    ghost = Run.requested(
        new_id(), world.tenant,
        RunRequested(project_id=project.id, task_id=new_id(), agent_id=agent.id, mode="mount",
                     deliver="patch"),
        NOW,
    )  # fmt: skip
    verdict = await world.decide(ghost, "ls")
    assert verdict.decision is Decision.DENY


async def test_concurrent_first_calls_share_one_load(world: World) -> None:
    import asyncio

    run = await world.run(await world.project(), await world.agent())
    calls = 0
    original = world.store.list

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return await original(*args, **kwargs)

    world.store.list = counting  # type: ignore[method-assign]
    verdicts = await asyncio.gather(*(world.decide(run, "ls") for _ in range(20)))
    assert {v.decision for v in verdicts} == {Decision.ALLOW}
    assert calls == 1
