"""Delivering a run's work: the patch always, then a commit, a pushed branch or a PR.

Whatever the outcome, the diff from the base commit to the worktree (untracked files
included, ignored ones not) is stored as the run's `patch` artifact, so a failed or
cancelled run's work can still be inspected and applied by hand. A run that
succeeded is then delivered as asked:

- `patch`: the artifact is the delivery (`GET /api/v1/runs/{id}/artifacts/patch`).
- `commit-local`: the changes are committed on the run's branch in CodeForge's clone
  (`codeforge run` then copies that branch into the user's repository).
- `branch`: committed as for commit-local, then the run's branch is pushed to the
  project's remote (`origin`, the project's source) under the same name
  (`BranchPushed`). A project with a git host pushes with its token (never on a
  command line); without one, git uses the ssh key or credential helper of the user
  running CodeForge.
- `pr`: pushed as for branch, then a pull request from the run's branch into the
  project's default branch is opened on the project's git host (`PullRequestOpened`):
  the task's title, the run's summary and the task in the body, a link back to the run
  (`http.public_url`), a draft unless the project's `git_host.draft` is false. Every
  body carries a marker naming the task; when an open pull request into the default
  branch already has it, no second one is opened (the run's branch is still pushed, and
  the run reports the existing pull request).

A run that changed nothing is not pushed (there is nothing to review). A push or a
pull request that fails ends the run `delivery_failed` with the reason (the remote's or
the host's own words, never the token); the patch artifact is kept either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import Mapping

import msgspec
import structlog

from codeforge.domain.events import ArtifactStored, BranchPushed, PullRequestOpened
from codeforge.domain.projects import Project
from codeforge.domain.runs import DeliverMode, Run
from codeforge.domain.tasks import Task
from codeforge.ports.artifacts import ArtifactStore
from codeforge.ports.checkpoints import RunWorkspace
from codeforge.ports.errors import PortError
from codeforge.ports.executor import Journal, Outcome
from codeforge.ports.git_host import (
    GitHost,
    GitHostError,
    HostTarget,
    PullRequest,
    PullRequestSpec,
)
from codeforge.ports.vcs import NothingToCommit, PushCredentials, PushResult, VcsError
from codeforge.services.git_work import GitRunner
from codeforge.services.secrets import Secrets

log = structlog.get_logger("codeforge.delivery")

PATCH = "patch"
PATCH_MEDIA_TYPE = "text/x-diff"
AUTHOR = ("CodeForge", "codeforge@localhost")
TITLE_LIMIT = 200
PROMPT_LIMIT = 4_000
SUMMARY_LIMIT = 20_000
BODY_LIMIT = 60_000  # GitHub's limit is 65,536 characters


def task_marker(task_id: uuid.UUID) -> str:
    """What every pull request body CodeForge opens for a task carries (an HTML comment,
    invisible on the page): how a task's open pull request is found again."""
    return f"<!-- codeforge:task={task_id} -->"


class _Failed(Exception):
    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


