"""`codeforge run`: one run on a local repository, without a server.

It starts what `codeforge serve` starts except HTTP — the database (embedded unless
`database.url` is set), migrations, the in-process queue and one worker — registers
the repository as a project (CodeForge clones it; the user's checkout is never
touched), creates the task and the agent, starts the run and follows its events,
printing progress as it happens (or, with `--json`, one JSON object per line: every
stored event and every live delta, like `codex exec --json`). It ends with the result
and where the patch was written; with `--deliver commit-local` the run's branch is
then copied into the user's repository (objects and one new ref — working tree,
index and HEAD untouched), and it says so. Ctrl-C cancels the run and waits for it to
stop. Exit status: 0 when the run succeeded, 1 when it failed or was cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import signal
import sys
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import msgspec

from codeforge.domain.errors import DomainError, NotFound, ValidationFailed
from codeforge.domain.events import (
    CheckpointCreated,
    ModelResponded,
    PolicyDecided,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
    StoredEvent,
    ToolCallCompleted,
    ToolCallRequested,
    WorkspacePrepared,
    encode_payload,
)
from codeforge.domain.ids import DEFAULT_TENANT_ID
from codeforge.domain.keys import Principal, Role
from codeforge.domain.limits import Limits
from codeforge.domain.runs import DeliverMode, Run, SandboxMode
from codeforge.ports.errors import PortError
from codeforge.runtime import Runtime
from codeforge.services.event_streams import Heartbeat, LiveDelta

CLI_PRINCIPAL = Principal(tenant_id=DEFAULT_TENANT_ID, key_id=uuid.UUID(int=0), role=Role.ADMIN)


class RunRequest(msgspec.Struct, frozen=True, kw_only=True):
    repo: Path
    task: str
    title: str = ""
    model: str = ""
    deliver: DeliverMode = DeliverMode.PATCH
    mode: SandboxMode | None = None
    max_cost_usd: Decimal | None = None
    max_steps: int | None = None
    as_json: bool = False


async def run_headless(runtime: Runtime, request: RunRequest, out: TextIO = sys.stdout) -> int:
    """Run the task to its end; the process exit status."""
    await runtime.start(issue_first_admin_key=False)
    services = runtime.services
    repo = request.repo.expanduser().resolve()
    model = request.model or runtime.settings.llm.default_model
    if not model:
        raise ValidationFailed(
            "no model: pass --model NAME (a model in the config's `models:`), or set "
            "llm.base_url and llm.default_model",
            field="model",
        )
    project, notice = await _project_for(runtime, repo)
    agent = await _agent_for(runtime, model)
    title = request.title or _title_of(request.task)
    task = await services.tasks.create(
        CLI_PRINCIPAL, project_id=project.id, title=title, prompt=request.task
    )
    report = Reporter(out, as_json=request.as_json)
    run = await services.runs.start(
        CLI_PRINCIPAL,
        task_id=task.id,
        agent_id=agent.id,
        mode=request.mode,
        deliver=request.deliver,
        limits=Limits(max_cost_usd=request.max_cost_usd, max_steps=request.max_steps),
        # Nobody answers asks at a terminal run: the auto-approval rules decide.
        policy_overrides={"headless": True},
    )
    if notice:
        report.note(notice)
    report.note(f"run {run.id}: {title!r} on {repo} with model {model} ({run.mode.value} sandbox)")
    cancelled = asyncio.Event()
    with _cancel_on_interrupt(lambda: cancelled.set()):
        follower = asyncio.create_task(_follow(runtime, run, report))
        stopper = asyncio.create_task(cancelled.wait())
        await asyncio.wait({follower, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not follower.done():
            report.note("interrupted: cancelling the run…")
            with contextlib.suppress(Exception):
                await services.runs.cancel(CLI_PRINCIPAL, run.id, "interrupted at the terminal")
            await follower
        stopper.cancel()
    final = await services.runs.get(CLI_PRINCIPAL, run.id)
    return await _conclude(runtime, final, repo, report)


async def _follow(runtime: Runtime, run: Run, report: Reporter) -> None:
    async for item in runtime.services.event_streams.run_events(CLI_PRINCIPAL, run.id):
        if isinstance(item, Heartbeat):
            continue
        if isinstance(item, LiveDelta):
            report.delta(item)
        else:
            report.event(item)


async def _conclude(runtime: Runtime, run: Run, repo: Path, report: Reporter) -> int:
    result = run.result
    artifact = result.artifact if result else {}
    patch_path = None
    if artifact.get("patch"):
        found = await runtime.services.artifacts.get(CLI_PRINCIPAL, run.id, "patch")
        patch_path = runtime.settings.data_path / "artifacts" / f"run-{run.id}.patch"
        await asyncio.to_thread(patch_path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(patch_path.write_bytes, found.content)
    branch_note = None
    if run.status.value == "succeeded" and artifact.get("commit"):
        git = await runtime.container.git()
        clone = runtime.settings.data_path / "runs" / str(run.id)
        await git.fetch_branch(repo, clone, artifact["branch"])
        branch_note = (
            f"added branch {artifact['branch']} to {repo} (commit {artifact['commit'][:12]}; "
            "only objects and this one ref were written — your working tree, index and HEAD "
            "are untouched)"
        )
    report.conclusion(run, patch_path, branch_note)
    return 0 if run.status.value == "succeeded" else 1


async def _project_for(runtime: Runtime, repo: Path) -> tuple[Any, str | None]:
    """The project registered for `repo`: named after the folder and a hash of its path."""
    projects = runtime.services.projects
    slug = re.sub(r"[^a-z0-9._-]+", "-", repo.name.lower()).strip("-._") or "repo"
    name = f"{slug[:50]}-{hashlib.sha256(str(repo).encode()).hexdigest()[:8]}"
    page = await projects.list(CLI_PRINCIPAL, limit=1, after=None, filters={"name": name})
    if not page.items:
        return await projects.create(CLI_PRINCIPAL, name=name, source=str(repo)), None
    project = page.items[0]
    try:
        # Bring CodeForge's clone up to the repository's commits (fast-forward only).
        await projects.git_pull(CLI_PRINCIPAL, project.id)
    except (DomainError, PortError) as e:
        reason = e.message if isinstance(e, DomainError) else str(e)
        return project, f"working from CodeForge's earlier copy of {repo}: {reason}"
    return project, None


async def _agent_for(runtime: Runtime, model: str) -> Any:
    agents = runtime.services.agents
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"cli-{model}")[:60]
    page = await agents.list(CLI_PRINCIPAL, limit=1, after=None, filters={"name": name})
    if page.items:
        return page.items[0]
    try:
        return await agents.create(CLI_PRINCIPAL, name=name, model=model)
    except (NotFound, ValidationFailed) as e:
        raise ValidationFailed(
            f"model {model!r} is not registered: add it under `models:` in your config "
            "(or set llm.base_url and llm.default_model)",
            field="model",
        ) from e


def _title_of(task: str) -> str:
    first = task.strip().splitlines()[0] if task.strip() else "task"
    return first if len(first) <= 80 else first[:77] + "…"


@contextlib.contextmanager
def _cancel_on_interrupt(cancel: Callable[[], None]) -> Any:
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, cancel)
        loop.add_signal_handler(signal.SIGTERM, cancel)
    except (NotImplementedError, RuntimeError):  # not the main thread
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)


class Reporter:
    """Progress for a person (short lines) or for a program (JSON lines)."""

    def __init__(self, out: TextIO, *, as_json: bool) -> None:
        self._out = out
        self._json = as_json

    def note(self, text: str) -> None:
        if self._json:
            self._line({"type": "note", "text": text})
        else:
            self._print(text)

    def delta(self, delta: LiveDelta) -> None:
        if self._json:
            self._line({"type": "delta", "stream": delta.stream, "call_id": delta.call_id,
                        "text": delta.text})  # fmt: skip
        elif delta.stream in ("stdout", "stderr"):
            for line in delta.text.splitlines():
                self._print(f"      | {line}")

    def event(self, stored: StoredEvent) -> None:
        if self._json:
            self._line(
                {
                    "type": "event",
                    "seq": stored.seq,
                    "event": stored.type,
                    "data": encode_payload(stored.event),
                }
            )
            return
        text = _describe(stored)
        if text:
            self._print(text)

    def conclusion(self, run: Run, patch: Path | None, branch_note: str | None) -> None:
        result = run.result
        summary = {
            "type": "result",
            "run_id": str(run.id),
            "status": run.status.value,
            "summary": result.summary if result else "",
            "detail": (result.artifact.get("detail") if result else None) or None,
            "steps": run.steps,
            "cost_usd": str(run.cost_usd),
            "patch": str(patch) if patch else None,
            "branch": branch_note,
        }
        if self._json:
            self._line(summary)
            return
        self._print("")
        self._print(f"{run.status.value.upper()}: {summary['summary']}")
        if summary["detail"]:
            self._print(f"  {summary['detail']}")
        self._print(f"  {run.steps} model calls, ${run.cost_usd:.6f}")
        if branch_note:
            self._print(f"  {branch_note}")
        self._print(f"  patch: {patch}" if patch else "  no changes were made")

    def _line(self, value: dict[str, Any]) -> None:
        self._print(json.dumps(value, default=str, ensure_ascii=False))

    def _print(self, text: str) -> None:
        print(text, file=self._out, flush=True)


def _describe(stored: StoredEvent) -> str:
    match stored.event:
        case RunStarted():
            return "started"
        case WorkspacePrepared(path=path, branch=branch):
            return f"worktree {path} on {branch}"
        case ModelResponded(step=step, content=content, output_tokens=out, cost_usd=cost):
            said = " ".join(content.split())
            said = said if len(said) <= 160 else said[:157] + "…"
            price = f", ${cost:.6f}" if cost is not None else ""
            return f"[step {step}] {said or '(tool calls)'}  ({out} tokens{price})"
        case ToolCallRequested(tool=tool, arguments=arguments, raw_arguments=raw):
            shown = json.dumps(arguments, ensure_ascii=False) if arguments else raw
            return f"  → {tool} {shown if len(shown) <= 160 else shown[:157] + '…'}"
        case PolicyDecided(decision=decision, reason=reason) if decision != "allow":
            return f"  policy: {decision} ({reason})"
        case ToolCallCompleted(tool=tool, ok=ok, output=output, exit_code=code):
            first = output.strip().splitlines()[0] if output.strip() else ""
            mark = "✓" if ok else "✗"
            exit_note = f" exit {code}" if code is not None else ""
            return f"  {mark} {tool}{exit_note}: {first[:160]}"
        case CheckpointCreated(changed=changed):
            return f"  checkpoint: {', '.join(changed[:5])}{' …' if len(changed) > 5 else ''}"
        case RunCompleted() | RunFailed() | RunCancelled():
            return ""
    return ""
