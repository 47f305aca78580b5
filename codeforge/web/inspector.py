"""The trajectory inspector: step through a run's events, see the files at each
checkpoint, and go back (rewind), sideways (fork) or again (replay) from there."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from codeforge.domain.errors import DomainError, NotFound
from codeforge.domain.events import CheckpointCreated, StoredEvent
from codeforge.domain.keys import Principal
from codeforge.domain.runs import DeliverMode, SandboxMode
from codeforge.services.checkpoint_diffs import CheckpointDiff, CheckpointDiffs
from codeforge.services.run_history import RewindPlan, RunHistory
from codeforge.services.runs import Runs
from codeforge.web import views
from codeforge.web.forms import Form
from codeforge.web.pages import Pages
from codeforge.web.session import PageUser
from codeforge.web.tasks import DELIVER_CHOICES, form_limits


class InspectorPages(Controller):
    path = "/runs/{run_id:uuid}"

    @get("/inspect")
    async def inspect(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        runs: NamedDependency[Runs],
        diffs: NamedDependency[CheckpointDiffs],
        history: NamedDependency[RunHistory],
        run_id: FromPath[uuid.UUID],
        seq: FromQuery[int | None] = None,
        against: FromQuery[Literal["previous", "base"]] = "previous",
        rewind: FromQuery[bool] = False,
    ) -> Template:
        principal = user.principal
        run = await runs.get(principal, run_id)
        events, more = await views.run_events(runs, principal, run_id)
        steps = [e for e in events if e.type != "HeartbeatRecorded"]
        selected = next((e for e in steps if e.seq == seq), steps[-1] if steps else None)
        at = selected.seq if selected else 0
        index = steps.index(selected) if selected else 0
        checkpoints = [e for e in events if isinstance(e.event, CheckpointCreated)]
        bound = _checkpoint_at(checkpoints, at)
        return pages.render(
            request,
            user,
            "runs/inspect.html",
            run=run,
            steps=steps,
            more_events=more,
            selected=selected,
            previous=steps[index - 1] if selected and index > 0 else None,
            next=steps[index + 1] if selected and index + 1 < len(steps) else None,
            checkpoints=checkpoints,
            bound=bound,
            against=against,
            diff=await _diff(diffs, principal, run_id, bound, against),
            plan=await _preview(history, principal, run_id, at) if rewind else None,
            modes=list(SandboxMode),
            deliver_choices=DELIVER_CHOICES,
        )

    @post("/rewind")
    async def rewind(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        history: NamedDependency[RunHistory],
        run_id: FromPath[uuid.UUID],
    ) -> Redirect:
        to_seq = form.integer("to_seq", label="event", minimum=1) or 0
        plan = await history.rewind(user.principal, run_id, to_seq, dry_run=False)
        return pages.redirect(
            request,
            f"/runs/{run_id}",
            message=f"Rewound to event {plan.to_seq} ({len(plan.changes)} file(s) to restore); "
            "the run is queued and goes on from there.",
        )

    @post("/fork")
    async def fork(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        form: NamedDependency[Form],
        pages: NamedDependency[Pages],
        history: NamedDependency[RunHistory],
        run_id: FromPath[uuid.UUID],
    ) -> Redirect:
        at_seq = form.integer("at_seq", label="event", minimum=1) or 0
        forked = await history.fork(
            user.principal,
            run_id,
            at_seq,
            mode=form.optional_choice("mode", SandboxMode),
            deliver=form.optional_choice("deliver", DeliverMode),
            limits=form_limits(form),
        )
        return pages.redirect(
            request, f"/runs/{forked.id}", message=f"Forked from event {at_seq} of the run."
        )

    @post("/replay")
    async def replay(
        self,
        request: Request[Any, Any, Any],
        user: NamedDependency[PageUser],
        pages: NamedDependency[Pages],
        history: NamedDependency[RunHistory],
        run_id: FromPath[uuid.UUID],
    ) -> Redirect:
        replayed = await history.replay(user.principal, run_id)
        return pages.redirect(
            request,
            f"/runs/{replayed.id}",
            message="Replay started: the recorded model responses are played back, "
            "and every difference is reported.",
        )


def _checkpoint_at(checkpoints: list[StoredEvent], seq: int) -> StoredEvent | None:
    """The checkpoint the files were at after event `seq` (None: the base commit)."""
    bound = None
    for stored in checkpoints:
        made = stored.event
        if isinstance(made, CheckpointCreated) and made.after_seq <= seq:
            bound = stored
    return bound


async def _diff(
    diffs: CheckpointDiffs,
    principal: Principal,
    run_id: uuid.UUID,
    bound: StoredEvent | None,
    against: Literal["previous", "base"],
) -> CheckpointDiff | str | None:
    """The diff at the checkpoint, or why there is none to show (a pruned checkpoint)."""
    if bound is None or not isinstance(bound.event, CheckpointCreated):
        return None
    try:
        return await diffs.diff(principal, run_id, bound.event.checkpoint_id, against)
    except NotFound as e:
        return e.message


async def _preview(
    history: RunHistory, principal: Principal, run_id: uuid.UUID, seq: int
) -> RewindPlan | str:
    """What a rewind to `seq` would change, or why it cannot be done (shown in place)."""
    try:
        return await history.rewind(principal, run_id, seq, dry_run=True)
    except DomainError as e:
        return e.message
