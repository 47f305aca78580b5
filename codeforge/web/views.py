"""What the pages show, gathered from the services: the pages' read side.

Handlers stay a few lines long by asking here for the things a page lists together —
a run with its task's title and its agent's name, every active run, a project's git
state — so the templates get plain values and never call a service themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from msgspec import Struct

from codeforge.domain.agents import Agent
from codeforge.domain.errors import DomainError, NotFound, ValidationFailed
from codeforge.domain.events import StoredEvent
from codeforge.domain.keys import Principal
from codeforge.domain.policy.stored import Policy, PolicyScope
from codeforge.domain.projects import Project
from codeforge.domain.runs import Run, RunStatus
from codeforge.domain.tasks import Task
from codeforge.ports.costs import CostTotal
from codeforge.ports.vcs import BranchInfo, RepoStatus
from codeforge.services.agents import Agents
from codeforge.services.approvals import Approval, RunApprovals
from codeforge.services.costs import Costs
from codeforge.services.policies import Policies
from codeforge.services.projects import Projects
from codeforge.services.readiness import Readiness, ReadinessReport
from codeforge.services.runs import Runs
from codeforge.services.tasks import Tasks

T = TypeVar("T")
ACTIVE = (
    RunStatus.RUNNING,
    RunStatus.AWAITING_APPROVAL,
    RunStatus.REQUESTED,
    RunStatus.SUSPENDED,
)
# A page lists at most this many of anything; the rest is a "next page" link.
PAGE = 50
# The most events a run page loads at once (the inspector pages through the rest).
MAX_EVENTS = 5000


class RunRow(Struct, frozen=True, kw_only=True):
    run: Run
    task_title: str
    agent_name: str


class WaitingRun(Struct, frozen=True, kw_only=True):
    row: RunRow
    pending: list[Approval]


class Dashboard(Struct, frozen=True, kw_only=True):
    readiness: ReadinessReport
    active: list[RunRow]
    more_active: bool
    waiting: list[WaitingRun]
    since: datetime
    cost_today: CostTotal | None
    cost_by_model: list[CostTotal]


class GitView(Struct, frozen=True, kw_only=True):
    status: RepoStatus | None = None
    branches: list[BranchInfo] = []
    # Why the workspace could not be read (the page shows the rest anyway).
    error: str | None = None


class Names:
    """Titles of tasks and names of agents by id, each looked up once per page."""

    def __init__(self, principal: Principal, tasks: Tasks, agents: Agents) -> None:
        self._principal = principal
        self._tasks = tasks
        self._agents = agents
        self._task_titles: dict[uuid.UUID, str] = {}
        self._agent_names: dict[uuid.UUID, str] = {}

    async def rows(self, runs: Iterable[Run]) -> list[RunRow]:
        return [
            RunRow(
                run=run,
                task_title=await self.task_title(run.task_id),
                agent_name=await self.agent_name(run.agent_id),
            )
            for run in runs
        ]

    async def task_title(self, task_id: uuid.UUID) -> str:
        if task_id not in self._task_titles:
            self._task_titles[task_id] = await _name_or_gone(
                lambda: self._tasks.get(self._principal, task_id), lambda t: t.title
            )
        return self._task_titles[task_id]

    async def agent_name(self, agent_id: uuid.UUID) -> str:
        if agent_id not in self._agent_names:
            self._agent_names[agent_id] = await _name_or_gone(
                lambda: self._agents.get(self._principal, agent_id), lambda a: a.name
            )
        return self._agent_names[agent_id]


async def dashboard(
    principal: Principal,
    *,
    readiness: Readiness,
    runs: Runs,
    tasks: Tasks,
    agents: Agents,
    costs: Costs,
    approvals: RunApprovals,
    now: datetime | None = None,
) -> Dashboard:
    names = Names(principal, tasks, agents)
    active: list[Run] = []
    more = False
    for status in ACTIVE:
        page = await runs.list(principal, limit=PAGE, after=None, filters={"status": status.value})
        active += page.items
        more = more or page.next_cursor is not None
    rows = await names.rows(active)
    waiting = [
        WaitingRun(
            row=row,
            pending=[
                a for a in await approvals.list(principal, row.run.id) if a.state == "pending"
            ],
        )
        for row in rows
        if row.run.status is RunStatus.AWAITING_APPROVAL
    ]
    since = (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    tenant = await costs.report(principal, group="tenant", since=since, limit=1)
    by_model = await costs.report(principal, group="model", since=since, limit=20)
    return Dashboard(
        readiness=await readiness.report(),
        active=rows,
        more_active=more,
        waiting=waiting,
        since=since,
        cost_today=tenant.totals[0] if tenant.totals else None,
        cost_by_model=by_model.totals,
    )


async def git_view(projects: Projects, principal: Principal, project_id: uuid.UUID) -> GitView:
    """The workspace's status and branches, or why they could not be read: a project
    page still shows its settings when its clone is broken or missing."""
    try:
        return GitView(
            status=await projects.git_status(principal, project_id),
            branches=await projects.git_branches(principal, project_id),
        )
    except DomainError as e:
        return GitView(error=e.message)


async def every(
    lister: Callable[..., Awaitable[Any]], principal: Principal, limit: int = 200, **filters: Any
) -> list[Any]:
    """Up to `limit` items of a catalogue (for a form's choices)."""
    page = await lister(
        principal,
        limit=limit,
        after=None,
        filters={k: str(v) for k, v in filters.items() if v is not None},
    )
    return list(page.items)


async def run_events(
    runs: Runs, principal: Principal, run_id: uuid.UUID, *, after: int = 0
) -> tuple[list[StoredEvent], bool]:
    """The run's stored events after `after` (up to MAX_EVENTS), and whether more exist."""
    found: list[StoredEvent] = []
    while len(found) < MAX_EVENTS:
        batch = await runs.events(principal, run_id, after=after, limit=1000)
        found += batch
        if len(batch) < 1000:
            return found, False
        after = batch[-1].seq
    return found, True


async def projects_by_id(projects: Projects, principal: Principal) -> dict[uuid.UUID, Project]:
    return {p.id: p for p in await every(projects.list, principal)}


async def task_of(tasks: Tasks, principal: Principal, task_id: uuid.UUID) -> Task | None:
    try:
        return await tasks.get(principal, task_id)
    except NotFound:
        return None


async def project_of(
    projects: Projects, principal: Principal, project_id: uuid.UUID
) -> Project | None:
    try:
        return await projects.get(principal, project_id)
    except NotFound:
        return None


async def agent_of(agents: Agents, principal: Principal, agent_id: uuid.UUID) -> Agent | None:
    try:
        return await agents.get(principal, agent_id)
    except NotFound:
        return None


async def profile_choices(
    policies: Policies, principal: Principal, project_id: uuid.UUID | None = None
) -> list[tuple[str, str]]:
    """(name, label) of every policy profile a project (or, without one, an agent) may
    name: the server's default, the presets, the tenant-wide stored profiles and the
    project's own (which win over a tenant-wide one of the same name)."""
    choices = {"default": "default: the server's default profile"}
    choices.update({p.name: f"{p.name} (preset)" for p in policies.presets()})
    stored = await every(policies.list, principal, scope=PolicyScope.PROJECT.value)
    for policy in sorted(stored, key=lambda p: (p.name, p.project_id is not None)):
        if policy.project_id is None:
            choices[policy.name] = f"{policy.name} (profile for every project)"
        elif policy.project_id == project_id:
            choices[policy.name] = f"{policy.name} (this project's profile)"
    return list(choices.items())


async def chosen_profile(
    policies: Policies,
    principal: Principal,
    name: str,
    *,
    project_id: uuid.UUID | None = None,
    current: str | None = None,
) -> str:
    """`name` if the form offered it. What is set already is kept as it is, even a
    profile deleted since: saving other settings never changes a project's policy."""
    if name == current:
        return name
    offered = [value for value, _ in await profile_choices(policies, principal, project_id)]
    if name not in offered:
        raise ValidationFailed(
            f"the policy profile {name!r} does not exist; choose one of: {', '.join(offered)}",
            field="policy_profile",
        )
    return name


def used_by(policy: Policy, projects: Iterable[Project], agents: Iterable[Agent]) -> list[str]:
    """Who names this profile ("project calc", "agent coder"); a global policy applies
    to every run and is named by nobody. (A profile bound to one project is used by an
    agent that names it only on that project.)"""
    if policy.scope is PolicyScope.GLOBAL:
        return []
    users = [
        f"project {p.name}"
        for p in projects
        if p.policy_profile == policy.name and policy.project_id in (None, p.id)
    ]
    return users + [f"agent {a.name}" for a in agents if a.policy_profile == policy.name]


async def _name_or_gone(lookup: Callable[[], Awaitable[T]], name: Callable[[T], str]) -> str:
    try:
        return name(await lookup())
    except NotFound:
        return "(deleted)"