class Delivery:
    def __init__(
        self,
        git: GitRunner,
        artifacts: ArtifactStore,
        *,
        secrets: Secrets | None = None,
        hosts: Mapping[str, GitHost] | None = None,
        public_url: str = "",
    ) -> None:
        self._git = git
        self._artifacts = artifacts
        self._secrets = secrets
        self._hosts = dict(hosts or {})
        self._public_url = public_url.rstrip("/")
        # One look-then-open at a time per task in this process: two runs of a task that
        # finish together (two agents tried it) must not both find none and both open one.
        self._task_locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def deliver(
        self,
        run: Run,
        task: Task,
        workspace: RunWorkspace,
        outcome: Outcome,
        journal: Journal,
        project: Project | None = None,
    ) -> Outcome:
        artifact = dict(outcome.artifact)
        stored = await self.store_patch(run, workspace, journal, name=PATCH)
        if stored is not None:
            artifact["patch"] = stored
        diff = bool(stored)
        artifact["branch"] = workspace.branch
        artifact["base_commit"] = workspace.base_commit
        if outcome.status != "succeeded" or run.deliver is DeliverMode.PATCH:
            return msgspec.structs.replace(outcome, artifact=artifact)
        if diff:
            # NothingToCommit: an earlier attempt at delivering this run committed it.
            with contextlib.suppress(NothingToCommit):
                artifact["commit"] = await self._git.commit(
                    workspace.path,
                    _message(task, outcome.summary, run),
                    author_name=AUTHOR[0],
                    author_email=AUTHOR[1],
                )
        if run.deliver is DeliverMode.COMMIT_LOCAL:
            return msgspec.structs.replace(outcome, artifact=artifact)
        summary = outcome.summary
        if not diff:
            artifact["delivered"] = False
            summary = _joined(summary, "The run changed no file, so nothing was pushed.")
            return msgspec.structs.replace(outcome, summary=summary, artifact=artifact)
        try:
            if project is None:
                raise _Failed("the run's project is unknown, so there is no remote to push to")
            host = self._host(project)
            pushed = await self._push(run, project, workspace, host)
            await journal.append(
                BranchPushed(
                    remote=pushed.remote,
                    branch=pushed.branch,
                    commit=pushed.commit,
                    created=not pushed.up_to_date,
                )
            )
            artifact["pushed"] = {
                "remote": pushed.remote,
                "branch": pushed.branch,
                "commit": pushed.commit,
            }
            if run.deliver is DeliverMode.PR:
                assert host is not None  # _host refuses pr without one
                pull, existing = await self._pull_request(
                    run, task, project, workspace, host, summary
                )
                await journal.append(
                    PullRequestOpened(
                        host=host.kind,
                        url=pull.url,
                        number=pull.number,
                        head=pull.head,
                        base=pull.base,
                        draft=pull.draft,
                        existing=existing,
                    )
                )
                artifact["pull_request"] = {
                    "url": pull.url,
                    "number": pull.number,
                    "draft": pull.draft,
                    "existing": existing,
                }
                if existing:
                    summary = _joined(
                        summary,
                        f"The task already has an open pull request ({pull.url}); the run's "
                        f"branch {workspace.branch} was pushed, and no second pull request "
                        "was opened.",
                    )
        except _Failed as e:
            log.warning("delivery failed", mode=run.deliver.value, reason=e.summary)
            return Outcome(
                status="failed",
                reason="delivery_failed",
                summary=f"{e.summary.rstrip('. ')}. The patch artifact holds the work "
                f"(GET /api/v1/runs/{run.id}/artifacts/patch).",
                artifact=artifact,
            )
        return msgspec.structs.replace(outcome, summary=summary, artifact=artifact)

    async def store_patch(
        self, run: Run, workspace: RunWorkspace, journal: Journal, *, name: str
    ) -> dict[str, object] | None:
        """The worktree's diff from its base, stored as artifact `name` (None: no change)."""
        diff = await self._git.diff(workspace.path, workspace.base_commit)
        if not diff:
            return None
        data = diff.encode("utf-8", "surrogateescape")
        info = await self._artifacts.put(run.tenant_id, run.id, name, PATCH_MEDIA_TYPE, data)
        await journal.append(
            ArtifactStored(
                name=name, media_type=PATCH_MEDIA_TYPE, size=info.size, sha256=info.sha256
            )
        )
        return {"name": name, "size": info.size, "sha256": info.sha256, "files": _files_in(diff)}

    async def changed_lines(self, workspace: RunWorkspace) -> int:
        """Lines added plus lines removed since the base commit."""
        diff = await self._git.diff(workspace.path, workspace.base_commit)
        return sum(
            1
            for line in diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++ ", "--- "))
        )

    # -- pushing ------------------------------------------------------------------------------

    def _host(self, project: Project) -> GitHost | None:
        config = project.git_host
        if config is None:
            return None
        host = self._hosts.get(config.kind.value)
        if host is None:
            raise _Failed(f"no git host adapter for {config.kind.value!r} is configured here")
        return host

    def _token(self, project: Project) -> str:
        assert project.git_host is not None
        if self._secrets is None:
            raise _Failed("no secret store is configured, so the git host token cannot be read")
        try:
            return self._secrets.require(project.git_host.token_secret)
        except PortError as e:
            raise _Failed(f"the git host token is missing: {e}") from e

    async def _push(
        self, run: Run, project: Project, workspace: RunWorkspace, host: GitHost | None
    ) -> PushResult:
        if run.deliver is DeliverMode.PR and host is None:
            raise _Failed(
                f"deliver 'pr' needs a git host, and project {project.name!r} has none "
                "(set its git_host)"
            )
        credentials = None
        if host is not None:
            credentials = PushCredentials(host.push_username, self._token(project))
        try:
            return await self._git.push(workspace.path, workspace.branch, credentials=credentials)
        except VcsError as e:
            raise _Failed(f"the branch {workspace.branch} could not be pushed: {e.message}") from e

    # -- the pull request ---------------------------------------------------------------------

    async def _pull_request(
        self,
        run: Run,
        task: Task,
        project: Project,
        workspace: RunWorkspace,
        host: GitHost,
        summary: str,
    ) -> tuple[PullRequest, bool]:
        config = project.git_host
        assert config is not None
        target = HostTarget(
            api_url=config.api_root, repository=config.repository, token=self._token(project)
        )
        marker = task_marker(task.id)
        base = project.default_branch
        lock = self._task_locks.setdefault(task.id, asyncio.Lock())
        async with lock:
            return await self._find_or_open(
                run, task, workspace, host, target, base, marker, config.draft, summary
            )

    async def _find_or_open(
        self,
        run: Run,
        task: Task,
        workspace: RunWorkspace,
        host: GitHost,
        target: HostTarget,
        base: str,
        marker: str,
        draft: bool,
        summary: str,
    ) -> tuple[PullRequest, bool]:
        try:
            found = await host.find_pull_request(target, base=base, marker=marker)
            if found is not None:
                log.info("task has an open pull request", url=found.url)
                # Its own branch: this run's pull request, from an earlier attempt at
                # delivering it (a worker lost after opening it).
                return found, found.head != workspace.branch
            spec = PullRequestSpec(
                head=workspace.branch,
                base=base,
                title=_title(task),
                body=self._body(run, task, workspace, summary, marker),
                draft=draft,
            )
            return await host.open_pull_request(target, spec), False
        except GitHostError as e:
            raise _Failed(
                f"the branch {workspace.branch} was pushed, but no pull request was opened: "
                f"{e.message}"
            ) from e

    def _body(
        self, run: Run, task: Task, workspace: RunWorkspace, summary: str, marker: str
    ) -> str:
        link = (
            f"[{run.id}]({self._public_url}/runs/{run.id})" if self._public_url else f"`{run.id}`"
        )
        parts = [
            _clip(_inert(summary.strip()) or "(the run left no summary)", SUMMARY_LIMIT),
            "## Task",
            f"**{_inert(task.title)}**",
        ]
        if task.prompt.strip():
            parts.append(_quote(_clip(_inert(task.prompt.strip()), PROMPT_LIMIT)))
        if task.acceptance_criteria:
            criteria = "\n".join(f"- [ ] {_inert(c)}" for c in task.acceptance_criteria)
            parts.append(f"Acceptance criteria:\n\n{_clip(criteria, PROMPT_LIMIT)}")
        parts.append(f"---\nOpened by CodeForge for run {link}, from branch `{workspace.branch}`.")
        body = _clip("\n\n".join(parts), BODY_LIMIT - 200)
        return f"{body}\n\n{marker}\n<!-- codeforge:run={run.id} -->\n"


def _title(task: Task) -> str:
    title = " ".join(task.title.split()) or "CodeForge change"
    return title if len(title) <= TITLE_LIMIT else title[: TITLE_LIMIT - 1] + "…"


def _inert(text: str) -> str:
    """User and model text cannot carry a marker (or any HTML comment) into the body."""
    return text.replace("<!--", "&lt;!--")


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 20] + "\n\n… (cut)"


def _joined(summary: str, note: str) -> str:
    return f"{summary}\n\n{note}" if summary else note


def _message(task: Task, summary: str, run: Run) -> str:
    return f"{task.title}\n\n{summary}\n\nCodeForge run {run.id}\n"


def _files_in(diff: str) -> list[str]:
    files = []
    for line in diff.splitlines():
        if line.startswith("diff --git a/"):
            files.append(line.split(" b/", 1)[-1])
    return files


__all__ = ["AUTHOR", "PATCH", "PATCH_MEDIA_TYPE", "Delivery", "task_marker"]
