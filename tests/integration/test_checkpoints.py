"""Checkpoints of a real git worktree, stored as blobs, restored exactly."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from adapters.git.local import LocalGit
from adapters.memory.checkpoints import MemoryCheckpointStore
from adapters.postgres.checkpoints import PostgresCheckpointStore
from codeforge.domain.ids import new_id
from codeforge.ports.checkpoints import CheckpointStore, RunWorkspace
from codeforge.services.checkpoints import BlobCheckpointer
from codeforge.services.git_work import GitRunner
from tests.support.repos import git, make_repo


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest) -> CheckpointStore:
    if request.param == "memory":
        return MemoryCheckpointStore()
    pool: AsyncConnectionPool = request.getfixturevalue("pg_pool")
    return PostgresCheckpointStore(pool)


@pytest.fixture
async def runner() -> AsyncIterator[GitRunner]:
    git_runner = GitRunner(LocalGit())
    yield git_runner
    await git_runner.aclose()


@pytest.fixture
def workspace(tmp_path: Path) -> RunWorkspace:
    repo = make_repo(tmp_path / "repo", {"README.md": "# demo\n", "src/app.py": "x = 1\n"})
    (repo / ".gitignore").write_text("*.log\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore logs")
    return RunWorkspace(
        tenant_id=uuid.uuid4(),
        run_id=new_id(),
        path=str(repo),
        base_commit=git(repo, "rev-parse", "HEAD"),
    )


def tree(root: Path) -> dict[str, str]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            found[rel] = f"-> {os.readlink(path)}" if path.is_symlink() else path.read_text()
    return found


async def test_a_tool_edit_is_checkpointed_and_an_unchanged_step_is_not(
    store: CheckpointStore, runner: GitRunner, workspace: RunWorkspace, tmp_path: Path
) -> None:
    hook = BlobCheckpointer(store, runner, tmp_path / "scratch")
    root = Path(workspace.path)
    assert await hook.checkpoint(workspace, 3, None) is None
    (root / "src/app.py").write_text("x = 2\n")
    first = await hook.checkpoint(workspace, 5, ["src/app.py"])
    assert first is not None
    assert first.changed == ("src/app.py",)
    assert first.after_seq == 5
    assert await hook.checkpoint(workspace, 6, ["src/app.py"]) is None
    assert (await store.latest(workspace.tenant_id, workspace.run_id)) == first


async def test_a_shell_step_is_scanned_whole_and_links_are_kept_as_links(
    store: CheckpointStore, runner: GitRunner, workspace: RunWorkspace, tmp_path: Path
) -> None:
    hook = BlobCheckpointer(store, runner, tmp_path / "scratch")
    root = Path(workspace.path)
    (root / "new/deep").mkdir(parents=True)
    (root / "new/deep/file.txt").write_text("made by a command\n")
    (root / "README.md").unlink()
    (root / "build.log").write_text("ignored\n")
    (root / "secret").symlink_to("/etc/hostname")
    made = await hook.checkpoint(workspace, 9, None)
    assert made is not None
    assert made.changed == ("README.md", "new/deep/file.txt", "secret")
    assert made.files["README.md"].sha256 is None
    assert made.files["secret"].mode == 0o120000
    link_blob = made.files["secret"].sha256
    assert link_blob is not None
    assert await store.blob(link_blob) == b"/etc/hostname"


async def test_restore_makes_the_worktree_equal_to_the_checkpoint(
    store: CheckpointStore, runner: GitRunner, workspace: RunWorkspace, tmp_path: Path
) -> None:
    hook = BlobCheckpointer(store, runner, tmp_path / "scratch")
    root = Path(workspace.path)
    (root / "src/app.py").write_text("x = 2\n")
    (root / "notes.txt").write_text("keep me\n")
    early = await hook.checkpoint(workspace, 4, None)
    assert early is not None
    wanted = tree(root)
    (root / "src/app.py").write_text("x = 3\n")
    (root / "notes.txt").unlink()
    (root / "README.md").write_text("rewritten\n")
    (root / "later.txt").write_text("added later\n")
    (root / "tool.sh").write_text("#!/bin/sh\n")
    late = await hook.checkpoint(workspace, 8, None)
    assert late is not None

    # Any worker can restore: a fresh checkpointer that remembers nothing.
    fresh = BlobCheckpointer(store, runner, tmp_path / "other-scratch")
    changed = await fresh.restore(workspace, early.id)
    assert tree(root) == wanted
    assert set(changed) >= {"src/app.py", "notes.txt", "README.md", "later.txt", "tool.sh"}
    # And a scan after the restore sees only the restored state's difference from base.
    again = await fresh.checkpoint(workspace, 10, None)
    assert again is None or again.files == early.files


async def test_a_file_over_the_cap_is_listed_but_not_stored_and_a_restore_leaves_it(
    store: CheckpointStore, runner: GitRunner, workspace: RunWorkspace, tmp_path: Path
) -> None:
    hook = BlobCheckpointer(store, runner, tmp_path / "scratch", max_file_bytes=1000)
    root = Path(workspace.path)
    (root / "big.bin").write_bytes(b"x" * 5000)
    (root / "small.txt").write_text("small\n")
    made = await hook.checkpoint(workspace, 3, None)
    assert made is not None
    assert made.files["big.bin"].skipped == "larger than 1000 bytes"
    assert made.files["big.bin"].sha256 is None
    assert made.files["small.txt"].sha256 is not None
    (root / "big.bin").write_bytes(b"y" * 6000)
    (root / "small.txt").unlink()
    await BlobCheckpointer(store, runner, tmp_path / "s2", max_file_bytes=1000).restore(
        workspace, made.id
    )
    assert (root / "small.txt").read_text() == "small\n"
    assert (root / "big.bin").read_bytes() == b"y" * 6000  # never stored: left as it was


async def test_touched_paths_are_checkpointed_without_scanning_the_rest(
    store: CheckpointStore, runner: GitRunner, workspace: RunWorkspace, tmp_path: Path
) -> None:
    hook = BlobCheckpointer(store, runner, tmp_path / "scratch")
    root = Path(workspace.path)
    (root / "unrelated.txt").write_text("made by someone else\n")
    (root / "src/app.py").write_text("x = 5\n")
    made = await hook.checkpoint(workspace, 2, ["src/app.py"])
    assert made is not None
    assert set(made.files) == {"src/app.py"}  # only what the tool said it touched
    (root / "src/app.py").write_text("x = 1\n")  # back to the base's content
    back = await hook.checkpoint(workspace, 3, ["src/app.py"])
    assert back is not None
    assert back.files == {}
    full = await hook.checkpoint(workspace, 4, None)
    assert full is not None
    assert set(full.files) == {"unrelated.txt"}


async def test_a_touched_path_is_read_without_following_links(
    store: CheckpointStore, runner: GitRunner, workspace: RunWorkspace, tmp_path: Path
) -> None:
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "key.pem").write_text("PRIVATE\n")
    root = Path(workspace.path)
    (root / "linked").symlink_to(secret)
    (root / "pointer").symlink_to(secret / "key.pem")
    hook = BlobCheckpointer(store, runner, tmp_path / "scratch")
    made = await hook.checkpoint(workspace, 2, ["linked/key.pem", "pointer"])
    assert made is not None
    assert set(made.files) == {"pointer"}  # the path under a linked folder is not read
    pointer = made.files["pointer"]
    assert pointer.mode == 0o120000
    assert pointer.sha256 is not None
    assert await store.blob(pointer.sha256) == str(secret / "key.pem").encode()
    exe = root / "run.sh"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    executable = await hook.checkpoint(workspace, 3, ["run.sh"])
    assert executable is not None
    assert executable.files["run.sh"].mode == 0o100755
