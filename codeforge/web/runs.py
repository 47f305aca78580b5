"""Runs: the list, and the run monitor — live output, asks to answer, controls, diff, result.

The monitor renders the run as stored; the page's script then follows the run's SSE
stream: live output (`event: delta`) is appended as it comes, and each stored event
makes it fetch this page again with `?after=<last seq it has>` to take the new
timeline entries and the fresh regions (status, asks, diff, result). Without the
script the page is complete as of its loading; reloading it brings it up to date.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from codeforge.domain.errors import ValidationFailed
from codeforge.domain.runs import RunStatus
from codeforge.services.agents import Agents
from codeforge.services.approvals import RunApprovals
from codeforge.services.artifacts import Artifacts
from codeforge.services.checkpoint_diffs import CheckpointDiffs
from codeforge.services.projects import Projects
from codeforge.services.run_history import RunHistory
from codeforge.services.runs import Runs
from codeforge.services.tasks import Tasks
from codeforge.web import views
from codeforge.web.forms import Form
from codeforge.web.pages import Pages
from codeforge.web.session import PageUser

# The most of a patch the monitor shows (the download has all of it).
PATCH_CHARS = 200_000


class RunPages(Controller):
    path = "/runs"

    @get("/")
    async def list_runs(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        runs: NamedDependency[Runs],
        tasks: NamedDependency[Tasks],
        agents: NamedDependency[Agents],
        status: FromQuery[RunStatus | None] = None,
        cursor: FromQuery[uuid.UUID | None] = None,
    ) -> Template:
        filters = {"status": status.value} if status else {}
        page = await runs.list(user.principal, limit=views.PAGE, after=cursor, filters=filters)
        rows = await views.Names(user.principal, tasks, agents).rows(page.items)
        return pages.render(
            request,
            user,
            "runs/list.html",
            rows=rows,
            next_cursor=page.next_cursor,
            status=status,
            statuses=list(RunStatus),
        )

    @get("/{run_id:uuid}")
    async def monitor(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        runs: NamedDependency[Runs],
        tasks: NamedDependency[Tasks],
        agents: NamedDependency[Agents],
        projects: NamedDependency[Projects],
        approvals: NamedDependency[RunApprovals],
        artifacts: NamedDependency[Artifacts],
        diffs: NamedDependency[CheckpointDiffs],
        run_id: FromPath[uuid.UUID],
        after: FromQuery[int] = 0,
    ) -> Template:
        principal = user.principal
        run = await runs.get(principal, run_id)
        # One snapshot: events appended after the run was read wait for the stream (the
        # page follows it from `run.last_seq`), or the status and the events disagree.
        events, more = await views.run_events(runs, principal, run_id)
        events = [e for e in events if e.seq <= run.last_seq]
        stored = await artifacts.list(principal, run_id)
        patch = None
        if run.status.terminal and any(a.name == "patch" for a in stored):
            content = (await artifacts.get(principal, run_id, "patch")).content
            patch = content[:PATCH_CHARS].decode("utf-8", "replace")
        return pages.render(
            request,
            user,
            "runs/monitor.html",
            run=run,
            task=await views.task_of(tasks, principal, run.task_id),
            agent=await views.agent_of(agents, principal, run.agent_id),
            project=await views.project_of(projects, principal, run.project_id),
            timeline=[e for e in events if e.seq > after and e.type != "HeartbeatRecorded"],
            more_events=more,
            last_seq=run.last_seq,
            policy=[e for e in events if e.type == "PolicyDecided"],
            approvals=await approvals.list(principal, run_id),
            artifacts=stored,
            patch=patch,
            patch_truncated=patch is not None and len(patch) >= PATCH_CHARS,
            so_far=None if patch is not None else await diffs.latest(principal, run_id),
        )

    @post("/{run_id:uuid}/cancel")
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        runs: NamedDependency[Runs],
        run_id: FromPath[uuid.UUID],
    ) -> Redirect:
        await runs.cancel(user.principal, run_id, form.optional_text("reason", max_length=500))
        return pages.redirect(request, f"/runs/{run_id}", message="Cancel requested.")

    @post("/{run_id:uuid}/pause")
    async def pause(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        history: NamedDependency[RunHistory],
        run_id: FromPath[uuid.UUID],
    ) -> Redirect:
        await history.pause(user.principal, run_id, form.optional_text("reason", max_length=500))
        return pages.redirect(
            request, f"/runs/{run_id}", message="Pause requested: the run stops within a second."
        )

    @post("/{run_id:uuid}/resume")
    async def resume(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        history: NamedDependency[RunHistory],
        run_id: FromPath[uuid.UUID],
    ) -> Redirect:
        await history.resume(user.principal, run_id)
        return pages.redirect(
            request, f"/runs/{run_id}", message="Resumed: the run is queued for a worker."
        )

    @post("/{run_id:uuid}/approvals/{approval_id:str}")
    async def answer(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        approvals: NamedDependency[RunApprovals],
        run_id: FromPath[uuid.UUID],
        approval_id: FromPath[str],
    ) -> Redirect:
        decision = form.raw("decision")
        if decision not in ("allow", "deny"):
            raise ValidationFailed("answer an ask with allow or deny", field="decision")
        scope: Literal["once", "run"] = "run" if form.checkbox("scope") else "once"
        asked = await approvals.answer(
            user.principal,
            run_id,
            approval_id,
            allow=decision == "allow",
            scope=scope,
            reason=form.optional_text("reason", max_length=1000),
        )
        verb = "Allowed" if decision == "allow" else "Denied"
        extent = " for the rest of the run" if scope == "run" else ""
        return pages.redirect(
            request, f"/runs/{run_id}", message=f"{verb}{extent}: {asked.tool} — the run goes on."
        )
