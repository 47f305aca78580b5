"""Delivering a run's work: the patch always, a commit on the run's branch when asked.

Whatever the outcome, the diff from the base commit to the worktree (untracked files
included, ignored ones not) is stored as the run's `patch` artifact, so a failed or
cancelled run's work can still be inspected and applied by hand. A run that
succeeded is then delivered as asked:

- `patch`: the artifact is the delivery (`GET /api/v1/runs/{id}/artifacts/patch`).
- `commit-local`: the changes are committed on the run's branch in CodeForge's clone
  (`codeforge run` then copies that branch into the user's repository).
- `branch` / `pr`: pushing and pull requests need a git host (the delivery issue);
  until then such a run ends failed with reason `delivery_failed`, the patch kept.
"""

from __future__ import annotations

import msgspec

from codeforge.domain.events import ArtifactStored
from codeforge.domain.runs import DeliverMode, Run
from codeforge.domain.tasks import Task
from codeforge.ports.artifacts import ArtifactStore
from codeforge.ports.checkpoints import RunWorkspace
from codeforge.ports.executor import Journal, Outcome
from codeforge.ports.vcs import NothingToCommit
from codeforge.services.git_work import GitRunner

PATCH = "patch"
PATCH_MEDIA_TYPE = "text/x-diff"
AUTHOR = ("CodeForge", "codeforge@localhost")


class Delivery:
    def __init__(self, git: GitRunner, artifacts: ArtifactStore) -> None:
        self._git = git
        self._artifacts = artifacts

    async def deliver(
        self,
        run: Run,
        task: Task,
        workspace: RunWorkspace,
        outcome: Outcome,
        journal: Journal,
    ) -> Outcome:
        artifact = dict(outcome.artifact)
        stored = await self.store_patch(run, workspace, journal, name=PATCH)
        if stored is not None:
            artifact["patch"] = stored
        diff = bool(stored)
        artifact["branch"] = workspace.branch
        artifact["base_commit"] = workspace.base_commit
        if outcome.status != "succeeded":
            return msgspec.structs.replace(outcome, artifact=artifact)
        if run.deliver is DeliverMode.COMMIT_LOCAL and diff:
            try:
                sha = await self._git.commit(
                    workspace.path,
                    _message(task, outcome.summary, run),
                    author_name=AUTHOR[0],
                    author_email=AUTHOR[1],
                )
                artifact["commit"] = sha
            except NothingToCommit:
                pass
        elif run.deliver in (DeliverMode.BRANCH, DeliverMode.PR):
            return Outcome(
                status="failed",
                reason="delivery_failed",
                summary=f"delivery mode {run.deliver.value!r} needs a git host, which is not "
                "available yet; the patch artifact holds the work",
                artifact=artifact,
            )
        return msgspec.structs.replace(outcome, artifact=artifact)

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


def _message(task: Task, summary: str, run: Run) -> str:
    return f"{task.title}\n\n{summary}\n\nCodeForge run {run.id}\n"


def _files_in(diff: str) -> list[str]:
    files = []
    for line in diff.splitlines():
        if line.startswith("diff --git a/"):
            files.append(line.split(" b/", 1)[-1])
    return files
