"""`GitRunner` with the real `LocalGit`: the bound on concurrent git work, cancellation
that kills git and removes the half-made clone, and progress relayed to the event loop.

Slow clones use a stand-in for ssh (`slow_ssh`): a script that waits, as a slow network
would, and then runs the remote side (`git upload-pack`) locally. So the clones are real
git clones over git's ssh transport, only slower, and the tests can see (in the script's
log) when each one is "on the network".
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.git import LocalGit
from codeforge.ports.vcs import RepositoryNotFound
from codeforge.services.git_work import DEFAULT_MAX_CONCURRENT, GitRunner

pytestmark = pytest.mark.integration

IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
}


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=os.environ | IDENTITY, capture_output=True, text=True
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


@pytest.fixture(autouse=True)
def hermetic_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path_factory.mktemp("gitconfig") / "config"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository with a few commits and enough files for progress lines."""
    seed = tmp_path / "seed"
    git(tmp_path, "init", "-q", "-b", "main", str(seed))
    for i in range(40):
        (seed / f"file{i}.txt").write_text(f"content {i}\n" * 50)
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "many files")
    (seed / "file0.txt").write_text("changed\n")
    git(seed, "commit", "-q", "-am", "change")
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(bare))
    return bare


def slow_ssh(tmp_path: Path, delay: float) -> tuple[str, Path]:
    """An ssh stand-in that waits `delay` seconds, then serves the clone locally.

    Returns (ssh command for LocalGit, log file). Each connection logs
    "start <pid> <time>" before waiting and "end <pid> <time>" after.
    """
    log = tmp_path / f"ssh-{delay}.log"
    script = tmp_path / f"slow-ssh-{delay}"
    script.write_text(
        f"""#!/bin/sh
# git probes an unknown ssh with -G to learn whether it is OpenSSH: it is not.
[ "$1" = "-G" ] && exit 1
echo "start $$ $(date +%s.%N)" >> {shlex.quote(str(log))}
sleep {delay}
echo "end $$ $(date +%s.%N)" >> {shlex.quote(str(log))}
for last; do :; done
# The last argument is the remote command, "git-upload-pack '/path'".
exec sh -c "git ${{last#git-}}"
"""
    )
    script.chmod(0o755)
    return shlex.quote(str(script)), log


def ssh_url(bare: Path) -> str:
    return f"ssh://localhost{bare}"


def log_entries(log: Path) -> list[tuple[str, int, float]]:
    if not log.exists():
        return []
    entries = []
    for line in log.read_text().splitlines():
        kind, pid, at = line.split()
        entries.append((kind, int(pid), float(at)))
    return entries


