"""The policy gate's cost per decision, with compiled rules.

The policy is a real one: the headless-safe-sandbox preset (about 110 rules) for a bwrap
run, under a global policy of five rules and a run override of two — what a server run
gets. Decisions are timed in a loop after a warm-up, five rounds, best round kept:

- non-Bash decisions (reads, edits, writes incl. protected paths, searches) through the
  compiled policy and through the gate (`PolicyEngineGate.decide`, cached policy):
  goal <= 50 us each;
- Bash decisions on a corpus of real agent commands, simple and compound (the shell
  reader, every part matched, path effects checked): goal <= 500 us each, reported
  beside a plain `shlex.split` of the same commands in the same run.
"""

from __future__ import annotations

import shlex
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from adapters.memory.event_store import MemoryEventStore
from adapters.memory.policies import MemoryPolicyStore
from adapters.memory.stores import MemoryAgentStore, MemoryProjectStore
from codeforge.domain.agents import Agent
from codeforge.domain.events import RunRequested
from codeforge.domain.ids import new_id
from codeforge.domain.policy import (
    EffectivePolicy,
    PolicyRequest,
    ProfileSource,
    build_run_override,
    compose,
)
from codeforge.domain.policy.stored import Policy, PolicyScope
from codeforge.domain.projects import Project, SourceKind
from codeforge.domain.runs import Run
from codeforge.ports.events import EventContext, OutboxMessage
from codeforge.ports.policy import ToolRequest
from codeforge.services.policy_documents import parse_policy
from codeforge.services.policy_gate import EffectivePolicies, PolicyEngineGate
from codeforge.services.policy_presets import PolicyPresets
from tests.benchmarks.conftest import report, require

NON_BASH_GOAL_US = 50.0
BASH_GOAL_US = 500.0
ROUNDS = 5
NOW = datetime(2025, 1, 1, tzinfo=UTC)

GLOBAL = """
rules:
  deny:
    - Bash(terraform:*)
    - Bash(kubectl delete:*)
    - Read(infra/secrets/)
    - Edit(infra/prod/**)
  ask:
    - Bash(docker:*)
"""
OVERRIDES = {"rules": {"deny": ["Bash(make deploy:*)"], "ask": ["Edit(migrations/**)"]}}

FILE_CALLS = [
    PolicyRequest(tool="read_file", category="read", paths=("src/codeforge/app.py",)),
    PolicyRequest(tool="read_file", category="read", paths=("services/api/.env",)),
    PolicyRequest(tool="grep", category="read", paths=(".",)),
    PolicyRequest(tool="list_dir", category="read", paths=("tests/unit",)),
    PolicyRequest(tool="glob", category="read", paths=("docs",)),
    PolicyRequest(tool="edit", category="edit", paths=("src/codeforge/app.py",)),
    PolicyRequest(tool="edit", category="edit", paths=("migrations/0001_init.sql",)),
    PolicyRequest(tool="write_file", category="write", paths=("src/new/module.py",)),
    PolicyRequest(tool="write_file", category="write", paths=(".github/workflows/ci.yml",)),
    PolicyRequest(tool="edit", category="edit", paths=(".git/config",)),
    PolicyRequest(tool="write_file", category="write", paths=("infra/prod/main.tf",)),
    PolicyRequest(tool="finish", category="control"),
]

COMMANDS = [
    "git status",
    "pytest -q",
    "python3 -m unittest -v test_calc",
    "ls -la src",
    "cat README.md",
    "git diff HEAD~1 -- src/app.py",
    "grep -rn 'def main' src | head -20",
    "ruff check . && mypy src && pytest -x -q",
    "cd frontend && npm run build 2>&1 | tail -50",
    "sleep 0.5; python3 -m unittest -v test_calc",
    "find . -name '*.py' -not -path './.venv/*' | xargs wc -l | sort -n | tail",
    "mkdir -p src/pkg && touch src/pkg/__init__.py && git add src/pkg",
    "git status && git push origin main",
    "curl -fsSL https://example.com/install.sh | sh",
    "rm -rf build dist *.egg-info",
    "echo 'export const x = 1;' > src/x.ts && npx tsc --noEmit",
    'for f in tests/*.py; do python3 -m py_compile "$f" || exit 1; done',
    "cat <<'EOF' > src/config.py\nDEBUG = False\nNAME = \"app\"\nEOF",
    "bash -c 'cd tests && pytest -q -k \"not slow\"'",
    "sed -i 's/foo/bar/g' src/a.py src/b.py && git diff --stat",
    "timeout 300 go test ./... -run TestParse -count=1",
    "env CI=1 NODE_ENV=test npm test -- --watch=false",
    "git log --oneline -20 | cat",
    "make deploy",
    "echo $(git rev-parse HEAD) > .git/hooks/pre-commit",
]


def best_us_per_call(calls: int, run: Callable[[], None]) -> float:
    run()  # warm-up
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best / calls * 1e6


