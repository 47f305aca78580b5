"""Checkpoints on a 10,000-file repository with one file changed (issue 8's figures).

- after a tool edit (the paths are known): goal ≤ 20 ms;
- after a shell command (a full scan): goal ≤ 1.2x a bare
  `git add -A && git write-tree && git commit-tree` on a clone of the same repository,
  measured in the same run, rounds interleaved;
- rewind (restore an earlier checkpoint): goal ≤ 300 ms.

Real git, the real PostgreSQL checkpoint store; medians.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from adapters.git.local import LocalGit
from adapters.postgres.checkpoints import PostgresCheckpointStore
from codeforge.domain.ids import new_id
from codeforge.ports.checkpoints import RunWorkspace
from codeforge.services.checkpoints import BlobCheckpointer
from codeforge.services.git_work import GitRunner
from tests.benchmarks.conftest import median, report, require
from tests.support.repos import IDENTITY, git

FILES = 10_000
ROUNDS = 15


def make_big_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    for n in range(FILES):
        folder = root / f"pkg{n % 50}" / f"sub{n % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"module_{n}.py").write_text(f"VALUE_{n} = {n}\n" + "x = 1\n" * (n % 20))
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "big")
    return root


@pytest.fixture
async def runner() -> AsyncIterator[GitRunner]:
    git_runner = GitRunner(LocalGit())
    yield git_runner
    await git_runner.aclose()


def bare_checkpoint(repo: Path) -> float:
    started = time.perf_counter()
    env = {**os.environ, **IDENTITY}
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    tree = subprocess.run(
        ["git", "write-tree"], cwd=repo, check=True, capture_output=True, text=True, env=env
    ).stdout.strip()
    subprocess.run(
        ["git", "commit-tree", tree, "-p", "HEAD", "-m", "checkpoint"],
        cwd=repo, check=True, capture_output=True, env=env,
    )  # fmt: skip
    return time.perf_counter() - started


async def test_checkpoints_on_ten_thousand_files(
    pg_pool: AsyncConnectionPool, runner: GitRunner, tmp_path: Path
) -> None:
    repo = make_big_repo(tmp_path / "big")
    baseline = tmp_path / "bare"
    subprocess.run(["git", "clone", "-q", str(repo), str(baseline)], check=True)
    workspace = RunWorkspace(
        tenant_id=uuid.uuid4(),
        run_id=new_id(),
        path=str(repo),
        base_commit=git(repo, "rev-parse", "HEAD"),
    )
    hook = BlobCheckpointer(PostgresCheckpointStore(pg_pool), runner, tmp_path / "scratch")
    target = repo / "pkg3" / "sub3" / "module_3.py"
    other = baseline / "pkg3" / "sub3" / "module_3.py"
    seq = 1
    # Warm-up: the first full scan reads every file once (as a run's first command does).
    target.write_text("warm = 1\n")
    first = await hook.checkpoint(workspace, seq, None)
    assert first is not None
    bare_checkpoint(baseline)

    edits, scans, bares = [], [], []
    for n in range(ROUNDS):
        seq += 1
        target.write_text(f"edited = {n}\n")
        started = time.perf_counter()
        made = await hook.checkpoint(workspace, seq, ["pkg3/sub3/module_3.py"])
        edits.append(time.perf_counter() - started)
        assert made is not None

        seq += 1
        target.write_text(f"scanned = {n}\n")
        started = time.perf_counter()
        made = await hook.checkpoint(workspace, seq, None)
        scans.append(time.perf_counter() - started)
        assert made is not None
        assert made.changed == ("pkg3/sub3/module_3.py",)

        other.write_text(f"scanned = {n}\n")
        bares.append(bare_checkpoint(baseline))

    rewinds = []
    for n in range(5):
        target.write_text(f"moved on = {n}\n")
        (repo / f"new_{n}.txt").write_text("new\n")
        started = time.perf_counter()
        await hook.restore(workspace, first.id)
        rewinds.append(time.perf_counter() - started)
        assert target.read_text() == "warm = 1\n"
        assert not (repo / f"new_{n}.txt").exists()

    edit_ms, scan_ms, bare_ms, rewind_ms = (
        median(edits) * 1000, median(scans) * 1000, median(bares) * 1000, median(rewinds) * 1000
    )  # fmt: skip
    report(
        f"checkpoints on {FILES:,} files, one changed",
        after_tool_edit_ms=edit_ms,
        after_full_scan_ms=scan_ms,
        bare_git_add_write_tree_commit_tree_ms=bare_ms,
        scan_ratio=scan_ms / bare_ms,
        rewind_ms=rewind_ms,
    )
    require(edit_ms <= 20, f"a checkpoint after a tool edit took {edit_ms:.1f} ms > 20 ms")
    require(
        scan_ms <= 1.2 * bare_ms, f"a full-scan checkpoint is {scan_ms / bare_ms:.2f}x bare git"
    )
    require(rewind_ms <= 300, f"a rewind took {rewind_ms:.0f} ms > 300 ms")