def peak_overlap(log: Path) -> int:
    """The most connections that were waiting "on the network" at the same moment."""
    events = sorted((at, 1 if kind == "start" else -1) for kind, _, at in log_entries(log))
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (containers may not reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in {"Z", "X"}


async def wait_for(condition: Callable[[], object]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------------- bound


def test_the_default_bound_is_five() -> None:
    assert DEFAULT_MAX_CONCURRENT == 5
    assert GitRunner(LocalGit()).max_concurrent == 5
    with pytest.raises(ValueError, match="at least 1"):
        GitRunner(LocalGit(), max_concurrent=0)


async def test_at_most_max_concurrent_clones_run_at_once(remote: Path, tmp_path: Path) -> None:
    command, log = slow_ssh(tmp_path, 0.4)
    runner = GitRunner(LocalGit(ssh_command=command), max_concurrent=3)
    seen: list[tuple[int, int]] = []

    async def watch() -> None:
        while True:
            seen.append((runner.running, runner.waiting))
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    started = time.monotonic()
    infos = await asyncio.gather(
        *(runner.clone(ssh_url(remote), tmp_path / f"c{i}") for i in range(8))
    )
    elapsed = time.monotonic() - started
    watcher.cancel()

    assert all(info.head for info in infos)
    assert len({info.path for info in infos}) == 8
    # The bound held for the git processes themselves, and was reached.
    assert peak_overlap(log) == 3
    assert max(r for r, _ in seen) == 3
    assert max(w for _, w in seen) == 5
    # 8 clones, 3 at a time, 0.4 s each: three waves, not one and not eight.
    assert 1.1 < elapsed < 8
    assert (runner.running, runner.waiting) == (0, 0)
    await runner.aclose()


async def test_the_event_loop_keeps_running_during_git_work(remote: Path, tmp_path: Path) -> None:
    command, _ = slow_ssh(tmp_path, 1.0)
    runner = GitRunner(LocalGit(ssh_command=command))
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.gather(*(runner.clone(ssh_url(remote), tmp_path / f"c{i}") for i in range(4)))
    ticker.cancel()
    # Blocking the loop for one clone would show as a gap of a second or more.
    assert len(gaps) > 20
    assert max(gaps) < 0.5
    await runner.aclose()


# ---------------------------------------------------------------------- cancellation


async def test_a_cancelled_clone_kills_git_and_removes_the_clone(
    remote: Path, tmp_path: Path
) -> None:
    command, log = slow_ssh(tmp_path, 30)
    runner = GitRunner(LocalGit(ssh_command=command), max_concurrent=2)
    dest = tmp_path / "clone"
    task = asyncio.create_task(runner.clone(ssh_url(remote), dest))
    # git has made the directory and is "on the network" (in the ssh stand-in).
    await wait_for(lambda: dest.exists() and log_entries(log))
    ssh_pid = log_entries(log)[0][1]
    assert alive(ssh_pid)

    cancelled_at = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - cancelled_at < 5
    # By the time the CancelledError arrives the clone is gone; ssh dies with its group.
    assert not dest.exists()
    # SIGKILL reached the whole group; a loaded machine may take a moment to end ssh.
    await wait_for(lambda: not alive(ssh_pid))
    assert (runner.running, runner.waiting) == (0, 0)

    # The slot was given back: the runner still works.
    info = await runner.clone(str(remote), tmp_path / "after")
    assert info.head
    await runner.aclose()


async def test_a_clone_cancelled_while_waiting_never_starts(remote: Path, tmp_path: Path) -> None:
    command, log = slow_ssh(tmp_path, 0.5)
    runner = GitRunner(LocalGit(ssh_command=command), max_concurrent=1)
    first = asyncio.create_task(runner.clone(ssh_url(remote), tmp_path / "first"))
    second = asyncio.create_task(runner.clone(ssh_url(remote), tmp_path / "second"))
    await wait_for(lambda: runner.running == 1 and runner.waiting == 1)
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert (await first).head
    assert not (tmp_path / "second").exists()
    assert [kind for kind, _, _ in log_entries(log)] == ["start", "end"]
    assert (runner.running, runner.waiting) == (0, 0)
    await runner.aclose()


async def test_a_cancelled_fetch_stops_git(remote: Path, tmp_path: Path) -> None:
    command, log = slow_ssh(tmp_path, 30)
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(remote), str(work))
    git(work, "remote", "set-url", "origin", ssh_url(remote))
    runner = GitRunner(LocalGit(ssh_command=command))
    task = asyncio.create_task(runner.fetch(work))
    await wait_for(lambda: log_entries(log))
    ssh_pid = log_entries(log)[0][1]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # SIGKILL reached the whole group; a loaded machine may take a moment to end ssh.
    await wait_for(lambda: not alive(ssh_pid))
    # git got SIGTERM first and cleaned up after itself: the repository is usable.
    assert (await runner.status(work)).clean
    await runner.aclose()


# ---------------------------------------------------------------------- progress


async def test_progress_reaches_the_event_loop_thread_in_order(
    remote: Path, tmp_path: Path
) -> None:
    runner = GitRunner(LocalGit())
    loop_thread = threading.get_ident()
    seen: list[tuple[str, float | None, str, int]] = []

    def progress(stage: str, percent: float | None, message: str) -> None:
        seen.append((stage, percent, message, threading.get_ident()))

    info = await runner.clone(remote.as_uri(), tmp_path / "c", progress=progress)
    assert info.head
    # Every callback ran on the loop thread, and all of them before the result arrived.
    assert {thread for *_, thread in seen} == {loop_thread}
    assert seen[0][0] == "Starting"
    assert seen[-1][:2] == ("Done", 100.0)
    receiving = [p or 0.0 for s, p, _, _ in seen if s == "Receiving objects"]
    assert receiving
    assert receiving[-1] == 100.0
    assert receiving == sorted(receiving)  # relayed in order
    await runner.aclose()


# ---------------------------------------------------------------------- errors and rest


async def test_errors_come_back_and_free_the_slot(tmp_path: Path) -> None:
    runner = GitRunner(LocalGit(), max_concurrent=1)
    with pytest.raises(RepositoryNotFound):
        await runner.clone(str(tmp_path / "missing"), tmp_path / "c")
    with pytest.raises(RepositoryNotFound):
        await runner.status(tmp_path / "missing")
    assert (runner.running, runner.waiting) == (0, 0)
    assert await runner.is_repository(tmp_path) is False
    await runner.aclose()


async def test_the_whole_run_workflow_through_the_runner(remote: Path, tmp_path: Path) -> None:
    runner = GitRunner(LocalGit())
    work = tmp_path / "work"
    await runner.clone(str(remote), work)
    path = await runner.create_worktree(work, tmp_path / "runs" / "7", "codeforge/run-7")
    (Path(path) / "agent.txt").write_text("done\n")
    assert "+done" in await runner.diff(path)
    sha = await runner.commit(path, "agent work", author_name="Agent", author_email="a@x.org")
    assert (await runner.status(path)).head == sha
    assert [w.branch for w in await runner.worktrees(work)] == ["main", "codeforge/run-7"]
    await runner.remove_worktree(work, path)
    assert {b.name for b in await runner.branches(work)} >= {"main", "codeforge/run-7"}
    assert (await runner.pull(work)).commits == 0
    assert (await runner.checkout(work, "codeforge/run-7")).head == sha
    await runner.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await runner.status(work)
