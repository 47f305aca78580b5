"""`LocalGit`: the `Vcs` port over the system git, one subprocess per step.

Why plain `git` subprocesses rather than GitPython's object model: every call here must
(a) run with a sanitised, non-interactive environment, (b) be killable as a whole process
group when the caller cancels (git clone spawns ssh / git-remote-https / index-pack),
(c) report progress while it runs, and (d) turn git's stderr into one-line errors. One
small runner (`_Runner.run`) does all four for every command; GitPython's `Repo` would
add a second, partial way of doing each of them.

Hardening applied to every command (see `_Runner`):
- no prompts: GIT_TERMINAL_PROMPT=0, an empty GIT_ASKPASS, ssh in BatchMode;
- no repository-local configuration can run code: hooks point at /dev/null, fsmonitor
  is off, `ext::` is refused by git as well as by us, diffs use no external drivers;
- user input never reaches a shell, never lands where git would read an option ("-x"
  is refused, `--` separates paths), and pathspecs are literal (no globs, no magic);
- the caller's GIT_DIR / GIT_WORK_TREE / GIT_INDEX_FILE and the like are dropped, so a
  server started from inside a git hook cannot point every call at the wrong repository.

What git stages on our behalf (`diff`, `commit`, `snapshot`: all `add -A`) also leaves
out generated files that no change should carry even where a repository forgot to
ignore them — bytecode, tool caches, `node_modules` (`GENERATED_FILES`): an agent that
ran the tests must not deliver `__pycache__`. Diffs are `--binary`, so a patch with a
binary file still applies.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import ParamSpec, TypeVar
from urllib.parse import urlsplit

from codeforge.ports.vcs import (
    AnyPath,
    BranchExists,
    BranchInfo,
    CancelToken,
    CloneFailed,
    DestinationNotEmpty,
    DirtyWorkingTree,
    DivergedBranch,
    GitOperationFailed,
    InvalidPath,
    InvalidRefName,
    InvalidVcsArgument,
    NotAGitRepository,
    NothingToCommit,
    NoUpstream,
    OperationCancelled,
    ProgressCallback,
    PullResult,
    RepoInfo,
    RepositoryNotFound,
    RepoStatus,
    SnapshotEntry,
    UnknownRef,
    UnsafeSource,
    WorktreeInfo,
)

DEFAULT_SSH_COMMAND = "ssh -o BatchMode=yes -o ConnectTimeout=30"

# Settings for every git command. Command-line `-c` beats any repository's config, which
# matters because an agent can write to the repository it works on.
_HARDENING = (
    "-c", "core.hooksPath=/dev/null",  # hooks are code from the repository: never run them
    "-c", "core.fsmonitor=false",  # a configured fsmonitor is a command git would run
    "-c", "protocol.ext.allow=never",  # `ext::` runs arbitrary commands
    "-c", "core.quotePath=false",  # paths come back as UTF-8, not octal escapes
    "-c", "color.ui=false",
    "-c", "commit.gpgSign=false",  # a signing key would prompt for a passphrase
    "-c", "tag.gpgSign=false",
    "-c", "advice.detachedHead=false",
)  # fmt: skip

# Repository-local variables to drop from the inherited environment, if `git rev-parse
# --local-env-vars` cannot tell us (it is asked once per process).
_FALLBACK_LOCAL_ENV = (
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT", "GIT_OBJECT_DIRECTORY", "GIT_DIR", "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE", "GIT_GRAFT_FILE", "GIT_INDEX_FILE", "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE", "GIT_PREFIX", "GIT_INTERNAL_SUPER_PREFIX", "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
)  # fmt: skip
_ALSO_DROPPED = ("GIT_CEILING_DIRECTORIES", "GIT_NAMESPACE", "GIT_LITERAL_PATHSPECS")

_ALLOWED_SCHEMES = {"https", "http", "ssh", "git", "file", "git+ssh", "ssh+git"}
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
# `<transport>::<address>` makes git run `git-remote-<transport>`; `ext::` runs a command.
_REMOTE_HELPER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
# git's rule for scp-like addresses: a colon before any slash ("host:path", "u@host:path").
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>\[[^\]/]+\]|[^:/]+):")
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@]+)@")
# "Receiving objects:  45% (45/100), 1.2 MiB | ..." and "remote: Enumerating objects: 5, done."
_PROGRESS = re.compile(
    r"^(?:remote:\s*)?(?P<stage>[A-Z][A-Za-z ]*[a-z]):\s+(?:(?P<pct>\d{1,3})%|\d)"
)
# A full object id (SHA-1 or SHA-256): a plain name, never revision syntax.
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_REVISION_SYNTAX = re.compile(r"@\{|[~^:?*\[\\\s]|\.\.")
_WOULD_BE_OVERWRITTEN = "would be overwritten by"

_STDERR_KEEP = 256 * 1024  # bytes of stderr kept for error messages
_POLL = 0.1  # seconds between checks of the cancel token and the deadline
_TERM_GRACE = 2.0  # seconds git gets after SIGTERM to remove its lock files


def redact(text: str) -> str:
    """Remove credentials from URLs in `text`.

    `user:password@` goes from every URL; a bare `user@` too for http(s), where it is
    usually a token ("https://ghp_xxx@github.com"), but stays for ssh ("ssh://git@host").
    """

    def strip(m: re.Match[str]) -> str:
        scheme, userinfo = m["scheme"], m["userinfo"]
        if ":" in userinfo or scheme.lower().startswith("http"):
            return scheme
        return m[0]

    return _USERINFO.sub(strip, text)


def one_line(text: str, limit: int = 600) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


_NOISE = (
    "Cloning into",
    "hint:",
    "Please make sure you have the correct access rights",
    "and the repository exists.",
)
_TELLING = ("fatal:", "error:", "ssh:", "remote: error", "remote: fatal")
_SSH_FAILURE = re.compile(r"Permission denied|Host key verification failed|kex_exchange")


def summarise(stderr: str) -> str:
    """git's complaint in one line: its fatal/error lines, else its last words."""
    lines = [ln.strip() for ln in re.split(r"[\r\n]+", stderr)]
    lines = [ln for ln in lines if ln and not _PROGRESS.match(ln)]
    lines = [ln for ln in lines if not ln.startswith(_NOISE)]
    # ssh's own complaint ("ssh: connect to host ...: Connection refused", "Permission
    # denied (publickey)") comes before git's generic "Could not read from remote".
    wanted = [ln for ln in lines if ln.lower().startswith(_TELLING) or _SSH_FAILURE.search(ln)]
    picked = wanted or lines[-3:]
    text = "; ".join(re.sub(r"^(?:fatal|error):\s*", "", ln, flags=re.IGNORECASE) for ln in picked)
    return redact(one_line(text or "git failed without a message"))


