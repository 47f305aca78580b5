"""Projects: the list, registering one, and a project's page — git, gates, budget,
and the policy profile its runs use."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from codeforge.domain.gates import QualityGates
from codeforge.domain.limits import Limits
from codeforge.services.policies import Policies
from codeforge.services.projects import Projects
from codeforge.services.runs import Runs
from codeforge.services.tasks import Tasks
from codeforge.web import views
from codeforge.web.forms import Form
from codeforge.web.pages import Pages
from codeforge.web.session import PageUser

DEFAULT_GATES = QualityGates()


class ProjectPages(Controller):
    path = "/projects"

    @get("/")
    async def list_projects(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        projects: NamedDependency[Projects],
        cursor: FromQuery[uuid.UUID | None] = None,
    ) -> Template:
        page = await projects.list(user.principal, limit=views.PAGE, after=cursor, filters={})
        return pages.render(request, user, "projects/list.html", page=page)

    @post("/")
    async def create(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        projects: NamedDependency[Projects],
    ) -> Redirect:
        project = await projects.create(
            user.principal,
            name=form.text("name", max_length=63),
            source=form.text("source", label="repository", max_length=4096),
            default_branch=form.optional_text("default_branch", max_length=255) or None,
            description=form.optional_text("description", max_length=10_000),
        )
        return pages.redirect(
            request,
            f"/projects/{project.id}",
            message=f"Project {project.name} registered: CodeForge cloned it into its workspace.",
        )

    @get("/{project_id:uuid}")
    async def detail(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        projects: NamedDependency[Projects],
        tasks: NamedDependency[Tasks],
        runs: NamedDependency[Runs],
        policies: NamedDependency[Policies],
        project_id: FromPath[uuid.UUID],
    ) -> Template:
        principal = user.principal
        project = await projects.get(principal, project_id)
        return pages.render(
            request,
            user,
            "projects/detail.html",
            project=project,
            profiles=await views.profile_choices(policies, principal, project.id),
            git=await views.git_view(projects, principal, project_id),
            tasks=await views.every(tasks.list, principal, limit=views.PAGE, project_id=project.id),
            runs=await views.every(runs.list, principal, limit=views.PAGE, project_id=project.id),
        )

    @post("/{project_id:uuid}/pull")
    async def pull(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        projects: NamedDependency[Projects],
        project_id: FromPath[uuid.UUID],
    ) -> Redirect:
        pulled = await projects.git_pull(user.principal, project_id)
        message = (
            f"Pulled {pulled.commits} commit(s) from {pulled.upstream}: "
            f"{(pulled.before or '')[:10]} → {(pulled.after or '')[:10]}."
            if pulled.updated
            else f"Already up to date with {pulled.upstream}."
        )
        return pages.redirect(request, f"/projects/{project_id}", message=message)

    @post("/{project_id:uuid}/checkout")
    async def checkout(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        projects: NamedDependency[Projects],
        project_id: FromPath[uuid.UUID],
    ) -> Redirect:
        ref = form.text("ref", label="branch, tag or commit", max_length=255)
        status = await projects.git_checkout(
            user.principal, project_id, ref, create=form.checkbox("create")
        )
        where = status.branch or f"{(status.head or '')[:10]} (detached)"
        return pages.redirect(request, f"/projects/{project_id}", message=f"Checked out {where}.")

    @post("/{project_id:uuid}/settings")
    async def settings(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        projects: NamedDependency[Projects],
        policies: NamedDependency[Policies],
        project_id: FromPath[uuid.UUID],
    ) -> Redirect:
        version = form.version()
        current = await projects.get(user.principal, project_id)
        gates = QualityGates(
            tests=form.optional_text("tests", label="test command", max_length=2000),
            lint=form.optional_text("lint", label="lint command", max_length=2000),
            require_tests_pass=form.checkbox("require_tests_pass"),
            require_lint_pass=form.checkbox("require_lint_pass"),
            max_diff_lines=form.integer("max_diff_lines", label="max diff lines", minimum=1),
            rollback_on_gate_fail=form.checkbox("rollback_on_gate_fail"),
            stall_detection=form.checkbox("stall_detection"),
            max_attempts=form.integer("max_attempts", label="max attempts", minimum=1)
            or DEFAULT_GATES.max_attempts,
            timeout_seconds=form.integer("timeout_seconds", label="gate timeout", minimum=1)
            or DEFAULT_GATES.timeout_seconds,
        )
        limits = Limits(
            max_steps=form.integer("max_steps", label="max steps", minimum=1),
            max_wall_seconds=form.integer("max_wall_seconds", label="max wall time", minimum=1),
            max_cost_usd=form.decimal("max_cost_usd", label="max cost per run"),
        )
        changes = {
            "policy_profile": await views.chosen_profile(
                policies,
                user.principal,
                form.optional_text("policy_profile") or "default",
                project_id=project_id,
                current=current.policy_profile,
            ),
            "gates": gates,
            "quality_gates": form.lines("quality_gates", label="more gate commands"),
            "budget_usd": form.decimal("budget_usd", label="budget"),
            "limits": limits,
            "description": form.optional_text("description", max_length=10_000),
        }
        await projects.update(user.principal, project_id, version, changes)
        return pages.redirect(request, f"/projects/{project_id}", message="Settings saved.")

    @post("/{project_id:uuid}/delete")
    async def delete(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        projects: NamedDependency[Projects],
        project_id: FromPath[uuid.UUID],
    ) -> Redirect:
        project = await projects.get(user.principal, project_id)
        await projects.delete(user.principal, project_id, form.version())
        return pages.redirect(
            request, "/projects", message=f"Project {project.name} and its workspace removed."
        )
