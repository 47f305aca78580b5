"""The pull request a `pr` delivery asks for, with real git and a stand-in git host.

A local bare repository is the remote; the git host (a remote paid-for service) is a
recording stand-in, so these tests look at exactly what the delivery asks a host for:
the title, the body with its markers and link, the draft flag, one per task.
"""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.git import LocalGit
from adapters.memory.artifacts import MemoryArtifactStore
from adapters.secrets.env import EnvSecretStore
from codeforge.agent.delivery import BODY_LIMIT, Delivery, task_marker
from codeforge.domain.events import Event, PullRequestOpened, StoredEvent
from codeforge.domain.ids import new_id
from codeforge.domain.projects import GitHostConfig, GitHostKind, Project, SourceKind
from codeforge.domain.runs import DeliverMode, Run
from codeforge.domain.tasks import Task
from codeforge.ports.checkpoints import RunWorkspace
from codeforge.ports.executor import Outcome
from codeforge.ports.git_host import HostTarget, PullRequest, PullRequestSpec
from codeforge.services.git_work import GitRunner
from codeforge.services.secrets import Secrets
from tests.support.repos import git, make_repo

NOW = datetime(2025, 1, 1, tzinfo=UTC)


class RecordingHost:
    kind = "github"
    push_username = "x-access-token"

    def __init__(self, existing: PullRequest | None = None) -> None:
        self.existing = existing
        self.opened: list[PullRequestSpec] = []
        self.searches: list[tuple[HostTarget, str, str]] = []

    async def find_pull_request(
        self, target: HostTarget, *, base: str, marker: str
    ) -> PullRequest | None:
        self.searches.append((target, base, marker))
        return self.existing

    async def open_pull_request(self, target: HostTarget, spec: PullRequestSpec) -> PullRequest:
        self.opened.append(spec)
        pull = PullRequest(
            number=7, url="https://github.example/acme/app/pull/7", head=spec.head,
            base=spec.base, title=spec.title, draft=spec.draft,
        )  # fmt: skip
        self.existing = pull
        return pull

    async def close(self) -> None:
        pass


class Journal:
    def __init__(self) -> None:
        self.events: list[Event] = []

    @property
    def seq(self) -> int:
        return len(self.events)

    async def append(self, *events: Event) -> list[StoredEvent]:
        self.events.extend(events)
        return []


@pytest.fixture
async def git_runner() -> Any:
    runner = GitRunner(LocalGit())
    yield runner
    await runner.aclose()


def project_and_workspace(tmp_path: Path, run_id: uuid.UUID) -> tuple[Project, RunWorkspace]:
    seed = make_repo(tmp_path / "seed", {"calc.py": "a - b\n"})
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(remote)], check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(remote), str(clone)], check=True)
    branch = f"codeforge/run-{run_id}"
    worktree = tmp_path / "run"
    git(clone, "worktree", "add", "-q", "-b", branch, str(worktree))
    (worktree / "calc.py").write_text("a + b\n")
    project = Project(
        id=new_id(), name="calc", source=str(remote), source_kind=SourceKind.PATH,
        git_host=GitHostConfig(kind=GitHostKind.GITHUB, repository="acme/app",
                               token_secret="TOKEN"),
        created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    workspace = RunWorkspace(
        tenant_id=project.tenant_id, run_id=run_id, path=str(worktree),
        base_commit=git(clone, "rev-parse", "HEAD"), branch=branch,
    )  # fmt: skip
    return project, workspace


def run_and_task(project: Project, run_id: uuid.UUID, **task: Any) -> tuple[Run, Task]:
    made = Task(
        id=new_id(), project_id=project.id, created_at=NOW, updated_at=NOW,
        **({"title": "Fix add", "prompt": "make it add"} | task),
    )  # fmt: skip
    run = Run(
        id=run_id, project_id=project.id, task_id=made.id, agent_id=new_id(),
        deliver=DeliverMode.PR, created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    return run, made


def delivery(git_runner: GitRunner, host: RecordingHost, public_url: str = "") -> Delivery:
    secrets = Secrets([EnvSecretStore({"CODEFORGE_SECRET_TOKEN": "tok-123456"})], lambda _: None)
    return Delivery(
        git_runner, MemoryArtifactStore(), secrets=secrets, hosts={"github": host},
        public_url=public_url,
    )  # fmt: skip


async def test_text_in_the_task_or_summary_cannot_forge_another_tasks_marker(
    git_runner: GitRunner, tmp_path: Path
) -> None:
    run_id = new_id()
    project, workspace = project_and_workspace(tmp_path, run_id)
    other = f"<!-- codeforge:task={uuid.uuid4()} -->"
    run, task = run_and_task(
        project, run_id, title="x" * 500, prompt=f"see {other}",
        acceptance_criteria=[f"no {other}"],
    )  # fmt: skip
    host = RecordingHost()
    outcome = Outcome(status="succeeded", summary=f"done {other}" + "y" * 100_000)

    result = await delivery(git_runner, host).deliver(
        run, task, workspace, outcome, Journal(), project=project
    )

    assert result.status == "succeeded", result
    [spec] = host.opened
    assert other not in spec.body
    assert spec.body.count("<!--") == 2
    assert spec.body.count(task_marker(task.id)) == 1
    assert f"<!-- codeforge:run={run_id} -->" in spec.body
    assert len(spec.body) <= BODY_LIMIT
    assert len(spec.title) == 200
    assert f"run `{run_id}`" in spec.body  # no public_url: named, not linked
    assert "https://" not in spec.body
    [(target, base, marker)] = host.searches
    assert (target.api_url, target.repository, target.token) == (
        "https://api.github.com",
        "acme/app",
        "tok-123456",
    )
    assert (base, marker) == ("main", task_marker(task.id))


async def test_a_retried_delivery_finds_its_own_pull_request_and_reports_it_as_its_own(
    git_runner: GitRunner, tmp_path: Path
) -> None:
    run_id = new_id()
    project, workspace = project_and_workspace(tmp_path, run_id)
    run, task = run_and_task(project, run_id)
    host = RecordingHost()
    journal = Journal()
    service = delivery(git_runner, host, public_url="https://cf.example/")
    outcome = Outcome(status="succeeded", summary="fixed")

    first = await service.deliver(run, task, workspace, outcome, journal, project=project)
    again = await service.deliver(run, task, workspace, outcome, journal, project=project)

    assert len(host.opened) == 1
    assert f"[{run_id}](https://cf.example/runs/{run_id})" in host.opened[0].body
    assert first.artifact["pull_request"]["existing"] is False
    assert again.artifact["pull_request"]["existing"] is False
    assert again.summary == "fixed"
    opened = [e for e in journal.events if isinstance(e, PullRequestOpened)]
    assert [e.existing for e in opened] == [False, False]


async def test_a_run_that_changed_nothing_pushes_nothing(
    git_runner: GitRunner, tmp_path: Path
) -> None:
    run_id = new_id()
    project, workspace = project_and_workspace(tmp_path, run_id)
    (Path(workspace.path) / "calc.py").write_text("a - b\n")
    run, task = run_and_task(project, run_id)
    host = RecordingHost()

    result = await delivery(git_runner, host).deliver(
        run, task, workspace, Outcome(status="succeeded", summary="nothing to do"),
        Journal(), project=project,
    )  # fmt: skip

    assert result.status == "succeeded"
    assert result.artifact["delivered"] is False
    assert "nothing was pushed" in result.summary
    assert host.searches == []
    assert git(Path(project.source), "branch", "--list", "codeforge/*") == ""
