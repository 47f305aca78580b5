"""Tasks: the list (each opens to its runs), creating one, and starting a run of it."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from codeforge.domain.limits import Limits
from codeforge.domain.runs import DeliverMode, SandboxMode
from codeforge.services.agents import Agents
from codeforge.services.projects import Projects
from codeforge.services.runs import Runs
from codeforge.services.tasks import Tasks
from codeforge.web import views
from codeforge.web.forms import Form
from codeforge.web.pages import Pages, with_query
from codeforge.web.session import PageUser

# What a run can deliver today: `branch` and `pr` need a git host (refused at start).
DELIVER_CHOICES = (DeliverMode.PATCH, DeliverMode.COMMIT_LOCAL)
RUNS_PER_TASK = 20


class TaskPages(Controller):
    path = "/tasks"

    @get("/")
    async def list_tasks(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        tasks: NamedDependency[Tasks],
        runs: NamedDependency[Runs],
        projects: NamedDependency[Projects],
        agents: NamedDependency[Agents],
        project_id: FromQuery[uuid.UUID | None] = None,
        cursor: FromQuery[uuid.UUID | None] = None,
    ) -> Template:
        principal = user.principal
        filters = {"project_id": str(project_id)} if project_id else {}
        page = await tasks.list(principal, limit=views.PAGE, after=cursor, filters=filters)
        names = views.Names(principal, tasks, agents)
        runs_of = {
            task.id: await names.rows(
                await views.every(runs.list, principal, limit=RUNS_PER_TASK, task_id=task.id)
            )
            for task in page.items
        }
        return pages.render(
            request,
            user,
            "tasks/list.html",
            page=page,
            runs_of=runs_of,
            project_id=project_id,
            projects=await views.projects_by_id(projects, principal),
            agents=await views.every(agents.list, principal),
            modes=list(SandboxMode),
            deliver_choices=DELIVER_CHOICES,
        )

    @post("/")
    async def create(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        tasks: NamedDependency[Tasks],
    ) -> Redirect:
        task = await tasks.create(
            user.principal,
            project_id=form.uuid("project_id", label="project"),
            title=form.text("title", max_length=500),
            prompt=form.text("prompt"),
            acceptance_criteria=form.lines("acceptance_criteria", label="acceptance criteria"),
        )
        target = with_query("/tasks", project_id=task.project_id) + f"#task-{task.id}"
        return pages.redirect(request, target, message=f"Task “{task.title}” created.")

    @post("/{task_id:uuid}/runs")
    async def start_run(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        runs: NamedDependency[Runs],
        task_id: FromPath[uuid.UUID],
    ) -> Redirect:
        run = await runs.start(
            user.principal,
            task_id=task_id,
            agent_id=form.uuid("agent_id", label="agent"),
            mode=form.optional_choice("mode", SandboxMode),
            deliver=form.choice("deliver", DeliverMode),
            limits=form_limits(form),
            request_id=request.state.get("request_id"),
        )
        return pages.redirect(request, f"/runs/{run.id}", message="Run started.")


def form_limits(form: Form) -> Limits | None:
    """The limits a run form tightens (None: nothing set)."""
    limits = Limits(
        max_steps=form.integer("max_steps", label="max steps", minimum=1),
        max_wall_seconds=form.integer("max_wall_seconds", label="max wall time", minimum=1),
        max_cost_usd=form.decimal("max_cost_usd", label="max cost"),
    )
    return None if limits == Limits() else limits
