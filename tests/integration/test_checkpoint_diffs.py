"""What each checkpoint changed, and everything since the base, read back as diffs.

Real git (a repository, a worktree's checkpoints made by the real checkpointer), the
memory checkpoint and event stores; the base commit's files are read the way the
project service reads them (`git cat-file` in the clone).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.git.local import LocalGit
from adapters.memory.checkpoints import MemoryCheckpointStore
from adapters.memory.event_store import MemoryEventStore
from codeforge.domain.errors import NotFound
from codeforge.domain.events import RunRequested
from codeforge.domain.ids import new_id
from codeforge.domain.keys import Principal, Role
from codeforge.domain.runs import Run
from codeforge.ports.checkpoints import RunWorkspace
from codeforge.ports.events import EventContext
from codeforge.services.checkpoint_diffs import CheckpointDiffs
from codeforge.services.checkpoints import BlobCheckpointer
from codeforge.services.git_work import GitRunner
from codeforge.services.subjects import start_job
from tests.support.repos import git, make_repo


@pytest.fixture
async def runner() -> AsyncIterator[GitRunner]:
    git_runner = GitRunner(LocalGit())
    yield git_runner
    await git_runner.aclose()


class Setup:
    def __init__(self, tmp_path: Path, runner: GitRunner) -> None:
        self.repo = make_repo(
            tmp_path / "repo",
            {"app.py": "def add(a, b):\n    return a - b\n", "logo.bin": "x", "old.txt": "old\n"},
        )
        (self.repo / "logo.bin").write_bytes(b"\x89PNG\0\0\x01")
        git(self.repo, "commit", "-qam", "binary logo")
        self.principal = Principal(tenant_id=uuid.uuid4(), key_id=uuid.uuid4(), role=Role.VIEWER)
        self.project_id = uuid.uuid4()
        self.workspace = RunWorkspace(
            tenant_id=self.principal.tenant_id,
            run_id=new_id(),
            path=str(self.repo),
            base_commit=git(self.repo, "rev-parse", "HEAD"),
        )
        self.store = MemoryCheckpointStore()
        self.events = MemoryEventStore()
        self.hook = BlobCheckpointer(self.store, runner, tmp_path / "scratch")
        self.clone_here = True

        async def base_files(
            tenant: uuid.UUID, project: uuid.UUID, commit: str, paths: list[str]
        ) -> dict[str, bytes] | None:
            assert (tenant, project) == (self.principal.tenant_id, self.project_id)
            if not self.clone_here:
                return None
            found = await runner.read_objects(self.repo, [f"{commit}:{p}" for p in paths])
            return {name.split(":", 1)[1]: data for name, data in found.items()}

        self.diffs = CheckpointDiffs(self.events, self.store, base_files)

    async def start(self) -> None:
        requested = RunRequested(
            project_id=self.project_id,
            task_id=uuid.uuid4(),
            agent_id=uuid.uuid4(),
            mode="mount",
            deliver="patch",
        )
        run_id = self.workspace.run_id
        tenant = self.principal.tenant_id
        run = Run.requested(run_id, tenant, requested, datetime.now(UTC))
        await self.events.create_run(
            run, requested, start_job(run_id, tenant), EventContext(tenant_id=tenant)
        )


@pytest.fixture
async def setup(tmp_path: Path, runner: GitRunner) -> Setup:
    made = Setup(tmp_path, runner)
    await made.start()
    return made


async def test_each_checkpoint_shows_what_its_step_changed_and_the_base_view_shows_all(
    setup: Setup,
) -> None:
    root = setup.repo
    (root / "app.py").write_text("def add(a, b):\n    return a + b\n")
    first = await setup.hook.checkpoint(setup.workspace, 5, ["app.py"])
    (root / "notes.md").write_text("# notes\n")
    (root / "old.txt").unlink()
    second = await setup.hook.checkpoint(setup.workspace, 9, None)
    assert first is not None
    assert second is not None
    run_id = setup.workspace.run_id

    step_one = await setup.diffs.diff(setup.principal, run_id, first.id)
    assert [(f.path, f.change) for f in step_one.files] == [("app.py", "modified")]
    assert step_one.files[0].diff == (
        "--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n"
        "-    return a - b\n+    return a + b\n"
    )
    assert step_one.previous_id is None
    assert (step_one.added_lines, step_one.removed_lines) == (1, 1)

    step_two = await setup.diffs.diff(setup.principal, run_id, second.id)
    # Only what the second step did: app.py is as the first checkpoint left it.
    assert [(f.path, f.change) for f in step_two.files] == [
        ("notes.md", "added"),
        ("old.txt", "deleted"),
    ]
    assert step_two.previous_id == first.id
    assert step_two.files[0].diff == "--- /dev/null\n+++ b/notes.md\n@@ -0,0 +1 @@\n+# notes\n"
    assert step_two.files[1].diff.startswith("--- a/old.txt\n+++ /dev/null\n")

    everything = await setup.diffs.diff(setup.principal, run_id, second.id, against="base")
    assert [(f.path, f.change) for f in everything.files] == [
        ("app.py", "modified"),
        ("notes.md", "added"),
        ("old.txt", "deleted"),
    ]
    latest = await setup.diffs.latest(setup.principal, run_id)
    assert latest is not None
    assert latest.files == everything.files
    assert [c.id for c in await setup.diffs.checkpoints(setup.principal, run_id)] == [
        first.id,
        second.id,
    ]


async def test_binary_files_and_files_without_a_final_newline_are_told_apart(
    setup: Setup,
) -> None:
    (setup.repo / "logo.bin").write_bytes(b"\x89PNG\0\0\x02\x03")
    (setup.repo / "app.py").write_text("def add(a, b):\n    return a + b")
    made = await setup.hook.checkpoint(setup.workspace, 3, None)
    assert made is not None
    found = await setup.diffs.diff(setup.principal, setup.workspace.run_id, made.id)
    by_path = {f.path: f for f in found.files}
    logo = by_path["logo.bin"]
    assert (logo.binary, logo.diff, logo.old_size, logo.new_size) == (True, "", 7, 8)
    assert by_path["app.py"].diff.endswith("+    return a + b\n\\ No newline at end of file\n")


async def test_without_the_clone_on_this_host_the_diff_says_the_base_is_unavailable(
    setup: Setup,
) -> None:
    (setup.repo / "app.py").write_text("changed\n")
    made = await setup.hook.checkpoint(setup.workspace, 3, ["app.py"])
    assert made is not None
    setup.clone_here = False
    found = await setup.diffs.diff(setup.principal, setup.workspace.run_id, made.id)
    assert not found.base_available
    assert [(f.path, f.change) for f in found.files] == [("app.py", "added")]


async def test_another_tenants_run_or_an_unknown_checkpoint_is_not_found(setup: Setup) -> None:
    (setup.repo / "app.py").write_text("changed\n")
    made = await setup.hook.checkpoint(setup.workspace, 3, ["app.py"])
    assert made is not None
    stranger = Principal(tenant_id=uuid.uuid4(), key_id=uuid.uuid4(), role=Role.ADMIN)
    with pytest.raises(NotFound):
        await setup.diffs.diff(stranger, setup.workspace.run_id, made.id)
    with pytest.raises(NotFound):
        await setup.diffs.diff(setup.principal, setup.workspace.run_id, uuid.uuid4())
    with pytest.raises(NotFound):
        await setup.diffs.latest(setup.principal, uuid.uuid4())


async def test_a_file_too_large_to_store_is_listed_with_the_reason(
    setup: Setup, runner: GitRunner, tmp_path: Path
) -> None:
    capped = BlobCheckpointer(setup.store, runner, tmp_path / "capped", max_file_bytes=100)
    (setup.repo / "big.txt").write_text("x" * 500)
    (setup.repo / "app.py").write_text("small\n")
    made = await capped.checkpoint(setup.workspace, 3, None)
    assert made is not None
    found = await setup.diffs.diff(setup.principal, setup.workspace.run_id, made.id)
    by_path = {f.path: f for f in found.files}
    assert by_path["big.txt"].change == "added"
    assert by_path["big.txt"].skipped == "larger than 100 bytes"
    assert by_path["big.txt"].diff == ""
    assert by_path["app.py"].diff.endswith("+small\n")


async def test_after_pruning_previous_means_the_previous_checkpoint_still_stored(
    setup: Setup, runner: GitRunner, tmp_path: Path
) -> None:
    hook = BlobCheckpointer(setup.store, runner, tmp_path / "pruning")
    made = []
    for step, text in enumerate(["one\n", "two\n", "three\n"]):
        (setup.repo / f"f{step}.txt").write_text(text)
        checkpoint = await hook.checkpoint(setup.workspace, 3 + step, None)
        assert checkpoint is not None
        made.append(checkpoint)
    run_id = setup.workspace.run_id
    assert await setup.store.prune(setup.principal.tenant_id, run_id, keep=1) == 1
    kept = [c.id for c in await setup.diffs.checkpoints(setup.principal, run_id)]
    assert kept == [made[0].id, made[2].id]  # the first and the newest
    since_first = await setup.diffs.diff(setup.principal, run_id, made[2].id)
    assert since_first.previous_id == made[0].id
    assert [(f.path, f.change) for f in since_first.files] == [
        ("f1.txt", "added"),
        ("f2.txt", "added"),
    ]
    with pytest.raises(NotFound, match="pruned"):
        await setup.diffs.diff(setup.principal, run_id, made[1].id)
