"""Projects: registering a repository means cloning it into a workspace CodeForge owns.

The clone lives at `<data_dir>/workspaces/<name>`; CodeForge never touches the
user's own work tree. Registration is all or nothing: a bad URL, a missing
path or a folder that is not a repository is a clear error and leaves neither a
row nor a half-made clone behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import structlog

from codeforge.domain.errors import Conflict, NotFound, ValidationFailed
from codeforge.domain.gates import QualityGates
from codeforge.domain.ids import new_id
from codeforge.domain.keys import Principal
from codeforge.domain.limits import Limits
from codeforge.domain.projects import (
    GitHostConfig,
    Project,
    classify_source,
    validate_budget,
    validate_git_host,
    validate_project_name,
)
from codeforge.ports.secrets import InvalidSecretName, normalize_secret_name
from codeforge.ports.stores import ProjectStore
from codeforge.ports.vcs import BranchInfo, PullResult, RepoInfo, RepoStatus
from codeforge.services.catalog import Catalog
from codeforge.services.clock import Clock, utc_now
from codeforge.services.git_work import GitRunner
from codeforge.services.profile_check import ProfileCheck

log = structlog.get_logger("codeforge.projects")


class _ProgressLog:
    """Logs a long clone's progress: each new stage, then every 10% within it."""

    def __init__(self, project: str) -> None:
        self._project = project
        self._stage = ""
        self._next = 0.0

    def __call__(self, stage: str, percent: float | None, message: str) -> None:
        if stage != self._stage:
            self._stage, self._next = stage, 0.0
        if percent is None or percent >= self._next:
            log.info("clone progress", project=self._project, stage=stage, percent=percent)
            self._next = (percent or 0.0) + 10.0


def _move_into_place(partial: Path, workspace: Path) -> None:
    try:
        partial.rename(workspace)
    except OSError as e:
        if workspace.exists():
            raise Conflict(
                f"a project named {workspace.name!r} already exists", field="name"
            ) from e
        raise