def _hint(stderr: str) -> str:
    """A next step for the failures operators meet most."""
    low = stderr.lower()
    if "terminal prompts disabled" in low or "could not read username" in low:
        return (
            " (the server wants credentials and CodeForge never prompts: configure a"
            " credential helper or use an SSH key)"
        )
    if "host key verification failed" in low:
        return " (add the server's host key to the known_hosts of the user running CodeForge)"
    if "permission denied (publickey" in low:
        return " (the SSH key of the user running CodeForge is not accepted by the server)"
    return ""


class _GitFailed(Exception):
    """A git command exited non-zero; translated into a port error by the caller."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"git {' '.join(args[:2])} exited {returncode}")
        self.args_ = tuple(args)
        self.returncode = returncode
        self.stderr = stderr

    @property
    def summary(self) -> str:
        return summarise(self.stderr) + _hint(self.stderr)

    def as_port_error(self, doing: str) -> GitOperationFailed:
        return GitOperationFailed(f"{doing} failed: {self.summary}")


@functools.lru_cache(maxsize=1)
def _local_env_vars(git: str) -> tuple[str, ...]:
    try:
        out = subprocess.run(
            [git, "rev-parse", "--local-env-vars"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
            cwd="/",
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        out = []
    return tuple(out or _FALLBACK_LOCAL_ENV)


class _Runner:
    """Runs one git command: sanitised environment, own process group, progress, cancel."""

    def __init__(
        self,
        git: str,
        ssh_command: str,
        committer: tuple[str, str],
        low_speed: tuple[int, int],
    ) -> None:
        self.git = git
        self.ssh_command = ssh_command
        self.committer = committer
        self.low_speed = low_speed

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        # Built per call from os.environ so proxies and credential settings the operator
        # changes (or a test sets) are seen; only the repository-pointing ones are dropped.
        dropped = set(_local_env_vars(self.git)) | set(_ALSO_DROPPED)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in dropped and not k.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
        }
        env.update(
            GIT_TERMINAL_PROMPT="0",
            # Empty, not unset: git then skips core.askPass and SSH_ASKPASS as well.
            GIT_ASKPASS="",
            SSH_ASKPASS="",
            GCM_INTERACTIVE="never",
            GIT_SSH_COMMAND=self.ssh_command,
            GIT_EDITOR="true",
            GIT_SEQUENCE_EDITOR="true",
            GIT_MERGE_AUTOEDIT="no",
            GIT_PAGER="cat",
            # Reads must not take locks or rewrite the index someone else may be using.
            GIT_OPTIONAL_LOCKS="0",
            # A stalled transfer fails instead of hanging a worker thread forever.
            GIT_HTTP_LOW_SPEED_LIMIT=str(self.low_speed[0]),
            GIT_HTTP_LOW_SPEED_TIME=str(self.low_speed[1]),
            # Messages are parsed (progress, "would be overwritten"), so they must be English.
            LC_ALL="C",
            LANGUAGE="C",
            # The committer identity is ours: CI machines and containers have none, and
            # reflog entries want one too.
            GIT_COMMITTER_NAME=self.committer[0],
            GIT_COMMITTER_EMAIL=self.committer[1],
        )
        env.update(extra or {})
        return env

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None,
        cancel: CancelToken | None = None,
        progress: ProgressCallback | None = None,
        check: bool = True,
        stdin: Path | None = None,
    ) -> tuple[int, bytes, str]:
        """Run `git <args>`; return (returncode, stdout, stderr).

        Raises `_GitFailed` on a non-zero exit when `check`, `OperationCancelled` when
        `cancel` is set, `GitOperationFailed` past `timeout`. Whatever happens, the
        process group is gone when this returns.
        """
        argv = [self.git, *_HARDENING, *args]
        try:
            with contextlib.ExitStack() as files:
                source = files.enter_context(stdin.open("rb")) if stdin else subprocess.DEVNULL
                proc = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=self.env(env),
                    stdin=source,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    # Its own process group, so a cancel reaches ssh, git-remote-https and
                    # index-pack too, not only the git that started them.
                    start_new_session=True,
                )
        except OSError as e:
            raise GitOperationFailed(f"cannot run {self.git!r}: {e}") from e
        deadline = None if timeout is None else time.monotonic() + timeout
        out = bytearray()
        err = bytearray()
        partial = b""
        assert proc.stdout is not None
        assert proc.stderr is not None
        streams = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    raise OperationCancelled(f"git {args[0]} was cancelled")
                if deadline is not None and time.monotonic() > deadline:
                    raise GitOperationFailed(f"git {args[0]} timed out after {timeout:g} s")
                if not streams:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(_POLL)
                    if proc.returncode is not None:
                        break
                    continue
                ready, _, _ = select.select(list(streams), [], [], _POLL)
                for fd in ready:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        del streams[fd]
                        continue
                    buf = streams[fd]
                    buf += chunk
                    if buf is err:
                        if len(err) > 2 * _STDERR_KEEP:
                            del err[:-_STDERR_KEEP]
                        if progress is not None:
                            partial = self._report(partial + chunk, progress)
        except BaseException:
            self._stop(proc)
            raise
        finally:
            proc.stdout.close()
            proc.stderr.close()
        stderr = err.decode("utf-8", errors="replace")
        if check and proc.returncode != 0:
            raise _GitFailed(args, proc.returncode, stderr)
        return proc.returncode, bytes(out), stderr

    @staticmethod
    def _report(data: bytes, progress: ProgressCallback) -> bytes:
        """Feed complete progress lines (git ends them with \\r or \\n) to `progress`."""
        *lines, rest = re.split(rb"[\r\n]", data)
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").strip()
            m = _PROGRESS.match(line)
            if m:
                pct = float(m["pct"]) if m["pct"] is not None else None
                progress(m["stage"], pct, redact(line))
        return rest

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM first (git then removes its lock files), SIGKILL if it lingers.

        The whole group is signalled: ssh, git-remote-https and index-pack with git.
        Only while git is unreaped: then its pid, and so the group id, cannot have
        been reused by another process group.
        """
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + _TERM_GRACE
        while time.monotonic() < deadline:
            # WNOWAIT: see git exit without reaping it, so the group id stays ours for
            # the sweep below.
            try:
                exited = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                break
            if exited is not None:
                break
            time.sleep(0.02)
        # Whatever is left of the group (git past its grace, or a helper that ignored
        # SIGTERM) goes now.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


