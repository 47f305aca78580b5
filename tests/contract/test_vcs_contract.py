"""The `Vcs` port's contract, run against every adapter.

`VcsContract` holds the tests; an adapter's suite subclasses it and provides the `vcs`
fixture (see `TestLocalGit` at the end). Every test works on real repositories made here
with the git command line: a bare "remote" with `main`, `feature` and a tag `v1`, a
"seed" working repository that pushes to it, and clones of it.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from codeforge.domain.errors import Conflict, NotFound, ValidationFailed
from codeforge.ports.errors import PortError
from codeforge.ports.vcs import (
    BranchExists,
    CloneFailed,
    DestinationNotEmpty,
    DirtyWorkingTree,
    DivergedBranch,
    InvalidPath,
    InvalidRefName,
    InvalidVcsArgument,
    NotAGitRepository,
    NothingToCommit,
    NoUpstream,
    OperationCancelled,
    PushAuthFailed,
    PushCredentials,
    PushRejected,
    RemoteNotFound,
    RepoInfo,
    RepositoryNotFound,
    RepoStatus,
    UnknownRef,
    UnsafeSource,
    Vcs,
    VcsError,
    run_branch,
)
from tests.support.scripted_git_host import ScriptedGitHost

pytestmark = pytest.mark.contract

IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
}
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def git(cwd: Path, *args: str) -> str:
    """The test's own git: explicit identity, no shell, fails loudly."""
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=os.environ | IDENTITY,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


def commit_file(repo: Path, name: str, content: str, message: str | None = None) -> str:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    git(repo, "add", "--", name)
    git(repo, "commit", "-q", "-m", message or f"write {name}")
    return git(repo, "rev-parse", "HEAD")