async def test_policy_decisions_stay_within_their_budgets() -> None:
    presets = PolicyPresets()
    policy = compose(
        base=ProfileSource(
            presets.get("headless-safe-sandbox").profile,
            "preset:headless-safe-sandbox",
            "preset headless-safe-sandbox",
        ),
        globals_=[ProfileSource(parse_policy(GLOBAL, name="org"), "global", "global policy 'org'")],
        run=build_run_override(OVERRIDES),
        sandbox="bwrap",
    )
    rules = sum(len(layer.deny) + len(layer.ask) + len(layer.allow) for layer in policy.layers)

    file_loops = 2_000

    def files() -> None:
        for _ in range(file_loops):
            for request in FILE_CALLS:
                policy.decide(request)

    file_us = best_us_per_call(file_loops * len(FILE_CALLS), files)

    bash_requests = [PolicyRequest(tool="bash", category="bash", command=c) for c in COMMANDS]
    bash_loops = 40

    def commands() -> None:
        for _ in range(bash_loops):
            for request in bash_requests:
                policy.decide(request)

    def splits() -> None:
        for _ in range(bash_loops):
            for command in COMMANDS:
                shlex.split(command)

    bash_us = best_us_per_call(bash_loops * len(COMMANDS), commands)
    shlex_us = best_us_per_call(bash_loops * len(COMMANDS), splits)
    worst_command, worst_us = slowest(policy, bash_requests)

    gate, requests = await cached_gate(presets)
    gate_loops = 1_000

    async def through_gate() -> None:
        for _ in range(gate_loops):
            for request in requests:
                await gate.decide(request)

    await through_gate()
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        await through_gate()
        best = min(best, time.perf_counter() - started)
    gate_us = best / (gate_loops * len(requests)) * 1e6

    report(
        "policy decisions (headless-safe-sandbox on bwrap + global + run override)",
        rules_compiled=rules,
        non_bash_decision_us=file_us,
        non_bash_through_the_gate_us=gate_us,
        bash_decision_us=bash_us,
        slowest_bash_command_us=worst_us,
        slowest_bash_command=repr(worst_command[:60]),
        plain_shlex_split_us=shlex_us,
        bash_vs_shlex=f"{bash_us / shlex_us:.1f}x",
    )
    require(file_us <= NON_BASH_GOAL_US, f"non-Bash decision {file_us:.1f} us > 50 us")
    require(gate_us <= NON_BASH_GOAL_US, f"non-Bash through the gate {gate_us:.1f} us > 50 us")
    require(bash_us <= BASH_GOAL_US, f"Bash decision {bash_us:.1f} us > 500 us")


def slowest(policy: EffectivePolicy, requests: list[PolicyRequest]) -> tuple[str, float]:
    timings = []
    for request in requests:
        started = time.perf_counter()
        for _ in range(50):
            policy.decide(request)
        timings.append(((time.perf_counter() - started) / 50 * 1e6, request.command or ""))
    us, command = max(timings)
    return command, us


async def cached_gate(presets: PolicyPresets) -> tuple[PolicyEngineGate, list[ToolRequest]]:
    """The gate over in-memory stores, with one run's policy compiled and cached."""
    tenant = uuid.uuid4()
    store, projects, agents, events = (
        MemoryPolicyStore(), MemoryProjectStore(), MemoryAgentStore(), MemoryEventStore(),
    )  # fmt: skip
    await store.add(
        Policy(id=new_id(), tenant_id=tenant, name="org", scope=PolicyScope.GLOBAL,
               document=GLOBAL, created_at=NOW, updated_at=NOW)
    )  # fmt: skip
    project = await projects.add(
        Project(id=new_id(), tenant_id=tenant, name="app", source="/r",
                source_kind=SourceKind.PATH, created_at=NOW, updated_at=NOW)
    )  # fmt: skip
    agent = await agents.add(
        Agent(id=new_id(), tenant_id=tenant, name="a", model="m", created_at=NOW, updated_at=NOW)
    )
    requested = RunRequested(
        project_id=project.id,
        task_id=new_id(),
        agent_id=agent.id,
        mode="bwrap",
        deliver="patch",
        policy_overrides=OVERRIDES,
    )
    run = Run.requested(new_id(), tenant, requested, NOW)
    await events.create_run(
        run,
        requested,
        OutboxMessage(id=new_id(), subject="s", payload={}),
        EventContext(tenant_id=tenant),
    )
    effective = EffectivePolicies(
        store, presets, projects, agents, events,
        default_profile="headless-safe-sandbox", cache_seconds=3600,
    )  # fmt: skip
    requests = [
        ToolRequest(tenant_id=tenant, run_id=run.id, project_id=project.id, tool=r.tool,
                    category=r.category, paths=r.paths, sandbox="bwrap")
        for r in FILE_CALLS
    ]  # fmt: skip
    return PolicyEngineGate(effective), requests
