"""The aider backend: a run done by the `aider` CLI, under CodeForge's rules.

`AgentExecutor` hands a run whose agent has `backend: aider` to `AiderBackend.work`
once the worktree is ready; planning, cost holds and delivery stay the executor's,
so the diff is delivered exactly like the native backend's.

How a run goes:

1. aider's venv is found or created (`AiderInstall`; a failure ends the run
   `backend_unavailable` saying why).
2. The run's sandbox (its `mode`) opens in network mode `llm`: the only thing aider
   can reach is this worker's LLM proxy socket (`codeforge.http.llm_socket`), with the
   run's own token (`LlmProxy.token_for`). Every model call is therefore a call of the
   run: reserved against its budgets, settled, recorded as `ModelResponded` by the
   proxy. The venv (and the interpreter it was made from) is mounted read-only.
3. The message: the task (title, prompt, acceptance criteria), the agent's
   instructions and the context pack (the file tree); files the task names are added
   to aider's chat, `AGENTS.md` / `CODEFORGE.md` given read-only. Stored as
   `PromptAssembled` (tools: `["aider"]`).
4. aider runs once with `--message`: no git at all (`--no-git`: the worktree's git
   metadata lives outside the sandbox, and CodeForge delivers), no auto-commits, no
   lint or test runs, no shell commands, no URL scraping, no update check, analytics
   off, `--yes-always`, its history files in the sandbox's private HOME, no config
   file from the repository (an empty `--config`, `--env-file /dev/null`).
   `LITELLM_LOCAL_MODEL_COST_MAP=True` and a model metadata file (context window,
   prices) keep litellm and aider from fetching price lists. Its output streams live
   (stdout, stderr) and is stored in its `ToolCallRequested` / `ToolCallCompleted`
   pair (tool `aider`, call id `aider-<n>`).
5. **Turns.** aider waits for each model answer, so when its next call reaches the
   proxy the previous turn's edits are on disk: the socket's watcher
   (`proxy_watch`) calls back here before forwarding it, and when aider exits. At each
   such boundary the workspace is compared with the previous one; every changed path
   goes through the policy gate as an `edit` (a file that existed) or `write_file` (a
   new one) `ToolRequest`, recorded like a native call — `ToolCallRequested` (with
   `"by": "aider"`), `PolicyDecided`, `ToolCallCompleted` with the path's diff — and
   then the checkpoint hook stores the state (`CheckpointCreated`). An `ask` goes to
   the approvals flow. A denied path is put back as it was at the previous boundary
   (the previous checkpoint, or the base), aider is stopped, and the run fails
   `policy_denied` naming the path and the rule. Under a hybrid sandbox the layer
   cannot be merged while aider runs, so its edits are checked, merged and
   checkpointed once, when it exits.
6. When aider exits the project's quality gates run, as for the native backend; a
   failure goes back to aider as a new `--message` (up to `gates.max_attempts`).

Ends: `budget_exceeded` (the proxy answered 402: aider is stopped at once instead of
retrying), `max_steps` (the run's model calls; the next call is refused),
`wall_time`, `cancelled`, `model_error` / `context_too_long` (the proxy's upstream
refused), `policy_denied`, `backend_error` (aider failed: the detail holds its last
output), `backend_unavailable`, `sandbox_unavailable`, `quality_gates_failed`.

A run that resumes after a restart marks its interrupted aider call and starts aider
again on the worktree as the last checkpoint left it (aider's own chat history is
not kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import structlog

from codeforge.agent import gates as gate_results
from codeforge.agent.approvals import Approvals, Ask
from codeforge.agent.backends.aider_install import AiderEnv, AiderInstall, AiderUnavailable
from codeforge.agent.backends.proxy_watch import CallOutcome, CallRefused, ProxyWatch
from codeforge.agent.deltas import DeltaPublisher
from codeforge.agent.gates import GateRunner
from codeforge.agent.llm_proxy import LlmProxy
from codeforge.agent.prompt import INSTRUCTION_FILES, task_message
from codeforge.agent.tools.base import cap
from codeforge.domain.agents import Agent
from codeforge.domain.events import (
    CheckpointCreated,
    Event,
    ModelResponded,
    PolicyDecided,
    PromptAssembled,
    QualityGatesChecked,
    StoredEvent,
    ToolCallCompleted,
    ToolCallRequested,
)
from codeforge.domain.model_configs import ModelConfig
from codeforge.domain.projects import Project
from codeforge.domain.runs import Run
from codeforge.domain.tasks import Task
from codeforge.ports.checkpoints import CheckpointHook, RunWorkspace
from codeforge.ports.context import ContextProvider
from codeforge.ports.events import RunEventFeed
from codeforge.ports.executor import Journal, Outcome, RunControls
from codeforge.ports.policy import (
    Decision,
    PolicyDecision,
    PolicyGate,
    ToolCategory,
    ToolRequest,
)
from codeforge.ports.sandbox import (
    LayeredSandbox,
    MergeConflict,
    NetworkMode,
    OutputChunk,
    ReadOnlyMount,
    Sandbox,
    SandboxError,
    SandboxFactory,
    SandboxLimits,
    SandboxSpec,
)
from codeforge.services.git_work import GitRunner
from codeforge.settings import AgentSettings, AiderSettings

log = structlog.get_logger("codeforge.aider")

TOOL = "aider"
INTERRUPTED = (
    "interrupted: the worker running aider stopped before it finished (the run was "
    "resumed); the workspace holds whatever it had changed by then"
)
RESUMED_NOTE = (
    "\n\n(An earlier attempt at this task was interrupted; the files may already hold "
    "some of its changes. Check them before you edit.)"
)
GATES_FAILED_NOTE = "Fix what failed. The files already hold your earlier changes."
# Files the task names (`src/app.py`, `README.md`) that aider gets in its chat.
_MENTION = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w.-]+\.[A-Za-z0-9]{1,8})(?![\w/-])")
MAX_CHAT_FILES = 20
# A turn's diff of a file larger than this is not rendered (the checkpoint has the file).
MAX_DIFF_BYTES = 1024 * 1024
# aider's files in the sandbox's private HOME.
METADATA_FILE = ".codeforge-aider-models.json"
MESSAGE_FILE = ".codeforge-aider-message.md"
# An empty config, so aider reads no .aider.conf.yml (the repository's or a home's).
CONFIG_FILE = ".codeforge-aider.conf.yml"
# Run by the venv's python inside the sandbox: reads the launch spec from stdin (so
# neither the run token nor the message shows in any argv), writes aider's files into
# the private HOME, points aider at the proxy, and becomes aider.
LAUNCHER = """\
import json, os, sys
spec = json.load(sys.stdin)
home = os.environ["HOME"]
for name, text in spec["files"].items():
    with open(os.path.join(home, name), "w", encoding="utf-8") as f:
        f.write(text)
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.environ["OPENAI_API_KEY"] = spec["token"]
os.environ["OPENAI_API_BASE"] = os.environ["CODEFORGE_LLM_URL"] + "/llm/v1"
args = [a.replace("{HOME}", home) for a in spec["args"]]
os.execv(spec["aider"], [spec["aider"], "--openai-api-base", os.environ["OPENAI_API_BASE"], *args])
"""
# What aider sees besides the sandbox's base: no price-list fetch from litellm, no
# colour or terminal games, UTF-8 I/O.
AIDER_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "PYTHONIOENCODING": "utf-8",
    "AIDER_ANALYTICS": "false",
    "AIDER_CHECK_UPDATE": "false",
}
# How a changed path is put to the gate: a new file is a write, anything else an edit.
_WRITE: tuple[str, ToolCategory] = ("write_file", "write")
_EDIT: tuple[str, ToolCategory] = ("edit", "edit")
# The reason a proxy error ends the run with (by the proxy's error code, then status).
_BY_CODE = {
    "budget_exceeded": "budget_exceeded",
    "context_length_exceeded": "context_too_long",
    "upstream_unavailable": "model_error",
    "upstream_error": "model_error",
    "run_ended": "run_ended",
    "invalid_api_key": "backend_error",
}


@dataclass
class AiderJob:
    """One run, as the executor hands it over."""

    run: Run
    task: Task
    agent: Agent
    project: Project
    model: ModelConfig
    workspace: RunWorkspace
    factory: SandboxFactory
    history: list[StoredEvent]
    # What every command of a run sees besides the sandbox's base.
    command_env: Mapping[str, str]
    max_steps: int
    wall_seconds: float
    approvals: Callable[[Sandbox], Approvals | None]
    gates: GateRunner | None = None


class AiderBackend:
    def __init__(
        self,
        *,
        install: AiderInstall,
        watch: ProxyWatch,
        proxy: LlmProxy,
        socket: Path,
        gate: PolicyGate,
        checkpoints: CheckpointHook,
        git: GitRunner,
        scratch_dir: Path,
        context: ContextProvider,
        feed: RunEventFeed | None,
        agent_settings: AgentSettings,
        settings: AiderSettings,
    ) -> None:
        self._install = install
        self._watch = watch
        self._proxy = proxy
        self._socket = socket
        self._gate = gate
        self._checkpoints = checkpoints
        self._git = git
        self._scratch = scratch_dir
        self._context = context
        self._feed = feed
        self._agent_settings = agent_settings
        self._settings = settings

    async def work(self, job: AiderJob, cancel: RunControls, journal: Journal) -> Outcome:
        try:
            env = await _unless_cancelled(self._install.ensure(), cancel)
        except AiderUnavailable as e:
            return Outcome(status="failed", reason="backend_unavailable", summary=str(e))
        except asyncio.CancelledError:
            if cancel.is_set():
                return Outcome(status="cancelled")
            raise
        if not self._socket.exists():
            return Outcome(
                status="failed",
                reason="sandbox_unavailable",
                summary=f"the LLM proxy socket {self._socket} is not served by this process "
                "(it starts with the worker)",
            )
        output_bytes = 4 * self._agent_settings.tool_output_chars
        spec = SandboxSpec(
            workspace=job.workspace.path,
            # Backstop only: the session ends aider at the run's wall time itself.
            limits=SandboxLimits(timeout=job.wall_seconds + 3600, output_bytes=output_bytes),
            network=NetworkMode.LLM,
            llm_socket=str(self._socket),
            read_only_mounts=tuple(ReadOnlyMount(source=m) for m in env.mounts),
            env={**job.command_env, **AIDER_ENV},
        )
        try:
            sandbox = await job.factory.open(spec)
        except SandboxError as e:
            return Outcome(status="failed", reason="sandbox_unavailable", summary=e.message)
        async with sandbox:
            session = _Session(self, job, env, sandbox, cancel, journal)
            with self._watch.watching(self._proxy.token_for(job.run), session):
                return await session.run()

    def _index_of(self, workspace: RunWorkspace) -> Path:
        return self._scratch / f"{workspace.run_id}.aider.index"


# A path's state: (git mode, git blob id or None for deleted), as differs from base.
State = dict[str, tuple[int, str | None]]


@dataclass
class _Invocation:
    exit_code: int | None = None
    output: str = ""
    truncated: bool = False
    touched: set[str] = field(default_factory=set)


class _Session:
    """One run's aider, and the `CallWatcher` the proxy socket reports its calls to."""

    def __init__(
        self,
        backend: AiderBackend,
        job: AiderJob,
        env: AiderEnv,
        sandbox: Sandbox,
        cancel: RunControls,
        journal: Journal,
    ) -> None:
        self._b = backend
        self._job = job
        self._env = env
        self._sandbox = sandbox
        self._cancel = cancel
        self._journal = journal
        self._deltas = DeltaPublisher(backend._feed, job.run.tenant_id, job.run.id)
        self._approvals = job.approvals(sandbox)
        self._lock = asyncio.Lock()
        self._seen: State = {}
        self._steps = sum(1 for e in job.history if isinstance(e.event, ModelResponded))
        self._turn_open = False
        self._turn = 0
        self._invocations = 0
        self._call_id = TOOL
        self._invocation: _Invocation | None = None
        self._ended: Outcome | None = None
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + job.wall_seconds

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> Outcome:
        job = self._job
        self._seen = await self._snapshot()
        message, files, read = await self._prompt()
        attempts = 0
        while True:
            attempts += 1
            invocation = await self._invoke(message, files, read)
            if self._ended is not None:
                return self._ended
            if invocation.exit_code != 0:
                return Outcome(
                    status="failed",
                    reason="backend_error",
                    summary=f"aider exited with code {invocation.exit_code}:\n"
                    + cap(invocation.output, 2000)[0],
                )
            if job.gates is None or not job.gates.active:
                return Outcome(status="succeeded", summary=self._summary())
            results = await self._check_gates(attempts)
            if results is None:
                return Outcome(status="succeeded", summary=self._summary())
            if attempts >= job.gates.gates.max_attempts:
                return Outcome(status="failed", reason="quality_gates_failed", summary=results)
            message = results.rsplit("\n", 1)[0] + "\n\n" + GATES_FAILED_NOTE
            files = sorted(set(files) | self._changed_so_far())

    async def _prompt(self) -> tuple[str, list[str], list[str]]:
        """The message and chat files: stored as `PromptAssembled`, or found in the log."""
        job = self._job
        events = [e.event for e in job.history]
        stored = next((e for e in events if isinstance(e, PromptAssembled)), None)
        if stored is not None:
            await self._settle_interrupted(events)
            sources = stored.sources
            files = [f for f in sources.get("chat_files", []) if isinstance(f, str)]
            read = [f for f in sources.get("read_files", []) if isinstance(f, str)]
            return stored.user + RESUMED_NOTE, files, read
        context = await _context_text(self._b._context, job, self._b._agent_settings.context_tokens)
        parts = [task_message(job.task)]
        if job.agent.instructions.strip():
            instructions = job.agent.instructions.strip()
            parts.append(f"Instructions for you as agent {job.agent.name!r}:\n{instructions}")
        if context:
            parts.append(f"What the repository looks like:\n{context}")
        parts.append(
            "Edit the files to complete the task. Do not run commands or commit: CodeForge "
            "checks and delivers your changes."
        )
        message = "\n\n".join(parts)
        files = await self._mentioned_files(job.task)
        read = [name for name in INSTRUCTION_FILES if await self._is_file(name)]
        await self._journal.append(
            PromptAssembled(
                model=job.model.name,
                system="",
                user=message,
                tools=[TOOL],
                sources={
                    "backend": TOOL,
                    "aider_version": self._env.version,
                    "edit_format": self._b._settings.edit_format,
                    "chat_files": files,
                    "read_files": read,
                },
            )
        )
        return message, files, read

    async def _settle_interrupted(self, events: list[Event]) -> None:
        completed = {e.call_id for e in events if isinstance(e, ToolCallCompleted)}
        pending = [
            e for e in events if isinstance(e, ToolCallRequested) and e.call_id not in completed
        ]
        if pending:
            await self._journal.append(
                *(
                    ToolCallCompleted(call_id=c.call_id, tool=c.tool, ok=False, output=INTERRUPTED)
                    for c in pending
                )
            )

    async def _invoke(self, message: str, files: list[str], read: list[str]) -> _Invocation:
        job = self._job
        self._invocations += 1
        earlier = sum(
            1
            for e in job.history
            if isinstance(e.event, ToolCallRequested) and e.event.tool == TOOL
        )
        call_id = f"aider-{earlier + self._invocations}"
        invocation = _Invocation()
        self._invocation = invocation
        self._call_id = call_id
        await self._journal.append(
            ToolCallRequested(
                step=self._steps,
                call_id=call_id,
                tool=TOOL,
                arguments={
                    "message": message,
                    "files": files,
                    "read": read,
                    "version": self._env.version,
                    "edit_format": self._b._settings.edit_format,
                },
            )
        )
        started = time.monotonic()
        launch = {
            "aider": self._env.executable,
            "token": self._b._proxy.token_for(job.run),
            "files": {
                METADATA_FILE: self._metadata(),
                MESSAGE_FILE: message,
                CONFIG_FILE: "{}\n",
            },
            "args": self._arguments(files, read),
        }

        async def relay(chunk: OutputChunk) -> None:
            await self._deltas.emit(chunk.stream, chunk.text, call_id)

        python = str(Path(self._env.venv) / "bin" / "python")
        execution = asyncio.ensure_future(
            self._sandbox.exec(
                [python, "-c", LAUNCHER],
                stdin=json.dumps(launch),
                timeout=max(1.0, self._deadline - asyncio.get_running_loop().time()) + 3600,
                on_output=relay,
            )
        )
        stop = asyncio.ensure_future(self._stop.wait())
        cancelled = asyncio.ensure_future(self._cancel.wait())
        wall = asyncio.ensure_future(self._wall())
        timed_out = False
        try:
            await asyncio.wait(
                {execution, stop, cancelled, wall}, return_when=asyncio.FIRST_COMPLETED
            )
            out_of_time = wall.done()
        finally:
            for waiter in (stop, cancelled, wall):
                waiter.cancel()
            if not execution.done():
                execution.cancel()  # the sandbox kills aider's whole process group
            await asyncio.gather(execution, stop, cancelled, wall, return_exceptions=True)
        if not execution.cancelled():
            error = execution.exception()
            if error is None:
                result = execution.result()
                invocation.exit_code = result.exit_code
                invocation.truncated = result.truncated
                invocation.output = "\n".join(
                    part for part in (result.stdout.rstrip(), result.stderr.rstrip()) if part
                )
                timed_out = result.timed_out
            elif isinstance(error, SandboxError):
                self._end(
                    Outcome(status="failed", reason="sandbox_unavailable", summary=str(error))
                )
            else:
                raise error
        if self._cancel.is_set():
            self._end(Outcome(status="cancelled"))
        elif out_of_time or timed_out:
            self._end(
                Outcome(
                    status="failed",
                    reason="wall_time",
                    summary=f"stopped after {self._job.wall_seconds:g} s of wall time without "
                    "finishing",
                )
            )
        await self._deltas.flush()
        async with self._lock:
            self._turn_open = True
            await self._boundary(final=True)
        output, capped = cap(invocation.output, self._b._agent_settings.tool_output_chars)
        await self._journal.append(
            ToolCallCompleted(
                call_id=call_id,
                tool=TOOL,
                ok=invocation.exit_code == 0 and self._ended is None,
                output=output or _stopped_note(self._ended),
                exit_code=invocation.exit_code,
                duration_s=round(time.monotonic() - started, 4),
                truncated=capped or invocation.truncated,
                timed_out=timed_out,
                touched_paths=sorted(invocation.touched),
            )
        )
        self._invocation = None
        return invocation

    async def _wall(self) -> None:
        loop = asyncio.get_running_loop()
        # The deadline only moves later (approvals give their wait back): sleep to it, look again.
        while (left := self._deadline - loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(left)

    def _arguments(self, files: list[str], read: list[str]) -> list[str]:
        model = f"openai/{self._job.model.name}"
        args = [
            "--model", model, "--weak-model", model, "--editor-model", model,
            "--edit-format", self._b._settings.edit_format,
            "--model-metadata-file", "{HOME}/" + METADATA_FILE,
            "--message-file", "{HOME}/" + MESSAGE_FILE,
            "--config", "{HOME}/" + CONFIG_FILE, "--env-file", "/dev/null",
            "--input-history-file", "{HOME}/.aider.input.history",
            "--chat-history-file", "{HOME}/.aider.chat.history.md",
            "--no-restore-chat-history",
            "--no-git", "--no-gitignore", "--no-auto-commits", "--no-dirty-commits",
            "--map-tokens", "0",
            "--no-auto-lint", "--no-auto-test", "--no-suggest-shell-commands",
            "--no-detect-urls", "--no-check-update", "--no-show-release-notes",
            "--analytics-disable", "--no-analytics", "--no-notifications",
            "--no-show-model-warnings", "--no-check-model-accepts-settings",
            "--no-pretty", "--no-fancy-input", "--stream", "--encoding", "utf-8",
            "--yes-always",
        ]  # fmt: skip
        # `--opt=value`: a file named like an option stays a file name.
        args += [f"--file={name}" for name in files]
        args += [f"--read={name}" for name in read]
        return args

    def _metadata(self) -> str:
        """What aider and litellm know of the model (no fetch of a price list needed)."""
        model = self._job.model
        info: dict[str, Any] = {
            "max_input_tokens": model.context_window,
            "max_tokens": self._b._agent_settings.max_output_tokens,
            "max_output_tokens": self._b._agent_settings.max_output_tokens,
            "litellm_provider": "openai",
            "mode": "chat",
        }
        prices = {
            "input_cost_per_token": model.input_price_per_mtok,
            "output_cost_per_token": model.output_price_per_mtok,
        }
        for key, per_mtok in prices.items():
            if per_mtok is not None:
                info[key] = float(Decimal(str(per_mtok)) / 1_000_000)
        return json.dumps({f"openai/{model.name}": info})

    # -- the proxy's calls (CallWatcher) ---------------------------------------------------

    async def before_call(self) -> None:
        if self._ended is not None:
            raise CallRefused(409, "run_stopping", self._ended.summary or "the run is ending")
        async with self._lock:
            if self._turn_open:
                await self._boundary(final=False)
            if self._ended is not None:
                raise CallRefused(403, "run_stopping", self._ended.summary or "the run is ending")
            if self._steps >= self._job.max_steps:
                self._end(
                    Outcome(
                        status="failed",
                        reason="max_steps",
                        summary=f"stopped after {self._job.max_steps} model calls without "
                        "finishing",
                    )
                )
                raise CallRefused(429, "max_steps", "the run has made all its model calls")
            self._steps += 1
            self._turn_open = True

    async def after_call(self, outcome: CallOutcome) -> None:
        if not outcome.failed or outcome.error_code in ("run_stopping", "max_steps"):
            return
        reason = _BY_CODE.get(outcome.error_code or "")
        if reason is None:
            reason = "model_error" if outcome.status in (400, 404, 502, 503) else "backend_error"
        message = outcome.error_message or f"the LLM proxy answered {outcome.status}"
        self._end(Outcome(status="failed", reason=reason, summary=message))

    def _end(self, outcome: Outcome) -> None:
        if self._ended is None:
            self._ended = outcome
            log.info("aider stopping", reason=outcome.reason or outcome.status)
        self._stop.set()

    # -- turn boundaries -------------------------------------------------------------------

    async def _boundary(self, *, final: bool) -> None:
        """Check, record and checkpoint what aider changed since the last boundary."""
        self._turn_open = False
        sandbox = self._sandbox
        layered = isinstance(sandbox, LayeredSandbox)
        if layered and not final:
            return  # the layer merges only once aider has exited (LayerBusy before)
        if layered:
            assert isinstance(sandbox, LayeredSandbox)
            try:
                await sandbox.merge()
            except MergeConflict as e:
                self._end(Outcome(status="failed", reason="merge_conflict", summary=e.message))
                return
        current = await self._snapshot()
        changed = sorted(
            p for p in current.keys() | self._seen.keys() if current.get(p) != self._seen.get(p)
        )
        if not changed:
            return
        self._turn += 1
        job = self._job
        before = await self._contents(self._seen, changed)
        after = await self._contents(current, changed)
        requested: list[Event] = []
        plans: list[tuple[str, str, str, PolicyDecision]] = []
        for n, path in enumerate(changed, 1):
            call_id = f"{self._call_id}-t{self._turn}-{n}"
            tool, category = _WRITE if before[path] is None else _EDIT
            decision = await self._b._gate.decide(
                ToolRequest(
                    tenant_id=job.run.tenant_id,
                    run_id=job.run.id,
                    project_id=job.run.project_id,
                    tool=tool,
                    category=category,
                    arguments={"path": path},
                    paths=(path,),
                    sandbox=sandbox.kind,
                )
            )
            requested += [
                ToolCallRequested(
                    step=self._steps,
                    call_id=call_id,
                    tool=tool,
                    arguments={"path": path, "by": TOOL, "deleted": after[path] is None},
                ),
                PolicyDecided(
                    call_id=call_id,
                    tool=tool,
                    decision=decision.decision.value,
                    rule=decision.rule,
                    scope=decision.scope,
                    reason=decision.reason,
                ),
            ]
            plans.append((path, call_id, tool, decision))
        await self._journal.append(*requested)
        completions: list[Event] = []
        denied: list[tuple[str, str]] = []
        for path, call_id, tool, decision in plans:
            allowed, why = await self._allowed(path, call_id, tool, decision)
            diff = _diff(path, before[path], after[path])
            if allowed:
                completions.append(
                    ToolCallCompleted(
                        call_id=call_id,
                        tool=tool,
                        ok=True,
                        output=f"aider {'deleted' if after[path] is None else 'wrote'} {path}",
                        touched_paths=[path],
                        diff=diff,
                    )
                )
                if self._invocation is not None:
                    self._invocation.touched.add(path)
                continue
            await self._revert(path, before[path])
            denied.append((path, why))
            completions.append(
                ToolCallCompleted(
                    call_id=call_id,
                    tool=tool,
                    ok=False,
                    output=f"denied by policy: {why}; aider's change to {path} was reverted",
                    touched_paths=[path],
                    diff=diff,
                )
            )
        if denied and layered:
            assert isinstance(sandbox, LayeredSandbox)
            await sandbox.merge()
        stored = await self._journal.append(*completions)
        made = await self._b._checkpoints.checkpoint(job.workspace, stored[-1].seq, changed)
        if made is not None:
            await self._journal.append(
                CheckpointCreated(
                    checkpoint_id=made.id,
                    after_seq=stored[-1].seq,
                    changed=list(made.changed),
                    files=len(made.files),
                    bytes=made.total_bytes,
                )
            )
        for path, _ in denied:
            if path in self._seen:
                current[path] = self._seen[path]
            else:
                current.pop(path, None)
        self._seen = current
        if denied:
            self._end(
                Outcome(
                    status="failed",
                    reason="policy_denied",
                    summary="aider changed "
                    + "; ".join(f"{path}, which the policy denies ({why})" for path, why in denied)
                    + ". The change was reverted.",
                )
            )

    async def _allowed(
        self, path: str, call_id: str, tool: str, decision: PolicyDecision
    ) -> tuple[bool, str]:
        why = _why(decision)
        if decision.decision is Decision.ALLOW:
            return True, why
        if decision.decision is Decision.DENY or self._approvals is None:
            return False, why if decision.decision is Decision.DENY else f"needs approval: {why}"
        verdict = await self._approvals.decide(
            Ask(
                call_id=call_id,
                tool=tool,
                category=_WRITE[1] if tool == _WRITE[0] else _EDIT[1],
                arguments={"path": path},
                command=None,
                paths=(path,),
                decision=decision,
            )
        )
        self._deadline += verdict.waited  # waiting for a person is not agent time
        return verdict.allow, verdict.reason or why

    async def _revert(self, path: str, content: bytes | None) -> None:
        """Put `path` back as it was at the previous boundary (None: it did not exist)."""
        try:
            if content is None:
                await self._sandbox.delete(path, recursive=True)
            else:
                await self._sandbox.write_file(path, content)
        except SandboxError as e:
            log.warning("reverting a denied path failed", path=path, error=e.message)
            raise

    async def _snapshot(self) -> State:
        workspace = self._job.workspace
        entries = await self._b._git.snapshot(
            workspace.path, workspace.base_commit, index_file=self._b._index_of(workspace)
        )
        return {e.path: (e.mode, e.blob) for e in entries}

    async def _contents(self, state: State, paths: list[str]) -> dict[str, bytes | None]:
        """Each path's content in `state` (base content for paths that match base)."""
        base = self._job.workspace.base_commit
        names = {}
        for path in paths:
            if path in state:
                blob = state[path][1]
                if blob is not None:
                    names[path] = blob
            else:
                names[path] = f"{base}:{path}"
        found = await self._b._git.read_objects(
            self._job.workspace.path, sorted(set(names.values()))
        )
        return {path: found.get(names[path]) if path in names else None for path in paths}

    def _changed_so_far(self) -> set[str]:
        return {p for p, (_, blob) in self._seen.items() if blob is not None}

    def _summary(self) -> str:
        changed = sorted(self._seen)
        if not changed:
            return "aider finished without changing any file"
        shown = ", ".join(changed[:20]) + (
            f" and {len(changed) - 20} more" if len(changed) > 20 else ""
        )
        return f"aider changed {len(changed)} file(s): {shown}"

    async def _check_gates(self, attempt: int) -> str | None:
        """None when the gates pass; else what failed (the report)."""
        runner = self._job.gates
        assert runner is not None

        async def emit(stream: Any, text: str) -> None:
            await self._deltas.emit(stream, text, "quality-gates")

        results = await runner.check(self._sandbox, emit)
        await self._deltas.flush()
        ok = gate_results.passed(results)
        await self._journal.append(
            QualityGatesChecked(
                attempt=attempt, passed=ok, results=[msgspec.to_builtins(r) for r in results]
            )
        )
        return None if ok else gate_results.report(results)

    async def _mentioned_files(self, task: Task) -> list[str]:
        text = "\n".join([task.title, task.prompt, *task.acceptance_criteria])
        found: list[str] = []
        for match in _MENTION.finditer(text):
            name = match.group(1).removeprefix("./")
            if name not in found and len(found) < MAX_CHAT_FILES and await self._is_file(name):
                found.append(name)
        return found

    async def _is_file(self, path: str) -> bool:
        try:
            return (await self._sandbox.stat(path)).kind == "file"
        except SandboxError:
            return False


async def _context_text(context: ContextProvider, job: AiderJob, tokens: int) -> str:
    pack = await context.build(job.workspace.path, job.task.prompt, token_budget=tokens)
    return pack.text.strip()


def _why(decision: PolicyDecision) -> str:
    rule = f" (rule {decision.rule}, {decision.scope})" if decision.rule else ""
    return (decision.reason or decision.decision.value) + rule


def _stopped_note(ended: Outcome | None) -> str:
    if ended is None:
        return ""
    return f"aider was stopped: {ended.reason or ended.status}"


def _diff(path: str, old: bytes | None, new: bytes | None) -> str:
    def lines(data: bytes | None) -> list[str] | None:
        if data is None:
            return []
        if b"\0" in data[:8192]:
            return None
        return data.decode("utf-8", errors="replace").splitlines(keepends=True)

    if max(len(old or b""), len(new or b"")) > MAX_DIFF_BYTES:
        return f"Large file {path} changed (over {MAX_DIFF_BYTES} bytes: no diff shown)\n"
    a, b = lines(old), lines(new)
    if a is None or b is None:
        return f"Binary file {path} changed\n"
    return "".join(
        difflib.unified_diff(
            a,
            b,
            fromfile="/dev/null" if old is None else f"a/{path}",
            tofile="/dev/null" if new is None else f"b/{path}",
        )
    )


async def _unless_cancelled(work: Awaitable[AiderEnv], cancel: RunControls) -> AiderEnv:
    """`work`, or CancelledError once the run is cancelled (an install others wait for
    goes on: `AiderInstall.ensure` shields it)."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    raise asyncio.CancelledError