class Projects(Catalog[Project]):
    def __init__(
        self,
        store: ProjectStore,
        git: GitRunner,
        workspaces: Path,
        clock: Clock = utc_now,
        *,
        check_profile: ProfileCheck | None = None,
    ) -> None:
        super().__init__(store, clock)
        self._projects = store
        self._git = git
        self._workspaces = workspaces
        self._check_profile = check_profile

    def workspace(self, project: Project) -> Path:
        # Per tenant, so two tenants may both name a project "api".
        return self._workspaces / str(project.tenant_id) / project.name

    async def create(
        self,
        principal: Principal,
        *,
        name: str,
        source: str,
        default_branch: str | None = None,
        quality_gates: list[str] | None = None,
        gates: QualityGates | None = None,
        policy_profile: str = "default",
        limits: Limits | None = None,
        description: str = "",
        budget_usd: Decimal | None = None,
        git_host: GitHostConfig | None = None,
    ) -> Project:
        principal.require_mutation()
        validate_project_name(name)
        validate_budget(budget_usd)
        git_host = _checked_git_host(git_host)
        kind = classify_source(source)
        if self._check_profile is not None:
            await self._check_profile(
                principal.tenant_id, policy_profile, project_id=None, whose="project"
            )
        try:
            await self._projects.get_by_name(principal.tenant_id, name)
        except NotFound:
            pass
        else:
            raise Conflict(f"a project named {name!r} already exists", field="name")
        now = self._clock()
        draft = Project(
            id=new_id(),
            tenant_id=principal.tenant_id,
            name=name,
            source=source,
            source_kind=kind,
            quality_gates=list(quality_gates or []),
            gates=gates or QualityGates(),
            policy_profile=policy_profile,
            limits=limits or Limits(),
            description=description,
            budget_usd=budget_usd,
            git_host=git_host,
            created_at=now,
            updated_at=now,
        )
        workspace = self.workspace(draft)
        info = await self._clone_into_place(draft, default_branch)
        try:
            project = await self._store.add(
                draft.evolve(now, default_branch=default_branch or info.branch or "main")
            )
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, workspace, True)
            raise
        log.info("project registered", project=name, project_id=str(project.id))
        return project

    async def ensure_workspace(self, project: Project) -> Path:
        """The project's clone on this host, cloned from its source if it is missing
        (a worker on another host than the one that registered the project)."""
        workspace = self.workspace(project)
        if not await asyncio.to_thread(workspace.is_dir):
            # Conflict: another run on this host cloned it meanwhile.
            with contextlib.suppress(Conflict):
                await self._clone_into_place(project, project.default_branch)
        return workspace

    async def _clone_into_place(self, project: Project, branch: str | None) -> RepoInfo:
        workspace = self.workspace(project)
        # Clone beside the final place, then rename: two registrations racing for one
        # name can never clone into (or clean up) the same folder.
        partial = workspace.parent / f".{project.name}.{new_id().hex}.partial"
        await asyncio.to_thread(partial.parent.mkdir, parents=True, exist_ok=True)
        log.info("cloning project", project=project.name, source_kind=project.source_kind.value)
        info = await self._git.clone(
            project.source, partial, branch=branch, progress=_ProgressLog(project.name)
        )
        try:
            await asyncio.to_thread(_move_into_place, partial, workspace)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, partial, True)
            raise
        return info

    async def base_has(
        self, tenant_id: uuid.UUID, project_id: uuid.UUID, commit: str, paths: list[str]
    ) -> set[str]:
        """Which of `paths` exist at `commit` in the project's clone on this host (none
        when the clone is elsewhere)."""
        return set(await self.base_files(tenant_id, project_id, commit, paths) or {})

    async def base_files(
        self, tenant_id: uuid.UUID, project_id: uuid.UUID, commit: str, paths: list[str]
    ) -> dict[str, bytes] | None:
        """The content of each of `paths` that exists at `commit` in the project's clone
        on this host; None when the clone is not on this host."""
        project = await self._store.get(tenant_id, project_id)
        workspace = self.workspace(project)
        if not await asyncio.to_thread(workspace.is_dir):
            return None
        if not paths:
            return {}
        found = await self._git.read_objects(workspace, [f"{commit}:{p}" for p in paths])
        return {name.split(":", 1)[1]: content for name, content in found.items()}

    async def update(
        self, principal: Principal, entity_id: uuid.UUID, version: int, changes: dict[str, Any]
    ) -> Project:
        if "policy_profile" in changes and self._check_profile is not None:
            principal.require_mutation()
            await self._check_profile(
                principal.tenant_id,
                changes["policy_profile"],
                project_id=entity_id,
                whose="project",
            )
        return await super().update(principal, entity_id, version, changes)

    def check_update(self, current: Project, changes: dict[str, Any]) -> None:
        validate_budget(changes.get("budget_usd"))
        if "git_host" in changes:
            changes["git_host"] = _checked_git_host(changes["git_host"])

    async def delete(
        self, principal: Principal, project_id: uuid.UUID, version: int | None
    ) -> None:
        project = await self._store.get(principal.tenant_id, project_id)
        await super().delete(principal, project_id, version)
        await asyncio.to_thread(shutil.rmtree, self.workspace(project), True)

    async def git_status(self, principal: Principal, project_id: uuid.UUID) -> RepoStatus:
        return await self._git.status(await self._workspace_of(principal, project_id))

    async def git_branches(self, principal: Principal, project_id: uuid.UUID) -> list[BranchInfo]:
        return await self._git.branches(await self._workspace_of(principal, project_id))

    async def git_pull(self, principal: Principal, project_id: uuid.UUID) -> PullResult:
        principal.require_mutation()
        return await self._git.pull(await self._workspace_of(principal, project_id))

    async def git_checkout(
        self, principal: Principal, project_id: uuid.UUID, ref: str, *, create: bool = False
    ) -> RepoStatus:
        principal.require_mutation()
        workspace = await self._workspace_of(principal, project_id)
        return await self._git.checkout(workspace, ref, create=create)

    async def _workspace_of(self, principal: Principal, project_id: uuid.UUID) -> Path:
        project = await self._store.get(principal.tenant_id, project_id)
        workspace = self.workspace(project)
        if not await self._git.is_repository(workspace):
            raise NotFound(
                f"the workspace of project {project.name!r} is missing; "
                "delete and register the project again"
            )
        return workspace


def _checked_git_host(host: GitHostConfig | None) -> GitHostConfig | None:
    """`host` with its secret name in canonical form, or ValidationFailed."""
    if host is None:
        return None
    try:
        secret = normalize_secret_name(host.token_secret)
    except InvalidSecretName as e:
        raise ValidationFailed(str(e), field="git_host.token_secret") from e
    host = msgspec.structs.replace(host, token_secret=secret)
    validate_git_host(host)
    return host
