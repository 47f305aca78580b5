"""The dashboard: is everything up, what is running, what waits for a person, what it cost."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from codeforge.services.agents import Agents
from codeforge.services.approvals import RunApprovals
from codeforge.services.costs import Costs
from codeforge.services.readiness import Readiness
from codeforge.services.runs import Runs
from codeforge.services.tasks import Tasks
from codeforge.web import views
from codeforge.web.pages import Pages
from codeforge.web.session import PageUser


class DashboardPage(Controller):
    @get("/")
    async def dashboard(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        readiness: NamedDependency[Readiness],
        runs: NamedDependency[Runs],
        tasks: NamedDependency[Tasks],
        agents: NamedDependency[Agents],
        costs: NamedDependency[Costs],
        approvals: NamedDependency[RunApprovals],
    ) -> Template:
        board = await views.dashboard(
            user.principal,
            readiness=readiness,
            runs=runs,
            tasks=tasks,
            agents=agents,
            costs=costs,
            approvals=approvals,
        )
        return pages.render(request, user, "dashboard.html", board=board)