def snapshot(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


@pytest.fixture(autouse=True)
def hermetic_git(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No global or system git config (a developer's insteadOf or hooks must not leak in),
    no proxies (the unreachable-URL tests must fail fast, locally)."""
    empty = tmp_path_factory.mktemp("gitconfig") / "config"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)


class Remote(msgspec.Struct):
    bare: Path
    seed: Path
    main: str
    feature: str
    tag: str


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    seed = tmp_path / "seed"
    git(tmp_path, "init", "-q", "-b", "main", str(seed))
    commit_file(seed, "README.md", "hello\n")
    commit_file(seed, ".gitignore", "*.log\n")
    main = commit_file(seed, "src/app.py", "print('hi')\n")
    git(seed, "tag", "v1")
    git(seed, "switch", "-q", "-c", "feature")
    feature = commit_file(seed, "feature.txt", "feature\n")
    git(seed, "switch", "-q", "main")
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(bare))
    git(seed, "remote", "add", "origin", str(bare))
    git(seed, "fetch", "-q", "origin")
    git(seed, "branch", "-q", "--set-upstream-to=origin/main", "main")
    return Remote(bare=bare, seed=seed, main=main, feature=feature, tag=main)


def push_commit(remote: Remote, name: str, content: str) -> str:
    """Someone else pushes a commit to the remote's main."""
    sha = commit_file(remote.seed, name, content)
    git(remote.seed, "push", "-q", "origin", "main")
    return sha


@pytest.fixture
def http_401() -> Iterator[str]:
    """An HTTP server that asks every request for credentials."""

    class AskForPassword(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AskForPassword)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/repo.git"
    server.shutdown()
    server.server_close()


class VcsContract:
    """The contract of `codeforge.ports.vcs.Vcs`. Subclass and provide `vcs`."""

    @pytest.fixture
    def vcs(self) -> Vcs:
        raise NotImplementedError("an adapter's suite provides the `vcs` fixture")

    @pytest.fixture
    def work(self, vcs: Vcs, remote: Remote, tmp_path: Path) -> Path:
        """A clone of the remote, on main."""
        dest = tmp_path / "work"
        vcs.clone(str(remote.bare), dest)
        return dest

    # ------------------------------------------------------------------ errors

    def test_errors_are_port_errors_with_domain_meanings(self) -> None:
        assert issubclass(VcsError, PortError)
        assert issubclass(RepositoryNotFound, NotFound)
        assert issubclass(UnknownRef, NotFound)
        assert issubclass(DirtyWorkingTree, Conflict)
        assert issubclass(DivergedBranch, Conflict)
        assert issubclass(UnsafeSource, ValidationFailed)
        assert issubclass(CloneFailed, ValidationFailed)
        error = DirtyWorkingTree("dirty", paths=["a"])
        assert (error.message, error.paths, str(error)) == ("dirty", ("a",), "dirty")

    # ------------------------------------------------------------------ clone

    def test_clone_of_a_local_bare_repository(
        self, vcs: Vcs, remote: Remote, tmp_path: Path
    ) -> None:
        info = vcs.clone(str(remote.bare), tmp_path / "c")
        assert info == RepoInfo(
            path=str(tmp_path / "c"), head=remote.main, branch="main", remote_url=str(remote.bare)
        )
        assert (tmp_path / "c" / "README.md").read_text() == "hello\n"
        assert vcs.is_repository(tmp_path / "c")

    def test_clone_of_a_local_working_tree_and_of_a_file_url(
        self, vcs: Vcs, remote: Remote, tmp_path: Path
    ) -> None:
        assert vcs.clone(str(remote.seed), tmp_path / "a").head == remote.main
        info = vcs.clone(remote.bare.as_uri(), tmp_path / "b")
        assert (info.head, info.remote_url) == (remote.main, remote.bare.as_uri())

    def test_clone_of_a_branch_or_a_tag(self, vcs: Vcs, remote: Remote, tmp_path: Path) -> None:
        info = vcs.clone(str(remote.bare), tmp_path / "f", branch="feature")
        assert (info.branch, info.head) == ("feature", remote.feature)
        tagged = vcs.clone(str(remote.bare), tmp_path / "t", branch="v1")
        assert (tagged.branch, tagged.head) == (None, remote.tag)

    def test_clone_of_an_unknown_branch_leaves_nothing(
        self, vcs: Vcs, remote: Remote, tmp_path: Path
    ) -> None:
        with pytest.raises(UnknownRef, match="nope"):
            vcs.clone(str(remote.bare), tmp_path / "c", branch="nope")
        assert not (tmp_path / "c").exists()

    def test_clone_of_an_empty_repository(self, vcs: Vcs, tmp_path: Path) -> None:
        git(tmp_path, "init", "-q", "--bare", "-b", "main", "empty.git")
        info = vcs.clone(str(tmp_path / "empty.git"), tmp_path / "c")
        assert (info.head, info.branch) == (None, "main")
        status = vcs.status(tmp_path / "c")
        assert (status.head, status.branch, status.upstream) == (None, "main", "origin/main")
        assert [w.head for w in vcs.worktrees(tmp_path / "c")] == [None]
        # Once someone pushes the first commit, a pull brings it in.
        git(tmp_path, "clone", "-q", str(tmp_path / "empty.git"), "other")
        first = commit_file(tmp_path / "other", "first.txt", "1\n")
        git(tmp_path / "other", "push", "-q", "origin", "main")
        result = vcs.pull(tmp_path / "c")
        assert (result.before, result.after, result.commits) == (None, first, 1)

    def test_clone_into_an_existing_empty_directory(
        self, vcs: Vcs, remote: Remote, tmp_path: Path
    ) -> None:
        (tmp_path / "empty").mkdir()
        assert vcs.clone(str(remote.bare), tmp_path / "empty").head == remote.main

    def test_clone_refuses_a_destination_with_files(
        self, vcs: Vcs, remote: Remote, tmp_path: Path
    ) -> None:
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "mine.txt").write_text("keep me")
        with pytest.raises(DestinationNotEmpty):
            vcs.clone(str(remote.bare), tmp_path / "full")
        assert (tmp_path / "full" / "mine.txt").read_text() == "keep me"
        (tmp_path / "file").write_text("x")
        with pytest.raises(DestinationNotEmpty):
            vcs.clone(str(remote.bare), tmp_path / "file")

    def test_clone_of_a_missing_path(self, vcs: Vcs, tmp_path: Path) -> None:
        with pytest.raises(RepositoryNotFound):
            vcs.clone(str(tmp_path / "nowhere"), tmp_path / "c")
        assert not (tmp_path / "c").exists()

    def test_clone_of_a_folder_that_is_not_a_repository(
        self, vcs: Vcs, remote: Remote, tmp_path: Path
    ) -> None:
        (tmp_path / "plain").mkdir()
        with pytest.raises(NotAGitRepository):
            vcs.clone(str(tmp_path / "plain"), tmp_path / "c")
        with pytest.raises(NotAGitRepository):  # a subfolder of a repository is not one
            vcs.clone(str(remote.seed / "src"), tmp_path / "c")
        assert not (tmp_path / "c").exists()

    @pytest.mark.parametrize(
        "source",
        [
            "--upload-pack=touch {marker}",
            "-u touch {marker}",
            "ext::sh -c touch% {marker}",
            "EXT::sh -c touch% {marker}",
            "fd::17",
            "ftp://example.com/repo.git",
            "ssh://-oProxyCommand=touch%20{marker}/repo",
            "-oProxyCommand=touch {marker}:repo",
            "git@-oProxyCommand=x:repo",
            "",
            "https://example.com/repo\n--upload-pack=x",
        ],
    )
    def test_clone_refuses_unsafe_sources_before_git_runs(
        self, vcs: Vcs, tmp_path: Path, source: str
    ) -> None:
        marker = tmp_path / "pwned"
        with pytest.raises(UnsafeSource):
            vcs.clone(source.format(marker=marker), tmp_path / "c")
        assert not marker.exists()
        assert not (tmp_path / "c").exists()

    def test_clone_of_an_unreachable_url_says_why_without_credentials(
        self, vcs: Vcs, tmp_path: Path
    ) -> None:
        started = time.monotonic()
        with pytest.raises(CloneFailed) as caught:
            vcs.clone("https://alice:s3cret@127.0.0.1:1/repo.git", tmp_path / "c")
        message = str(caught.value)
        assert "s3cret" not in message
        assert "alice" not in message
        assert "127.0.0.1" in message
        assert "\n" not in message
        assert not (tmp_path / "c").exists()
        assert time.monotonic() - started < 10

    @pytest.mark.skipif(shutil.which("ssh") is None, reason="no ssh client")
    def test_clone_over_ssh_fails_fast_and_keeps_ssh_s_reason(
        self, vcs: Vcs, tmp_path: Path
    ) -> None:
        started = time.monotonic()
        with pytest.raises(CloneFailed, match="Connection refused"):
            vcs.clone("ssh://git@127.0.0.1:1/repo.git", tmp_path / "c")
        assert time.monotonic() - started < 10
        assert not (tmp_path / "c").exists()

    def test_clone_of_a_missing_file_url(self, vcs: Vcs, tmp_path: Path) -> None:
        with pytest.raises(CloneFailed, match="does not appear to be a git repository"):
            vcs.clone((tmp_path / "missing.git").as_uri(), tmp_path / "c")
        assert not (tmp_path / "c").exists()

    def test_clone_never_prompts_for_credentials(
        self, vcs: Vcs, http_401: str, tmp_path: Path
    ) -> None:
        started = time.monotonic()
        with pytest.raises(CloneFailed, match="credentials"):
            vcs.clone(http_401, tmp_path / "c")
        assert time.monotonic() - started < 10
        assert not (tmp_path / "c").exists()

    def test_a_cancelled_clone_leaves_nothing(
        self, vcs: Vcs, remote: Remote, tmp_path: Path
    ) -> None:
        cancel = threading.Event()
        cancel.set()
        with pytest.raises(OperationCancelled):
            vcs.clone(remote.bare.as_uri(), tmp_path / "c", cancel=cancel)
        assert not (tmp_path / "c").exists()
        (tmp_path / "kept").mkdir()
        with pytest.raises(OperationCancelled):
            vcs.clone(remote.bare.as_uri(), tmp_path / "kept", cancel=cancel)
        assert list((tmp_path / "kept").iterdir()) == []

    def test_clone_reports_progress(self, vcs: Vcs, remote: Remote, tmp_path: Path) -> None:
        seen: list[tuple[str, float | None, str]] = []
        vcs.clone(remote.bare.as_uri(), tmp_path / "c", progress=lambda *a: seen.append(a))
        stages = [stage for stage, _, _ in seen]
        assert stages[0] == "Starting"
        assert seen[-1][:2] == ("Done", 100.0)
        assert ("Receiving objects", 100.0) in [(s, p) for s, p, _ in seen]
        assert all(p is None or 0 <= p <= 100 for _, p, _ in seen)
        assert all(isinstance(m, str) and m for _, _, m in seen)

    def test_a_failing_progress_callback_aborts_the_clone(
        self, vcs: Vcs, remote: Remote, tmp_path: Path
    ) -> None:
        def explode(stage: str, percent: float | None, message: str) -> None:
            if stage == "Receiving objects":
                raise RuntimeError("callback bug")

        with pytest.raises(RuntimeError, match="callback bug"):
            vcs.clone(remote.bare.as_uri(), tmp_path / "c", progress=explode)
        assert not (tmp_path / "c").exists()

    # ------------------------------------------------------------------ is_repository

    def test_is_repository(self, vcs: Vcs, remote: Remote, work: Path, tmp_path: Path) -> None:
        (tmp_path / "plain").mkdir()
        assert vcs.is_repository(work)
        assert vcs.is_repository(str(work))
        assert vcs.is_repository(remote.bare)
        assert not vcs.is_repository(work / "src")
        assert not vcs.is_repository(work / ".git")
        assert not vcs.is_repository(tmp_path / "plain")
        assert not vcs.is_repository(tmp_path / "missing")
        assert not vcs.is_repository(work / "README.md")

    # ------------------------------------------------------------------ status

    def test_status_of_a_fresh_clone(self, vcs: Vcs, remote: Remote, work: Path) -> None:
        assert vcs.status(work) == RepoStatus(
            branch="main",
            head=remote.main,
            detached=False,
            clean=True,
            upstream="origin/main",
            ahead=0,
            behind=0,
        )

    def test_status_lists_changes_by_kind(self, vcs: Vcs, work: Path) -> None:
        (work / "README.md").write_text("changed\n")
        (work / "src" / "app.py").unlink()
        (work / "staged.txt").write_text("new\n")
        git(work, "add", "staged.txt")
        (work / "notes" / "deep").mkdir(parents=True)
        (work / "notes" / "deep" / "todo.md").write_text("x\n")
        (work / "debug.log").write_text("ignored\n")
        status = vcs.status(work)
        assert not status.clean
        assert status.modified == ("README.md",)
        assert status.deleted == ("src/app.py",)
        assert status.added == ("staged.txt",)
        assert status.untracked == ("notes/deep/todo.md",)
        assert status.has_tracked_changes

    def test_status_with_only_untracked_files(self, vcs: Vcs, work: Path) -> None:
        (work / "new.txt").write_text("x")
        status = vcs.status(work)
        assert (status.clean, status.has_tracked_changes) == (False, False)

    def test_status_counts_ahead_and_behind(self, vcs: Vcs, remote: Remote, work: Path) -> None:
        commit_file(work, "local.txt", "mine\n")
        push_commit(remote, "theirs.txt", "theirs\n")
        assert (vcs.status(work).ahead, vcs.status(work).behind) == (1, 0)
        vcs.fetch(work)
        assert (vcs.status(work).ahead, vcs.status(work).behind) == (1, 1)

    def test_status_does_not_touch_the_index(self, vcs: Vcs, work: Path) -> None:
        index = work / ".git" / "index"
        before = snapshot(index)
        time.sleep(0.01)
        os.utime(work / "README.md")  # stat-dirty: a normal `git status` rewrites the index
        vcs.status(work)
        assert snapshot(index) == before

    def test_status_of_what_is_not_a_working_tree(
        self, vcs: Vcs, remote: Remote, tmp_path: Path
    ) -> None:
        (tmp_path / "plain").mkdir()
        with pytest.raises(RepositoryNotFound):
            vcs.status(tmp_path / "missing")
        with pytest.raises(NotAGitRepository):
            vcs.status(tmp_path / "plain")
        with pytest.raises(NotAGitRepository):
            vcs.status(remote.bare)
        with pytest.raises(NotAGitRepository):
            vcs.status(remote.seed / "src")

    # ------------------------------------------------------------------ fetch / pull

    def test_fetch_updates_and_prunes_remote_branches(
        self, vcs: Vcs, remote: Remote, work: Path
    ) -> None:
        git(remote.seed, "push", "-q", "origin", "main:refs/heads/extra")
        git(remote.seed, "push", "-q", "origin", ":feature")
        vcs.fetch(work)
        names = {b.name for b in vcs.branches(work)}
        assert "origin/extra" in names
        assert "origin/feature" not in names

    def test_fetch_without_a_remote(self, vcs: Vcs, tmp_path: Path) -> None:
        git(tmp_path, "init", "-q", "-b", "main", "solo")
        with pytest.raises(NoUpstream):
            vcs.fetch(tmp_path / "solo")

    def test_pull_fast_forwards(self, vcs: Vcs, remote: Remote, work: Path) -> None:
        new = push_commit(remote, "theirs.txt", "theirs\n")
        result = vcs.pull(work)
        assert (result.before, result.after, result.commits) == (remote.main, new, 1)
        assert result.updated
        assert result.upstream == "origin/main"
        assert (work / "theirs.txt").read_text() == "theirs\n"
        again = vcs.pull(work)
        assert (again.updated, again.commits, again.after) == (False, 0, new)

    def test_pull_refuses_a_diverged_branch(self, vcs: Vcs, remote: Remote, work: Path) -> None:
        mine = commit_file(work, "local.txt", "mine\n")
        push_commit(remote, "theirs.txt", "theirs\n")
        with pytest.raises(DivergedBranch, match="diverged") as caught:
            vcs.pull(work)
        assert (caught.value.ahead, caught.value.behind) == (1, 1)
        assert vcs.status(work).head == mine

    def test_pull_refuses_to_overwrite_local_changes(
        self, vcs: Vcs, remote: Remote, work: Path
    ) -> None:
        push_commit(remote, "README.md", "theirs\n")
        (work / "README.md").write_text("mine\n")
        with pytest.raises(DirtyWorkingTree) as caught:
            vcs.pull(work)
        assert caught.value.paths == ("README.md",)
        assert (work / "README.md").read_text() == "mine\n"
        assert vcs.status(work).head == remote.main

    def test_pull_refuses_to_overwrite_untracked_files(
        self, vcs: Vcs, remote: Remote, work: Path
    ) -> None:
        push_commit(remote, "theirs.txt", "theirs\n")
        (work / "theirs.txt").write_text("mine, untracked\n")
        with pytest.raises(DirtyWorkingTree):
            vcs.pull(work)
        assert (work / "theirs.txt").read_text() == "mine, untracked\n"

    def test_pull_keeps_local_changes_that_do_not_collide(
        self, vcs: Vcs, remote: Remote, work: Path
    ) -> None:
        push_commit(remote, "theirs.txt", "theirs\n")
        (work / "README.md").write_text("mine\n")
        assert vcs.pull(work).commits == 1
        assert (work / "README.md").read_text() == "mine\n"

    def test_pull_needs_a_branch_with_an_upstream(
        self, vcs: Vcs, remote: Remote, work: Path
    ) -> None:
        vcs.checkout(work, "local-only", create=True)
        with pytest.raises(NoUpstream, match="no upstream"):
            vcs.pull(work)
        vcs.checkout(work, "v1")
        with pytest.raises(NoUpstream, match="detached"):
            vcs.pull(work)

    # ------------------------------------------------------------------ branches

    def test_branches_lists_local_then_remote(self, vcs: Vcs, remote: Remote, work: Path) -> None:
        listed = [
            (b.name, b.ref, b.head, b.remote, b.current, b.upstream) for b in vcs.branches(work)
        ]
        assert listed == [
            ("main", "refs/heads/main", remote.main, False, True, "origin/main"),
            ("origin/feature", "refs/remotes/origin/feature", remote.feature, True, False, None),
            ("origin/main", "refs/remotes/origin/main", remote.main, True, False, None),
        ]

    # ------------------------------------------------------------------ checkout

    def test_checkout_of_a_remote_only_branch_creates_a_tracking_branch(
        self, vcs: Vcs, remote: Remote, work: Path
    ) -> None:
        status = vcs.checkout(work, "feature")
        assert (status.branch, status.head, status.upstream) == (
            "feature",
            remote.feature,
            "origin/feature",
        )
        assert vcs.checkout(work, "main").branch == "main"

    def test_checkout_creates_a_branch(self, vcs: Vcs, remote: Remote, work: Path) -> None:
        status = vcs.checkout(work, "topic/x", create=True)
        assert (status.branch, status.head, status.upstream) == ("topic/x", remote.main, None)
        with pytest.raises(BranchExists):
            vcs.checkout(work, "topic/x", create=True)

    def test_checkout_of_a_tag_or_commit_detaches(
        self, vcs: Vcs, remote: Remote, work: Path
    ) -> None:
        commit_file(work, "later.txt", "x\n")
        status = vcs.checkout(work, "v1")
        assert (status.detached, status.branch, status.head) == (True, None, remote.tag)
        assert vcs.checkout(work, remote.feature).head == remote.feature
        assert vcs.checkout(work, "origin/main").detached

    def test_checkout_of_an_unknown_ref(self, vcs: Vcs, work: Path) -> None:
        with pytest.raises(UnknownRef):
            vcs.checkout(work, "no-such-branch")

    @pytest.mark.parametrize(
        "ref", ["-b", "--orphan=x", "-", "a..b", "HEAD~1", "main^", "@{-1}", "a b", "", "x:y"]
    )
    def test_checkout_rejects_bad_names(self, vcs: Vcs, work: Path, ref: str) -> None:
        with pytest.raises(InvalidRefName):
            vcs.checkout(work, ref)
        with pytest.raises(InvalidRefName):
            vcs.checkout(work, ref, create=True)
        assert vcs.status(work).branch == "main"

    def test_checkout_never_discards_changes(self, vcs: Vcs, work: Path) -> None:
        (work / "README.md").write_text("precious\n")
        with pytest.raises(DirtyWorkingTree) as caught:
            vcs.checkout(work, "feature")
        assert "README.md" in caught.value.paths
        with pytest.raises(DirtyWorkingTree):
            vcs.checkout(work, "topic", create=True)
        assert (work / "README.md").read_text() == "precious\n"
        assert vcs.status(work).branch == "main"

    def test_checkout_carries_untracked_files_unless_they_are_in_the_way(
        self, vcs: Vcs, work: Path
    ) -> None:
        (work / "scratch.txt").write_text("mine\n")
        assert vcs.checkout(work, "feature").branch == "feature"
        assert (work / "scratch.txt").read_text() == "mine\n"
        vcs.checkout(work, "main")
        (work / "feature.txt").write_text("in the way\n")
        with pytest.raises(DirtyWorkingTree):
            vcs.checkout(work, "feature")
        assert (work / "feature.txt").read_text() == "in the way\n"

    # ------------------------------------------------------------------ diff

    def test_diff_shows_the_working_tree_including_untracked_files(
        self, vcs: Vcs, work: Path
    ) -> None:
        (work / "README.md").write_text("hello\nworld\n")
        (work / "src" / "app.py").unlink()
        (work / "brand_new.py").write_text("x = 1\n")
        (work / "debug.log").write_text("ignored\n")
        index_before = snapshot(work / ".git" / "index")
        diff = vcs.diff(work)
        assert "diff --git a/README.md b/README.md" in diff
        assert "+world" in diff
        assert "deleted file mode" in diff
        assert "diff --git a/brand_new.py b/brand_new.py\nnew file mode" in diff
        assert "+x = 1" in diff
        assert "debug.log" not in diff
        # Read-only: the untracked file is still untracked, the index byte-identical.
        assert vcs.status(work).untracked == ("brand_new.py",)
        assert snapshot(work / ".git" / "index") == index_before

    def test_diff_includes_staged_changes(self, vcs: Vcs, work: Path) -> None:
        (work / "staged.txt").write_text("s\n")
        git(work, "add", "staged.txt")
        assert "+++ b/staged.txt" in vcs.diff(work)

    def test_diff_against_a_base(self, vcs: Vcs, remote: Remote, work: Path) -> None:
        assert vcs.diff(work) == ""
        against_feature = vcs.diff(work, "origin/feature")
        assert "--- a/feature.txt" in against_feature
        assert "deleted file mode" in against_feature
        assert vcs.diff(work, remote.main) == ""
        with pytest.raises(UnknownRef):
            vcs.diff(work, "nope")
        with pytest.raises(InvalidRefName):
            vcs.diff(work, "--output=/tmp/x")

    def test_diff_limited_to_paths_taken_literally(self, vcs: Vcs, work: Path) -> None:
        (work / "README.md").write_text("changed\n")
        (work / "src" / "app.py").write_text("changed\n")
        (work / "src" / "other.py").write_text("new\n")
        only_src = vcs.diff(work, paths=["src"])
        assert "README.md" not in only_src
        assert "src/app.py" in only_src
        assert "src/other.py" in only_src
        assert vcs.diff(work, paths=["*.md"]) == ""  # no globbing
        assert vcs.diff(work, paths=[":(exclude)README.md"]) == ""  # no pathspec magic
        assert vcs.diff(work, paths=["gone.txt"]) == ""

    @pytest.mark.parametrize("path", ["../outside", "/etc/passwd", "src/../../x", ""])
    def test_diff_refuses_paths_outside_the_repository(
        self, vcs: Vcs, work: Path, path: str
    ) -> None:
        with pytest.raises(InvalidPath):
            vcs.diff(work, paths=[path])

    # ------------------------------------------------------------------ commit

    def test_commit_stages_everything(self, vcs: Vcs, remote: Remote, work: Path) -> None:
        (work / "README.md").write_text("changed\n")
        (work / "src" / "app.py").unlink()
        (work / "new.txt").write_text("new\n")
        message = "Fix things\n\n#123 is closed by this\n"
        sha = vcs.commit(work, message, author_name="Ada Lovelace", author_email="ada@example.com")
        status = vcs.status(work)
        assert (status.clean, status.head, status.ahead) == (True, sha, 1)
        assert git(work, "log", "-1", "--format=%an <%ae>") == "Ada Lovelace <ada@example.com>"
        assert git(work, "log", "-1", "--format=%B") == message.strip()
        assert git(work, "show", "--name-status", "--format=", sha).splitlines() == [
            "M\tREADME.md",
            "A\tnew.txt",
            "D\tsrc/app.py",
        ]

    def test_commit_of_given_paths_only(self, vcs: Vcs, work: Path) -> None:
        (work / "README.md").write_text("changed\n")
        (work / "src" / "app.py").unlink()
        (work / "new.txt").write_text("new\n")
        (work / "other.txt").write_text("other\n")
        git(work, "add", "other.txt")  # staged before, but not asked for
        sha = vcs.commit(
            work,
            "Two paths",
            paths=["new.txt", "src/app.py"],
            author_name="A",
            author_email="a@example.com",
        )
        assert sorted(git(work, "show", "--name-only", "--format=", sha).splitlines()) == [
            "new.txt",
            "src/app.py",
        ]
        status = vcs.status(work)
        assert status.modified == ("README.md",)
        assert status.added == ("other.txt",)

    def test_commit_with_nothing_to_commit(self, vcs: Vcs, work: Path) -> None:
        with pytest.raises(NothingToCommit):
            vcs.commit(work, "empty", author_name="A", author_email="a@example.com")
        (work / "README.md").write_text("changed\n")
        with pytest.raises(NothingToCommit):
            vcs.commit(work, "empty", paths=["src"], author_name="A", author_email="a@example.com")

    def test_commit_validates_its_input(self, vcs: Vcs, work: Path) -> None:
        (work / "README.md").write_text("changed\n")
        bad: list[dict[str, Any]] = [
            {"message": "  \n"},
            {"author_name": "Eve <evil@example.com>"},
            {"author_email": "a@example.com\nX: y"},
            {"paths": []},
        ]
        for kwargs in bad:
            good: dict[str, Any] = {"author_name": "A", "author_email": "a@example.com"}
            with pytest.raises(InvalidVcsArgument):
                vcs.commit(work, **({"message": "m"} | good | kwargs))
        with pytest.raises(InvalidPath):
            vcs.commit(work, "m", paths=["../x"], author_name="A", author_email="a@x.org")
        with pytest.raises(InvalidPath):
            vcs.commit(work, "m", paths=["missing.txt"], author_name="A", author_email="a@x.org")
        assert vcs.status(work).modified == ("README.md",)

    def test_commit_into_an_empty_repository(self, vcs: Vcs, tmp_path: Path) -> None:
        git(tmp_path, "init", "-q", "-b", "main", "fresh")
        (tmp_path / "fresh" / "a.txt").write_text("a\n")
        sha = vcs.commit(tmp_path / "fresh", "first", author_name="A", author_email="a@x.org")
        assert vcs.status(tmp_path / "fresh").head == sha

    def test_commit_runs_no_hooks(self, vcs: Vcs, work: Path, tmp_path: Path) -> None:
        marker = tmp_path / "hook-ran"
        hook = work / ".git" / "hooks" / "pre-commit"
        hook.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 1\n")
        hook.chmod(0o755)
        (work / "README.md").write_text("changed\n")
        vcs.commit(work, "m", author_name="A", author_email="a@example.com")
        assert not marker.exists()

    # ------------------------------------------------------------------ worktrees

    def test_worktree_for_a_run(self, vcs: Vcs, remote: Remote, work: Path, tmp_path: Path) -> None:
        branch = run_branch("42")
        assert branch == "codeforge/run-42"
        path = vcs.create_worktree(work, tmp_path / "runs" / "42", branch)
        assert path == str(tmp_path / "runs" / "42")
        status = vcs.status(path)
        assert (status.branch, status.head, status.clean) == (branch, remote.main, True)
        assert [w.branch for w in vcs.worktrees(work)] == ["main", branch]
        # Work in the worktree leaves the main working tree alone.
        (Path(path) / "agent.txt").write_text("agent\n")
        sha = vcs.commit(path, "agent work", author_name="Agent", author_email="a@x.org")
        assert vcs.status(work).clean
        assert vcs.status(work).head == remote.main
        vcs.remove_worktree(work, path)
        assert not Path(path).exists()
        assert [w.branch for w in vcs.worktrees(work)] == ["main"]
        assert {b.name: b.head for b in vcs.branches(work)}[branch] == sha

    def test_worktree_from_a_base(
        self, vcs: Vcs, remote: Remote, work: Path, tmp_path: Path
    ) -> None:
        path = vcs.create_worktree(work, tmp_path / "wt", "codeforge/run-1", base="origin/feature")
        assert vcs.status(path).head == remote.feature

    def test_worktree_creation_failures_leave_nothing(
        self, vcs: Vcs, work: Path, tmp_path: Path
    ) -> None:
        target = tmp_path / "wt"
        with pytest.raises(BranchExists):
            vcs.create_worktree(work, target, "main")
        with pytest.raises(UnknownRef):
            vcs.create_worktree(work, target, "codeforge/run-2", base="nope")
        with pytest.raises(InvalidRefName):
            vcs.create_worktree(work, target, "-x")
        with pytest.raises(InvalidRefName):
            vcs.create_worktree(work, target, "HEAD")
        assert not target.exists()
        assert [b.name for b in vcs.branches(work) if not b.remote] == ["main"]
        target.mkdir()
        (target / "file").write_text("x")
        with pytest.raises(DestinationNotEmpty):
            vcs.create_worktree(work, target, "codeforge/run-3")
        assert len(vcs.worktrees(work)) == 1

    def test_removing_a_dirty_worktree_needs_force(
        self, vcs: Vcs, work: Path, tmp_path: Path
    ) -> None:
        path = vcs.create_worktree(work, tmp_path / "wt", "codeforge/run-5")
        (Path(path) / "README.md").write_text("uncommitted\n")
        with pytest.raises(DirtyWorkingTree):
            vcs.remove_worktree(work, path)
        assert (Path(path) / "README.md").read_text() == "uncommitted\n"
        vcs.remove_worktree(work, path, force=True)
        assert not Path(path).exists()

    def test_removing_a_worktree_whose_folder_is_gone(
        self, vcs: Vcs, work: Path, tmp_path: Path
    ) -> None:
        path = vcs.create_worktree(work, tmp_path / "wt", "codeforge/run-6")
        shutil.rmtree(path)
        vcs.remove_worktree(work, path)
        assert len(vcs.worktrees(work)) == 1
        vcs.remove_worktree(work, path)  # again: nothing to do

    def test_many_worktrees_made_and_removed_at_once(
        self, vcs: Vcs, work: Path, tmp_path: Path
    ) -> None:
        # Fifty runs of one project start together; git alone races on .git/worktrees.
        errors: list[BaseException] = []

        def one(n: int) -> None:
            try:
                path = vcs.create_worktree(work, tmp_path / f"wt{n}", f"codeforge/run-c{n}")
                (Path(path) / "mine.txt").write_text(f"{n}\n")
                if n % 2:
                    vcs.remove_worktree(work, path, force=True)
                else:  # a folder already gone: removal prunes, racing the others' adds
                    shutil.rmtree(path)
                    vcs.remove_worktree(work, path)
            except BaseException as e:  # collected: a thread's failure must fail the test
                errors.append(e)

        threads = [threading.Thread(target=one, args=(n,)) for n in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(vcs.worktrees(work)) == 1

    def test_removing_what_is_not_a_worktree(self, vcs: Vcs, work: Path, tmp_path: Path) -> None:
        (tmp_path / "plain").mkdir()
        with pytest.raises(NotAGitRepository):
            vcs.remove_worktree(work, tmp_path / "plain")
        with pytest.raises(InvalidVcsArgument):
            vcs.remove_worktree(work, work)
        assert vcs.status(work).clean

    # ------------------------------------------------------------------ snapshots

    def test_a_snapshot_lists_what_differs_from_base_without_touching_the_index(
        self, vcs: Vcs, work: Path, remote: Remote, tmp_path: Path
    ) -> None:
        index_before = snapshot(work / ".git" / "index")
        (work / "README.md").write_text("changed\n")
        (work / "src" / "app.py").unlink()
        (work / "new.txt").write_text("new\n")
        (work / "debug.log").write_text("ignored\n")
        (work / "link").symlink_to("/etc/passwd")
        scratch = tmp_path / "scratch.index"
        entries = vcs.snapshot(work, remote.main, index_file=scratch)
        assert [(e.path, e.mode, e.blob is None) for e in entries] == [
            ("README.md", 0o100644, False),
            ("link", 0o120000, False),
            ("new.txt", 0o100644, False),
            ("src/app.py", 0, True),
        ]
        contents = vcs.read_objects(work, [e.blob for e in entries if e.blob])
        assert sorted(contents.values()) == [b"/etc/passwd", b"changed\n", b"new\n"]
        assert snapshot(work / ".git" / "index") == index_before
        assert vcs.status(work).untracked == ("link", "new.txt")

    def test_a_snapshot_of_named_paths_restages_only_those(
        self, vcs: Vcs, work: Path, remote: Remote, tmp_path: Path
    ) -> None:
        scratch = tmp_path / "scratch.index"
        assert vcs.snapshot(work, remote.main, index_file=scratch) == []
        (work / "a.txt").write_text("a\n")
        (work / "b.txt").write_text("b\n")
        assert [
            e.path for e in vcs.snapshot(work, remote.main, index_file=scratch, paths=["a.txt"])
        ] == ["a.txt"]
        (work / "a.txt").unlink()
        assert vcs.snapshot(work, remote.main, index_file=scratch, paths=["a.txt"]) == []
        assert [e.path for e in vcs.snapshot(work, remote.main, index_file=scratch)] == ["b.txt"]

    def test_read_objects_resolves_commit_paths_and_skips_what_is_missing(
        self, vcs: Vcs, work: Path, remote: Remote
    ) -> None:
        found = vcs.read_objects(
            work, [f"{remote.main}:src/app.py", f"{remote.main}:nope", "0" * 40]
        )
        assert found == {f"{remote.main}:src/app.py": b"print('hi')\n"}
        with pytest.raises(InvalidVcsArgument):
            vcs.read_objects(work, ["HEAD:a\nb"])

    def test_fetch_branch_copies_a_branch_without_touching_the_work_tree(
        self, vcs: Vcs, work: Path, remote: Remote, tmp_path: Path
    ) -> None:
        (remote.seed / "local-change.txt").write_text("user's uncommitted work\n")
        head_before = git(remote.seed, "rev-parse", "HEAD")
        git(work, "switch", "-q", "-c", "codeforge/run-1")
        sha = commit_file(work, "agent.txt", "done\n")
        git(work, "switch", "-q", "main")
        assert vcs.fetch_branch(remote.seed, work, "codeforge/run-1") == sha
        assert git(remote.seed, "rev-parse", "codeforge/run-1") == sha
        assert git(remote.seed, "rev-parse", "HEAD") == head_before
        assert (remote.seed / "local-change.txt").exists()
        assert not (remote.seed / "agent.txt").exists()
        with pytest.raises(BranchExists):
            vcs.fetch_branch(remote.seed, work, "main")
        with pytest.raises(UnknownRef):
            vcs.fetch_branch(remote.seed, work, "no-such-branch")

    # ------------------------------------------------------------------ push

    def _branch(self, work: Path, name: str, content: str = "agent work\n") -> str:
        git(work, "switch", "-q", "-c", name)
        return commit_file(work, "agent.txt", content)

    def test_push_creates_the_branch_on_the_remote_and_again_is_up_to_date(
        self, vcs: Vcs, work: Path, remote: Remote
    ) -> None:
        sha = self._branch(work, "codeforge/run-1")
        git(work, "switch", "-q", "main")  # pushing does not need the branch checked out

        first = vcs.push(work, "codeforge/run-1")
        again = vcs.push(work, "codeforge/run-1")

        assert (first.branch, first.commit, first.created, first.up_to_date) == (
            "codeforge/run-1",
            sha,
            True,
            False,
        )
        assert first.remote == str(remote.bare)
        assert (again.created, again.up_to_date) == (False, True)
        assert git(remote.bare, "rev-parse", "refs/heads/codeforge/run-1") == sha
        assert git(remote.bare, "rev-parse", "refs/heads/main") == remote.main

    def test_push_never_forces_over_a_branch_that_moved_on_the_remote(
        self, vcs: Vcs, work: Path, remote: Remote
    ) -> None:
        git(remote.seed, "switch", "-q", "-c", "shared")
        theirs = commit_file(remote.seed, "theirs.txt", "theirs\n")
        git(remote.seed, "push", "-q", "origin", "shared")
        self._branch(work, "shared", "mine\n")

        with pytest.raises(PushRejected) as caught:
            vcs.push(work, "shared")

        assert isinstance(caught.value, Conflict)
        assert "other commits" in str(caught.value)
        assert git(remote.bare, "rev-parse", "refs/heads/shared") == theirs

    def test_a_remote_pre_receive_hook_that_refuses_is_push_rejected_in_its_words(
        self, vcs: Vcs, work: Path, remote: Remote
    ) -> None:
        hook = remote.bare / "hooks" / "pre-receive"
        hook.write_text(
            "#!/bin/sh\necho 'GL-HOOK-ERR: You are not allowed to push here' >&2\nexit 1\n"
        )
        hook.chmod(0o755)
        self._branch(work, "codeforge/run-2")

        with pytest.raises(PushRejected) as caught:
            vcs.push(work, "codeforge/run-2")

        assert "pre-receive hook declined" in caught.value.reason
        assert "You are not allowed to push here" in caught.value.reason
        assert "You are not allowed to push here" in str(caught.value)
        assert "codeforge/run-2" not in git(remote.bare, "branch", "--list")

    def test_push_refuses_what_it_cannot_push(
        self, vcs: Vcs, work: Path, remote: Remote, tmp_path: Path
    ) -> None:
        with pytest.raises(UnknownRef):
            vcs.push(work, "no-such-branch")
        with pytest.raises(InvalidRefName):
            vcs.push(work, "--force")
        self._branch(work, "topic")
        with pytest.raises(NoUpstream):
            vcs.push(work, "topic", remote="upstream")
        with pytest.raises(InvalidVcsArgument):
            vcs.push(work, "topic", remote="-oops")
        git(work, "remote", "set-url", "origin", "ext::sh -c touch% /tmp/pwned")
        with pytest.raises(UnsafeSource):
            vcs.push(work, "topic")
        git(work, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
        with pytest.raises(RemoteNotFound):
            vcs.push(work, "topic")

    def test_push_over_https_sends_the_token_as_a_header_and_never_on_a_command_line(
        self, vcs: Vcs, tmp_path: Path
    ) -> None:
        argv_log = tmp_path / "argv.log"
        wrapper = tmp_path / "git-wrapper"
        wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {argv_log}\nexec git "$@"\n')
        wrapper.chmod(0o755)
        from adapters.git import LocalGit

        logged = LocalGit(git=str(wrapper))
        with ScriptedGitHost("gitea", tmp_path / "host") as host:
            host.create_repository("acme/app")
            work = tmp_path / "w"
            logged.clone(host.clone_url("acme/app"), work)
            sha = self._branch(work, "codeforge/run-3")

            pushed = logged.push(
                work, "codeforge/run-3", credentials=PushCredentials("oauth2", host.token)
            )

            assert pushed.commit == sha
            assert host.branches("acme/app")["codeforge/run-3"] == sha
            pushes = [r for r in host.git_requests if "receive-pack" in r.path + str(r.query)]
            assert pushes
            assert all(r.headers["Authorization"].startswith("Basic ") for r in pushes)
        assert "push" in argv_log.read_text()
        assert host.token not in argv_log.read_text()
        assert host.token not in repr(PushCredentials("oauth2", host.token))

    def test_push_over_http_without_credentials_says_the_remote_wants_them(
        self, vcs: Vcs, tmp_path: Path
    ) -> None:
        with ScriptedGitHost("github", tmp_path / "host") as host:
            host.create_repository("acme/app")
            work = tmp_path / "w"
            vcs.clone(host.clone_url("acme/app"), work)
            self._branch(work, "topic")

            with pytest.raises(PushAuthFailed, match="wants credentials"):
                vcs.push(work, "topic")
            assert "topic" not in host.branches("acme/app")

    def test_a_refused_token_is_push_auth_failed_never_shown_and_no_helper_is_asked(
        self, vcs: Vcs, tmp_path: Path
    ) -> None:
        asked = tmp_path / "helper-was-asked"
        helper = tmp_path / "helper"
        helper.write_text(f"#!/bin/sh\ntouch {asked}\necho username=someone\necho password=other\n")
        helper.chmod(0o755)
        wrong = "wrong-token-Qz81vX"
        with ScriptedGitHost("gitlab", tmp_path / "host") as host:
            host.create_repository("acme/app")
            work = tmp_path / "w"
            vcs.clone(host.clone_url("acme/app"), work)
            git(work, "config", "credential.helper", str(helper))
            self._branch(work, "topic")

            with pytest.raises(PushAuthFailed) as caught:
                vcs.push(work, "topic", credentials=PushCredentials("oauth2", wrong))

        message = str(caught.value)
        assert "token was refused" in message
        assert wrong not in message
        assert not asked.exists(), "a credential helper must not be asked once a token is given"

    def test_a_protected_branch_on_an_http_host_is_push_rejected(
        self, vcs: Vcs, tmp_path: Path
    ) -> None:
        with ScriptedGitHost("github", tmp_path / "host") as host:
            host.create_repository("acme/app")
            host.protect("acme/app", "GH006: Protected branch update failed for refs/heads/topic.")
            work = tmp_path / "w"
            vcs.clone(host.clone_url("acme/app"), work)
            self._branch(work, "topic")

            with pytest.raises(PushRejected, match="GH006: Protected branch update failed"):
                vcs.push(work, "topic", credentials=PushCredentials("x-access-token", host.token))

    def test_kind_tells_working_trees_from_bare_repositories(
        self, vcs: Vcs, work: Path, remote: Remote, tmp_path: Path
    ) -> None:
        assert vcs.kind(work) == "worktree"
        assert vcs.kind(remote.bare) == "bare"
        assert vcs.kind(tmp_path) is None
        assert vcs.kind(tmp_path / "missing") is None
        assert vcs.kind(work / "src") is None


class TestLocalGit(VcsContract):
    @pytest.fixture
    def vcs(self) -> Vcs:
        from adapters.git import LocalGit

        return LocalGit()

    def test_the_callers_git_environment_does_not_redirect_calls(
        self, vcs: Vcs, work: Path, remote: Remote, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A server started from a git hook inherits GIT_DIR; every call would then act on
        # that repository instead of the one it was given.
        monkeypatch.setenv("GIT_DIR", str(remote.seed / ".git"))
        monkeypatch.setenv("GIT_INDEX_FILE", "/nonexistent/index")
        monkeypatch.setenv("GIT_WORK_TREE", str(remote.seed))
        (work / "mine.txt").write_text("x")
        assert vcs.status(work).untracked == ("mine.txt",)

    def test_a_repository_fsmonitor_command_never_runs(
        self, vcs: Vcs, work: Path, tmp_path: Path
    ) -> None:
        marker = tmp_path / "fsmonitor-ran"
        git(work, "config", "core.fsmonitor", f"touch {marker}; false")
        (work / "README.md").write_text("changed\n")
        assert vcs.status(work).modified == ("README.md",)
        vcs.diff(work)
        assert not marker.exists()