P = ParamSpec("P")
R = TypeVar("R")


def _translated(method: Callable[P, R]) -> Callable[P, R]:
    """Safety net: a git failure a method did not translate itself still leaves as a
    port error, never as this module's private `_GitFailed`."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except _GitFailed as e:
            raise e.as_port_error(f"git {e.args_[0]}") from e

    return wrapper


@functools.lru_cache(maxsize=1024)
@functools.lru_cache(maxsize=1024)
def _valid_branch_name(git: str, name: str) -> bool:
    # Outside any repository (cwd=/), so "@{-1}" could not expand even if it got here.
    try:
        result = subprocess.run(
            [git, "check-ref-format", "--branch", name],
            capture_output=True,
            cwd="/",
            timeout=10,
            check=False,
            env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1"},
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise GitOperationFailed(f"cannot run {git!r} to check a ref name: {e}") from e
    return result.returncode == 0


GENERATED_FILES = (
    "__pycache__/", "*.py[cod]", ".pytest_cache/", ".mypy_cache/", ".ruff_cache/",
    ".hypothesis/", ".tox/", ".nox/", "node_modules/", ".coverage", "*.egg-info/",
)  # fmt: skip


@functools.lru_cache(maxsize=8)
def _excludes_file(patterns: tuple[str, ...]) -> str:
    """A git excludes file holding `patterns` (one per set of patterns per process)."""
    handle, name = tempfile.mkstemp(prefix="codeforge-excludes-", suffix=".gitignore")
    with os.fdopen(handle, "w", encoding="utf-8") as f:
        f.write("".join(f"{p}\n" for p in patterns))
    atexit.register(os.unlink, name)
    return name


class LocalGit:
    """`Vcs` over the system git (>= 2.36). Synchronous: see `codeforge.ports.vcs`.

    `ssh_command` becomes GIT_SSH_COMMAND; keep it non-interactive (BatchMode=yes).
    `committer_*` is the committer of every commit (authors are given per commit).
    Network operations (clone, fetch, pull) end after `network_timeout` seconds and when
    a transfer stays below `low_speed_limit` bytes/s for `low_speed_time` seconds (http);
    local ones after `local_timeout`.
    """

    def __init__(
        self,
        *,
        git: str = "git",
        generated_files: Sequence[str] = GENERATED_FILES,
        ssh_command: str = DEFAULT_SSH_COMMAND,
        committer_name: str = "CodeForge",
        committer_email: str = "codeforge@localhost",
        network_timeout: float | None = 3600.0,
        local_timeout: float | None = 300.0,
        low_speed_limit: int = 1000,
        low_speed_time: int = 60,
    ) -> None:
        _check_identity(committer_name, committer_email)
        self._git_bin = git
        self._runner = _Runner(
            git, ssh_command, (committer_name, committer_email), (low_speed_limit, low_speed_time)
        )
        self._network_timeout = network_timeout
        self._local_timeout = local_timeout
        self._excludes = _excludes_file(tuple(generated_files))
        self._kinds: dict[tuple[str, int, int], str] = {}

    # ------------------------------------------------------------------ repository

    def is_repository(self, path: AnyPath) -> bool:
        try:
            return self._probe(_abs(path)) in {"worktree", "bare"}
        except (OSError, GitOperationFailed):
            return False

    @_translated
    def clone(
        self,
        source: str,
        dest: AnyPath,
        *,
        branch: str | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> RepoInfo:
        target = self._clone_source(source)
        if branch is not None:
            self._check_ref(branch, branch=True)
        if isinstance(target, Path):
            if not target.exists():
                raise RepositoryNotFound(f"{target} does not exist")
            if self._probe(target) is None:
                raise NotAGitRepository(f"{target} is not a git repository")
        dest_path = _abs(dest)
        existed = _check_empty_destination(dest_path)
        shown = redact(source)
        if progress is not None:
            progress("Starting", None, f"Cloning {shown}")
        args = ["clone", "--progress", "--no-recurse-submodules"]
        if branch is not None:
            args += ["--branch", branch]
        args += ["--", str(target), str(dest_path)]
        try:
            try:
                self._runner.run(
                    args, timeout=self._network_timeout, cancel=cancel, progress=progress
                )
            except _GitFailed as e:
                if branch is not None and re.search(r"Remote branch .* not found", e.stderr):
                    raise UnknownRef(f"{shown} has no branch or tag {branch!r}") from e
                raise CloneFailed(f"could not clone {shown}: {e.summary}") from e
            info = self._repo_info(dest_path)
            if cancel is not None and cancel.is_set():
                # Cancelled as git finished: the caller gave up on this clone, so it must
                # not find one left behind.
                raise OperationCancelled("git clone was cancelled")
        except BaseException:
            # Cancelled, failed, timed out or interrupted: never leave a half-made clone.
            _restore_destination(dest_path, existed)
            raise
        if progress is not None:
            progress("Done", 100.0, f"Cloned {shown} into {dest_path}")
        return info

    @_translated
    def status(self, repo: AnyPath) -> RepoStatus:
        root = self._open(repo)
        out = self._out(
            root,
            "status", "--porcelain=v2", "-z", "--branch", "--untracked-files=all",
            "--no-renames", "--ignore-submodules=none",
        )  # fmt: skip
        return _parse_status(out)

    # ------------------------------------------------------------------ remotes

    @_translated
    def fetch(
        self,
        repo: AnyPath,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        root = self._open(repo)
        if not self._out(root, "remote").split():
            raise NoUpstream(f"{root} has no remote to fetch from")
        if progress is not None:
            progress("Starting", None, "Fetching")
        try:
            self._runner.run(
                ["fetch", "--prune", "--progress", "--no-recurse-submodules"],
                cwd=root,
                timeout=self._network_timeout,
                cancel=cancel,
                progress=progress,
            )
        except _GitFailed as e:
            raise e.as_port_error("fetch") from e
        if progress is not None:
            progress("Done", 100.0, "Fetched")

    @_translated
    def pull(
        self,
        repo: AnyPath,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> PullResult:
        root = self._open(repo)
        branch = self._current_branch(root)
        if branch is None:
            raise NoUpstream(f"HEAD is detached in {root}: there is no branch to pull into")
        upstream = self._upstream(root, branch)
        if upstream is None:
            raise NoUpstream(f"branch {branch!r} has no upstream to pull from")
        self.fetch(root, progress=progress, cancel=cancel)
        target = self._resolve(root, "@{upstream}")
        if target is None:
            raise NoUpstream(f"the upstream {upstream} of {branch!r} no longer exists")
        before = self._resolve(root, "HEAD")
        if before is None:
            ahead, behind = 0, int(self._out(root, "rev-list", "--count", target).strip())
        else:
            left_right = self._out(root, "rev-list", "--left-right", "--count", f"HEAD...{target}")
            ahead, behind = (int(n) for n in left_right.split())
        if behind == 0:
            return PullResult(upstream=upstream, before=before, after=before, commits=0)
        if ahead:
            raise DivergedBranch(
                f"{branch!r} and {upstream} have diverged ({ahead} local and {behind} upstream"
                " commits): a fast-forward is impossible; rebase or merge first",
                ahead=ahead,
                behind=behind,
            )
        try:
            self._git(root, "merge", "--ff-only", "--no-edit", "--no-stat", target)
        except _GitFailed as e:
            if _WOULD_BE_OVERWRITTEN in e.stderr:
                paths = _listed_paths(e.stderr)
                raise DirtyWorkingTree(
                    f"pulling {upstream} would overwrite local changes to "
                    f"{', '.join(paths) or 'some files'}; commit or discard them first",
                    paths=paths,
                ) from e
            raise e.as_port_error(f"fast-forward to {upstream}") from e
        after = self._resolve(root, "HEAD") or target
        return PullResult(upstream=upstream, before=before, after=after, commits=behind)

    # ------------------------------------------------------------------ branches

    @_translated
    def branches(self, repo: AnyPath) -> list[BranchInfo]:
        root = self._open(repo, worktree=False)
        fmt = "%(refname)%00%(objectname)%00%(HEAD)%00%(upstream)%00%(symref)"
        out = self._out(root, "for-each-ref", f"--format={fmt}", "refs/heads", "refs/remotes")
        found: list[BranchInfo] = []
        for line in out.splitlines():
            ref, sha, head, upstream, symref = line.split("\0")
            if symref:  # refs/remotes/origin/HEAD points at a branch listed anyway
                continue
            remote = ref.startswith("refs/remotes/")
            found.append(
                BranchInfo(
                    name=_short(ref),
                    ref=ref,
                    head=sha,
                    remote=remote,
                    current=head == "*",
                    upstream=_short(upstream) if upstream else None,
                )
            )
        return sorted(found, key=lambda b: (b.remote, b.name))

    @_translated
    def checkout(self, repo: AnyPath, ref: str, *, create: bool = False) -> RepoStatus:
        root = self._open(repo)
        self._check_ref(ref, branch=create)
        current = self.status(root)
        if current.has_tracked_changes:
            changed = sorted(
                {*current.modified, *current.added, *current.deleted, *current.conflicted}
            )
            raise DirtyWorkingTree(
                f"{root} has uncommitted changes ({', '.join(changed[:10])}); commit or"
                f" discard them before switching to {ref!r}",
                paths=changed,
            )
        if create:
            if self._branch_exists(root, ref):
                raise BranchExists(f"branch {ref!r} already exists")
            args = ["switch", "--no-track", "-c", ref]
        elif self._branch_exists(root, ref):
            args = ["switch", "--no-guess", ref]
        else:
            sha = self._resolve(root, ref)
            if sha is not None:
                args = ["switch", "--detach", sha]
            else:
                matches = self._out(
                    root, "for-each-ref", "--format=%(refname)", f"refs/remotes/*/{ref}"
                ).split()
                if len(matches) > 1:
                    names = ", ".join(_short(m) for m in matches)
                    raise UnknownRef(f"{ref!r} matches several remote branches ({names})")
                if not matches:
                    raise UnknownRef(f"no branch, tag or commit {ref!r} in {root}")
                args = ["switch", "-c", ref, "--track", _short(matches[0])]
        try:
            self._git(root, *args)
        except _GitFailed as e:
            if _WOULD_BE_OVERWRITTEN in e.stderr:
                paths = _listed_paths(e.stderr)
                raise DirtyWorkingTree(
                    f"switching to {ref!r} would overwrite {', '.join(paths) or 'local files'}",
                    paths=paths,
                ) from e
            raise e.as_port_error(f"checkout of {ref!r}") from e
        return self.status(root)

    # ------------------------------------------------------------------ changes

    @_translated
    def diff(
        self, repo: AnyPath, base: str | None = None, *, paths: Sequence[str] | None = None
    ) -> str:
        root = self._open(repo)
        base_sha = None
        if base is not None:
            self._check_ref(base, branch=False)
            base_sha = self._resolve(root, base)
            if base_sha is None:
                raise UnknownRef(f"no branch, tag or commit {base!r} in {root}")
        pathspec = self._pathspec(root, paths)
        # A scratch copy of the index: `add -A` into it makes untracked files show as new
        # files, and the repository's own index (maybe someone's staging) stays as it was.
        index = root / self._out(root, "rev-parse", "--git-path", "index").strip()
        with tempfile.TemporaryDirectory(prefix="codeforge-diff-") as scratch:
            scratch_index = Path(scratch) / "index"
            if index.is_file():
                shutil.copyfile(index, scratch_index)
            env = {"GIT_INDEX_FILE": str(scratch_index)}
            self._stage(root, env=env)
            args = [
                "diff", "--cached", "--binary", "--no-color", "--no-ext-diff", "--no-textconv",
                "--find-renames", "--src-prefix=a/", "--dst-prefix=b/",
            ]  # fmt: skip
            if base_sha is not None:
                args.append(base_sha)
            args += ["--", *pathspec]
            _, out, _ = self._runner.run(
                args, cwd=root, env=env | _LITERAL, timeout=self._local_timeout
            )
        return out.decode("utf-8", errors="replace")

    @_translated
    def commit(
        self,
        repo: AnyPath,
        message: str,
        *,
        paths: Sequence[str] | None = None,
        author_name: str,
        author_email: str,
    ) -> str:
        root = self._open(repo)
        if not message.strip() or "\0" in message:
            raise InvalidVcsArgument("the commit message is empty")
        _check_identity(author_name, author_email)
        if paths is not None and not paths:
            raise InvalidVcsArgument("paths is empty: pass None to commit every change")
        pathspec = self._pathspec(root, paths)
        try:
            self._stage(root, "--", *pathspec, env=_LITERAL)
        except _GitFailed as e:
            if "did not match any files" in e.stderr:
                raise InvalidPath(f"no file matches: {e.summary}") from e
            raise e.as_port_error("staging") from e
        code, _, _ = self._runner.run(
            ["diff", "--cached", "--quiet", "--", *pathspec],
            cwd=root,
            env=_LITERAL,
            timeout=self._local_timeout,
            check=False,
        )
        if code == 0:
            where = f" in {', '.join(pathspec)}" if pathspec else ""
            raise NothingToCommit(f"nothing to commit{where}: the working tree matches HEAD")
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".msg") as f:
            f.write(message)
            f.flush()
            # --cleanup=whitespace: keep lines starting with "#" ("#123 fixed"), which the
            # default cleanup would drop as comments.
            args = ["commit", "--quiet", "--no-verify", "--cleanup=whitespace", f"--file={f.name}"]
            if pathspec:
                args += ["--only", "--", *pathspec]
            env = _LITERAL | {"GIT_AUTHOR_NAME": author_name, "GIT_AUTHOR_EMAIL": author_email}
            try:
                self._git(root, *args, env=env)
            except _GitFailed as e:
                raise e.as_port_error("commit") from e
        sha = self._resolve(root, "HEAD")
        assert sha is not None  # a commit was just made
        return sha

    # ------------------------------------------------------------------ worktrees

    @_translated
    def create_worktree(
        self, repo: AnyPath, path: AnyPath, branch: str, *, base: str = "HEAD"
    ) -> str:
        root = self._open(repo, worktree=False)
        self._check_ref(branch, branch=True)
        self._check_ref(base, branch=False)
        target = _abs(path)
        existed = _check_empty_destination(target)
        if self._branch_exists(root, branch):
            raise BranchExists(f"branch {branch!r} already exists")
        sha = self._resolve(root, base)
        if sha is None:
            raise UnknownRef(f"no branch, tag or commit {base!r} in {root}")
        try:
            self._git(root, "worktree", "add", "--quiet", "-b", branch, "--", str(target), sha)
        except BaseException as e:
            _restore_destination(target, existed)
            with contextlib.suppress(_GitFailed, GitOperationFailed):
                self._git(root, "worktree", "prune")
                # Only if it still is what we made, so a concurrent creator keeps theirs.
                self._git(root, "update-ref", "-d", f"refs/heads/{branch}", sha)
            if isinstance(e, _GitFailed):
                raise e.as_port_error(f"creating worktree {target}") from e
            raise
        return str(target)

    @_translated
    def remove_worktree(self, repo: AnyPath, path: AnyPath, *, force: bool = False) -> None:
        root = self._open(repo, worktree=False)
        target = _abs(path)
        listed = self.worktrees(root)
        match = [w for w in listed if os.path.realpath(w.path) == os.path.realpath(target)]
        if not match:
            if not target.exists():
                self._git(root, "worktree", "prune")
                return
            raise NotAGitRepository(f"{target} is not a worktree of {root}")
        if match[0] is listed[0]:
            raise InvalidVcsArgument(f"{target} is the main working tree of {root}")
        if not target.exists():
            self._git(root, "worktree", "prune")
            return
        args = ["worktree", "remove", *(["--force"] if force else []), "--", str(target)]
        try:
            self._git(root, *args)
        except _GitFailed as e:
            if "modified or untracked files" in e.stderr:
                raise DirtyWorkingTree(
                    f"the worktree {target} has uncommitted changes; commit them or force"
                ) from e
            raise e.as_port_error(f"removing worktree {target}") from e

    @_translated
    def worktrees(self, repo: AnyPath) -> list[WorktreeInfo]:
        root = self._open(repo, worktree=False)
        out = self._out(root, "worktree", "list", "--porcelain", "-z")
        found: list[WorktreeInfo] = []
        for record in out.split("\0\0"):
            fields: dict[str, str] = {}
            for field in record.strip("\0").split("\0"):
                key, _, value = field.partition(" ")
                if key:
                    fields[key] = value
            if "worktree" not in fields:
                continue
            branch = fields.get("branch")
            head = fields.get("HEAD", "")
            found.append(
                WorktreeInfo(
                    path=fields["worktree"],
                    head=head if head.strip("0") else None,  # all zeros: no commit yet
                    branch=_short(branch) if branch else None,
                    bare="bare" in fields,
                )
            )
        return found

    # ------------------------------------------------------------------ snapshots

    @_translated
    def snapshot(
        self,
        repo: AnyPath,
        base: str,
        *,
        index_file: AnyPath,
        paths: Sequence[str] | None = None,
        rescan: bool = False,
    ) -> list[SnapshotEntry]:
        root = self._open(repo)
        self._check_ref(base, branch=False)
        # A full id needs no lookup (checkpoints pass the run's base commit many times);
        # git itself refuses one that names nothing.
        base_sha = base if _OBJECT_ID.fullmatch(base) else self._resolve(root, base)
        if base_sha is None:
            raise UnknownRef(f"no branch, tag or commit {base!r} in {root}")
        scratch = _abs(index_file)
        env = {"GIT_INDEX_FILE": str(scratch)} | _LITERAL
        scratch.parent.mkdir(parents=True, exist_ok=True)
        if rescan or not scratch.exists():
            # The base tree with no stat data, not a copy of the worktree's index: stat
            # data git did not record itself (to the second, no nanoseconds) could make a
            # same-size rewrite look unchanged. The first full scan reads every file once;
            # afterwards git keeps this index's stat data (and its racy-entry guard) itself.
            scratch.unlink(missing_ok=True)
            self._git(root, "read-tree", base_sha, env=env)
            paths = None if rescan else paths
        pathspec: list[str] = []
        if paths is None:
            self._stage(root, env=env)
        elif paths:
            pathspec = self._pathspec(root, paths)
            # `update-index` reads each named file again (no stat shortcut: a same-second,
            # same-size rewrite is seen), stages a link as a link, drops what is gone, and
            # stages a named path even if ignored (a tracked file matching an ignore
            # pattern must not look deleted). Folders need `add`.
            folders = [p for p in pathspec if (root / p).is_dir() and not (root / p).is_symlink()]
            single = [p for p in pathspec if p not in folders]
            if single:
                self._git(root, "update-index", "--add", "--remove", "--", *single, env=env)
            if folders:
                self._git(root, "add", "-A", "-f", "--", *folders, env=env)
        else:
            return []
        _, out, _ = self._runner.run(
            ["diff-index", "--cached", "--no-renames", "-z", "--raw", base_sha, "--", *pathspec],
            cwd=root,
            env=env,
            timeout=self._local_timeout,
        )
        return _parse_raw_diff(out)

    @_translated
    def list_tree(self, repo: AnyPath, commit: str) -> dict[str, tuple[int, str]]:
        root = self._open(repo)
        self._check_ref(commit, branch=False)
        try:
            _, out, _ = self._git(root, "ls-tree", "-r", "-z", "--full-tree", commit)
        except _GitFailed as e:
            if "not a tree object" in e.stderr or "bad" in e.stderr.lower():
                raise UnknownRef(f"no commit {commit!r} in {root}") from e
            raise e.as_port_error("listing a tree") from e
        found: dict[str, tuple[int, str]] = {}
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, _kind, object_id = meta.decode().split()
            found[raw_path.decode("utf-8", "surrogateescape")] = (int(mode, 8), object_id)
        return found

    @_translated
    def read_objects(self, repo: AnyPath, names: Sequence[str]) -> dict[str, bytes]:
        root = self._open(repo)
        if not names:
            return {}
        _check_object_names(names)
        found: dict[str, bytes] = {}
        with tempfile.NamedTemporaryFile("wb", suffix=".names") as listing:
            listing.write(b"".join(n.encode("utf-8", "surrogateescape") + b"\n" for n in names))
            listing.flush()
            _, out, _ = self._runner.run(
                ["cat-file", "--batch"],
                cwd=root,
                timeout=self._local_timeout,
                stdin=Path(listing.name),
            )
        view = memoryview(out)
        at = 0
        for name in names:
            end = out.index(b"\n", at)
            header = bytes(view[at:end]).decode("utf-8", "replace").split()
            at = end + 1
            if len(header) == 3 and header[1] in ("blob", "tree", "commit", "tag"):
                size = int(header[2])
                if header[1] == "blob":
                    found[name] = bytes(view[at : at + size])
                at += size + 1  # the content, then a newline
        return found

    @_translated
    def fetch_branch(self, repo: AnyPath, source: AnyPath, branch: str) -> str:
        root = self._open(repo)
        origin = self._open(source)
        self._check_ref(branch, branch=True)
        if self._current_branch(root) == branch:
            raise BranchExists(f"{branch!r} is checked out in {root}; it cannot be replaced")
        ref = f"refs/heads/{branch}"
        if self._resolve(origin, ref) is None:
            raise UnknownRef(f"{origin} has no branch {branch!r}")
        try:
            self._git(root, "fetch", "--quiet", "--no-tags", "--", str(origin), f"+{ref}:{ref}")
        except _GitFailed as e:
            raise e.as_port_error(f"copying branch {branch!r} into {root}") from e
        sha = self._resolve(root, ref)
        assert sha is not None  # just fetched
        return sha

    # ------------------------------------------------------------------ internals

    def _stage(self, root: Path, *args: str, env: Mapping[str, str]) -> None:
        """`git add -A`, leaving generated files out (see the module docstring)."""
        self._git(root, "-c", f"core.excludesFile={self._excludes}", "add", "-A", *args, env=env)

    def _git(
        self, root: Path, *args: str, env: Mapping[str, str] | None = None
    ) -> tuple[int, bytes, str]:
        return self._runner.run(args, cwd=root, env=env, timeout=self._local_timeout)

    def _out(self, root: Path, *args: str) -> str:
        try:
            _, out, _ = self._git(root, *args)
        except _GitFailed as e:
            raise e.as_port_error(f"git {args[0]}") from e
        # surrogateescape: a path that is not UTF-8 still round-trips back to git.
        return out.decode("utf-8", errors="surrogateescape")

    def _probe(self, path: Path) -> str | None:
        """The kind of `path`: "worktree" (its top), "bare", "gitdir" (a .git) or None."""
        if not path.is_dir():
            return None
        # The ceiling stops git from walking up: a subfolder of a repository is not one.
        env = {"GIT_CEILING_DIRECTORIES": str(path.parent)}
        try:
            _, out, _ = self._runner.run(
                ["rev-parse", "--is-bare-repository", "--is-inside-git-dir"],
                cwd=path,
                env=env,
                timeout=self._local_timeout,
            )
        except _GitFailed as e:
            if "not a git repository" in e.stderr:
                return None
            raise e.as_port_error(f"inspecting {path}") from e  # e.g. dubious ownership
        bare, inside_git_dir = out.decode().split()
        if bare == "true":
            return "bare"
        return "gitdir" if inside_git_dir == "true" else "worktree"

    def _open(self, repo: AnyPath, *, worktree: bool = True) -> Path:
        root = _abs(repo)
        try:
            # The folder's identity: a folder removed and made again is probed again.
            identity = (str(root), os.stat(root).st_ino, os.stat(root).st_ctime_ns)
        except OSError:
            raise RepositoryNotFound(f"{root} does not exist") from None
        kind = self._kinds.get(identity)
        if kind is None:
            kind = self._probe(root)
            if kind is not None:
                # Checkpoints ask many times a second about the same worktree; the probe
                # is a git process each time otherwise.
                self._kinds[identity] = kind
        if kind is None or kind == "gitdir":
            raise NotAGitRepository(f"{root} is not the top of a git repository")
        if worktree and kind == "bare":
            raise NotAGitRepository(f"{root} is a bare repository; this needs a working tree")
        return root

    def _repo_info(self, root: Path) -> RepoInfo:
        code, out, _ = self._runner.run(
            ["config", "--get", "remote.origin.url"],
            cwd=root,
            timeout=self._local_timeout,
            check=False,
        )
        url = out.decode().strip() if code == 0 else None
        return RepoInfo(
            path=str(root),
            head=self._resolve(root, "HEAD"),
            branch=self._current_branch(root),
            remote_url=redact(url) if url else None,
        )

    def _resolve(self, root: Path, ref: str) -> str | None:
        """The commit `ref` names, or None. `ref` is validated or our own."""
        code, out, _ = self._runner.run(
            ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
            cwd=root,
            timeout=self._local_timeout,
            check=False,
        )
        return out.decode().strip() or None if code == 0 else None

    def _current_branch(self, root: Path) -> str | None:
        code, out, _ = self._runner.run(
            ["symbolic-ref", "--quiet", "--short", "HEAD"],
            cwd=root,
            timeout=self._local_timeout,
            check=False,
        )
        return out.decode().strip() or None if code == 0 else None

    def _upstream(self, root: Path, branch: str) -> str | None:
        """The configured upstream's short name, even before its ref was ever fetched
        (a clone of an empty repository), which `@{upstream}` would not resolve."""
        ref = f"refs/heads/{branch}"
        out = self._out(root, "for-each-ref", "--format=%(refname)%00%(upstream:short)", ref)
        for line in out.splitlines():
            name, _, upstream = line.partition("\0")
            if name == ref:
                return upstream or None
        # An unborn branch has no ref for for-each-ref to show; status still knows its
        # upstream, and with no commits it is cheap.
        header = self._out(
            root, "status", "--porcelain=v2", "-z", "--branch", "--untracked-files=no"
        )
        return _parse_status(header).upstream

    def _branch_exists(self, root: Path, name: str) -> bool:
        code, _, _ = self._runner.run(
            ["show-ref", "--verify", "--quiet", f"refs/heads/{name}"],
            cwd=root,
            timeout=self._local_timeout,
            check=False,
        )
        return code == 0

    def _check_ref(self, name: str, *, branch: bool) -> None:
        """Refuse anything but a plain name: no options, no revision syntax.

        `branch=True` for names of branches to create (where "HEAD" is refused too).
        """
        what = "branch name" if branch else "ref"
        if not name or name.startswith("-"):
            raise InvalidRefName(f"{name!r} is not a valid {what}")
        if not branch and (name == "HEAD" or _OBJECT_ID.fullmatch(name)):
            return
        if _REVISION_SYNTAX.search(name) or not _valid_branch_name(self._git_bin, name):
            raise InvalidRefName(f"{name!r} is not a valid {what}")

    def _pathspec(self, root: Path, paths: Sequence[str] | None) -> list[str]:
        """Paths relative to the repository, checked to stay inside it (symlinks are
        files to git, so they are not followed)."""
        if paths is None:
            return []
        if isinstance(paths, str):
            raise InvalidPath("paths must be a list of paths, not one string")
        checked: list[str] = []
        for p in paths:
            if not p or "\0" in p or PurePosixPath(p).is_absolute():
                raise InvalidPath(f"{p!r} is not a path relative to the repository")
            full = os.path.normpath(root / p)
            if full != str(root) and not full.startswith(str(root) + os.sep):
                raise InvalidPath(f"{p!r} is outside the repository")
            checked.append(os.path.relpath(full, root))
        return checked

    def _clone_source(self, source: str) -> Path | str:
        """A local path (absolute, as a Path) or a URL git may fetch (a str)."""
        if not source or not source.strip():
            raise UnsafeSource("the clone source is empty")
        if source.startswith("-"):
            raise UnsafeSource(f"{redact(source)!r} looks like an option, not a repository")
        if any(ord(c) < 32 or c == "\x7f" for c in source):
            raise UnsafeSource("the clone source contains control characters")
        if _REMOTE_HELPER.match(source):
            raise UnsafeSource(
                f"{redact(source)!r} uses a git remote helper (`<transport>::`); only"
                " https, http, ssh, git and file URLs and local paths are allowed"
            )
        scheme = _SCHEME.match(source)
        if scheme:
            if scheme["scheme"].lower() not in _ALLOWED_SCHEMES:
                raise UnsafeSource(f"the {scheme['scheme']}:// scheme is not allowed")
            try:
                parts = urlsplit(source)
                host, user = parts.hostname or "", parts.username or ""
            except ValueError as e:
                raise UnsafeSource(f"{redact(source)!r} is not a valid URL") from e
            if host.startswith("-") or user.startswith("-"):
                raise UnsafeSource(f"{redact(source)!r} has a host or user starting with '-'")
            return source
        local = _abs(source)
        scp = _SCP_LIKE.match(source)
        # Like git: an existing local path wins over an scp-like reading of it.
        if scp and not local.exists():
            if scp["host"].startswith("-") or (scp["user"] or "").startswith("-"):
                raise UnsafeSource(f"{source!r} has a host or user starting with '-'")
            return source
        return local


_LITERAL = {"GIT_LITERAL_PATHSPECS": "1"}


def _check_object_names(names: Sequence[str]) -> None:
    if any("\n" in n or "\0" in n for n in names):
        raise InvalidVcsArgument("an object name holds a newline or NUL")


def _parse_raw_diff(out: bytes) -> list[SnapshotEntry]:
    """`git diff-index --raw -z`: ":old new oldsha newsha status\0path\0" records."""
    fields = out.split(b"\0")
    entries = []
    for i in range(0, len(fields) - 1, 2):
        meta, raw_path = fields[i], fields[i + 1]
        if not meta.startswith(b":"):
            continue
        _old_mode, new_mode, _old_sha, new_sha, status = meta[1:].decode().split()
        path = raw_path.decode("utf-8", "surrogateescape")
        deleted = status == "D"
        entries.append(
            SnapshotEntry(
                path=path,
                mode=0 if deleted else int(new_mode, 8),
                blob=None if deleted else new_sha,
            )
        )
    return sorted(entries, key=lambda e: e.path)


def _abs(path: AnyPath) -> Path:
    # Absolute without resolving symlinks: "dest" stays where the caller said.
    return Path(os.path.abspath(os.fspath(path)))


def _short(ref: str) -> str:
    for prefix in ("refs/heads/", "refs/remotes/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


def _check_identity(name: str, email: str) -> None:
    for value in (name, email):
        if not value.strip() or any(c in value for c in "<>\n\r\0"):
            raise InvalidVcsArgument(f"{value!r} cannot be used in a git identity")


def _check_empty_destination(dest: Path) -> bool:
    """True when `dest` exists (as an empty directory); raise when it holds anything."""
    if not dest.exists() and not dest.is_symlink():
        return False
    if not dest.is_dir() or any(dest.iterdir()):
        raise DestinationNotEmpty(f"{dest} already exists and is not an empty directory")
    return True


def _restore_destination(dest: Path, existed: bool) -> None:
    """Put `dest` back as we found it: absent, or an empty directory."""
    if not existed:
        shutil.rmtree(dest, ignore_errors=True)
        return
    with contextlib.suppress(FileNotFoundError):
        for child in dest.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


def _listed_paths(stderr: str) -> list[str]:
    """The tab-indented file list git prints under "would be overwritten by ..."."""
    return [ln.strip() for ln in stderr.splitlines() if ln.startswith("\t") and ln.strip()]


def _records(out: str) -> Iterator[str]:
    yield from (r for r in out.split("\0") if r)


def _parse_status(out: str) -> RepoStatus:
    head: str | None = None
    branch: str | None = None
    upstream: str | None = None
    ahead: int | None = None
    behind: int | None = None
    modified: set[str] = set()
    added: set[str] = set()
    deleted: set[str] = set()
    untracked: set[str] = set()
    conflicted: set[str] = set()
    for record in _records(out):
        kind = record[0]
        if kind == "#":
            _, key, value = record.split(" ", 2)
            if key == "branch.oid":
                head = None if value == "(initial)" else value
            elif key == "branch.head":
                branch = None if value == "(detached)" else value
            elif key == "branch.upstream":
                upstream = value
            elif key == "branch.ab":
                a, b = value.split()
                ahead, behind = int(a), -int(b)
        elif kind == "1":
            xy, path = record[2:4], record.split(" ", 8)[8]
            if "A" in xy[0]:
                added.add(path)
            elif "D" in xy:
                deleted.add(path)
            else:
                modified.add(path)
        elif kind == "u":
            conflicted.add(record.split(" ", 10)[10])
        elif kind == "?":
            untracked.add(record[2:])
        # "2" (renames) cannot occur with --no-renames; "!" (ignored) is not asked for.
    detached = head is not None and branch is None
    clean = not (modified or added or deleted or untracked or conflicted)
    return RepoStatus(
        branch=branch,
        head=head,
        detached=detached,
        clean=clean,
        modified=tuple(sorted(modified)),
        added=tuple(sorted(added)),
        deleted=tuple(sorted(deleted)),
        untracked=tuple(sorted(untracked)),
        conflicted=tuple(sorted(conflicted)),
        upstream=upstream,
        ahead=ahead,
        behind=behind,
    )
