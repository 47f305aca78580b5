"""A run's own worktree and branch, made from the project's clone (never the user's repo).

`<data_dir>/runs/<run id>` on branch `codeforge/run-<run id>`, starting at the head of
the project's default branch in CodeForge's clone (ARCHITECTURE.md, "Workspaces and
checkpoints"). A run that comes back (restarted, resumed) finds its worktree where it
left it and keeps working there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from codeforge.domain.projects import Project
from codeforge.domain.runs import Run
from codeforge.ports.checkpoints import RunWorkspace
from codeforge.ports.vcs import run_branch
from codeforge.services.git_work import GitRunner
from codeforge.services.projects import Projects


class RunWorkspaces:
    def __init__(self, git: GitRunner, projects: Projects, runs_dir: Path) -> None:
        self._git = git
        self._projects = projects
        self._runs_dir = runs_dir

    def path_of(self, run: Run) -> Path:
        return self._runs_dir / str(run.id)

    async def prepare(self, run: Run, project: Project, *, base: str | None = None) -> RunWorkspace:
        """A new worktree for the run, on its own branch from `base` (default: the head of
        the project's default branch)."""
        clone = await self._projects.ensure_workspace(project)
        path = self.path_of(run)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        branch = run_branch(str(run.id))
        await self._git.create_worktree(clone, path, branch, base=base or project.default_branch)
        status = await self._git.status(path)
        assert status.head is not None  # a worktree made at a commit
        return RunWorkspace(
            tenant_id=run.tenant_id,
            run_id=run.id,
            path=str(path),
            base_commit=status.head,
            branch=branch,
        )

    async def recreate(self, run: Run, project: Project, previous: RunWorkspace) -> RunWorkspace:
        """The run's worktree again, on this host, at `previous`'s base commit (a run
        resumed by a worker on another host, whose worktree was removed, or a fork); its
        files come back from the latest checkpoint, which the caller restores."""
        clone = await self._projects.ensure_workspace(project)
        path = self.path_of(run)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        # The run's own branch: a fork rebuilds its source's files on a branch of its own.
        branch = run_branch(str(run.id))
        await self._git.create_worktree(clone, path, branch, base=previous.base_commit)
        return RunWorkspace(
            tenant_id=run.tenant_id,
            run_id=run.id,
            path=str(path),
            base_commit=previous.base_commit,
            branch=branch,
        )

    async def is_here(self, run: Run, workspace: RunWorkspace) -> bool:
        """Whether `workspace` is this worker's own worktree of the run, still in place
        (not one another worker made under its own data dir, maybe on another host)."""
        if Path(workspace.path) != self.path_of(run):
            return False
        return await self._git.is_repository(workspace.path)
