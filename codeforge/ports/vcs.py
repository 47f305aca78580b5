"""Version control: clones, worktrees and commits of the repositories agents work on.

The port is **synchronous**: git is a blocking subprocess, and adapters are plain
functions that run it. Async code never calls an adapter directly: it goes through
`codeforge.services.git_work.GitRunner`, which runs each call in a worker thread, bounds
how many run at once, relays progress to the event loop and turns task cancellation
into the `cancel` token below.

Paths: the port takes `str` or any path-like object (`pathlib.Path`) and returns
absolute paths as `str`; the domain layer stays free of `pathlib`, and `Path(p)` is one
call away for callers that want one.

Errors (every adapter raises these, `from` the driver's exception):

    PortError
    +-- VcsError                      any VCS failure; str() is one line, free of credentials
        +-- RepositoryNotFound        (NotFound)  a local path does not exist
        +-- NotAGitRepository         (ValidationFailed)  it exists but is not a repository
        +-- InvalidVcsArgument        (ValidationFailed)  user input rejected before git ran
        |   +-- InvalidRefName        not a valid branch/ref name, or starts with "-"
        |   +-- UnsafeSource          option injection, `ext::`/`<helper>::`, unknown scheme
        |   +-- InvalidPath           a path outside the repository, or matching nothing
        +-- DestinationNotEmpty       (Conflict)  a clone/worktree target holds files
        +-- CloneFailed               (ValidationFailed)  git could not clone the source
        +-- UnknownRef                (NotFound)  no such branch, tag or commit
        +-- BranchExists              (Conflict)  the branch to create already exists
        +-- DirtyWorkingTree          (Conflict)  local changes would be lost or overwritten
        +-- DivergedBranch            (Conflict)  a fast-forward is impossible
        +-- NoUpstream                (Conflict)  nothing to pull from/fetch from
        +-- NothingToCommit           (Conflict)  the commit would be empty
        +-- OperationCancelled        the caller's cancel token was set
        +-- GitOperationFailed        anything else git refused, or a timeout

The domain error in parentheses is a second base class, so the HTTP layer answers a
bad URL with 422 and a dirty tree with 409 without knowing anything about git.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from msgspec import Struct

from codeforge.domain.errors import Conflict, NotFound, ValidationFailed
from codeforge.ports.errors import PortError

# --------------------------------------------------------------------------- helpers


class PathLike(Protocol):
    """Anything `os.fspath()` accepts and that yields a `str` (e.g. `pathlib.Path`)."""

    def __fspath__(self) -> str: ...


AnyPath = str | PathLike

ProgressCallback = Callable[[str, float | None, str], None]
"""Called as `progress(stage, percent, message)`.

`stage` is git's name for the phase ("Receiving objects", "Resolving deltas",
"Updating files", ...) plus CodeForge's own "Starting" and "Done"; `percent` is 0..100
when git reports one, else None; `message` is git's whole line. Adapters call it from
the thread running git; an exception it raises aborts the operation (and, for a clone,
removes the half-made clone) and propagates.
"""


class CancelToken(Protocol):
    """A flag another thread sets to stop an operation (`threading.Event` is one).

    Adapters poll it at least every 100 ms while git runs; once set they stop git (its
    whole process group), clean up, and raise `OperationCancelled`.
    """

    def is_set(self) -> bool: ...


RUN_BRANCH_PREFIX = "codeforge/run-"


def run_branch(run_id: str) -> str:
    """The branch a run works on, in its own worktree (ARCHITECTURE.md, "Workspaces")."""
    return f"{RUN_BRANCH_PREFIX}{run_id}"


# ---------------------------------------------------------------------------- values


class RepoInfo(Struct, frozen=True):
    """A repository after a clone."""

    path: str
    """Absolute path of the working tree."""
    head: str | None
    """Commit sha of HEAD; None for a clone of an empty repository."""
    branch: str | None
    """Checked-out branch (short name); None when HEAD is detached."""
    remote_url: str | None
    """The `origin` URL with any `user:password@` removed."""


class RepoStatus(Struct, frozen=True):
    """The state of a working tree, like `git status` shows it.

    Path lists hold paths relative to the repository root with "/" separators, sorted.
    A path is listed once, by its net effect against HEAD: `added` holds files new in the
    index, `deleted` files removed from the index or the working tree, `modified` any
    other change (staged or not, content or type). A staged rename counts as a deletion
    of the old path and an addition of the new one. `conflicted` holds unmerged paths.
    """

    branch: str | None
    """Current branch (short name); None when HEAD is detached."""
    head: str | None
    """Commit sha of HEAD; None before the first commit."""
    detached: bool
    clean: bool
    """True when nothing is modified, added, deleted, conflicted or untracked."""
    modified: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    untracked: tuple[str, ...] = ()
    conflicted: tuple[str, ...] = ()
    upstream: str | None = None
    """The current branch's upstream ("origin/main"), when it has one."""
    ahead: int | None = None
    """Commits on HEAD not on the upstream; None without an upstream (or when it is gone)."""
    behind: int | None = None
    """Commits on the upstream not on HEAD; None without an upstream (or when it is gone)."""

    @property
    def has_tracked_changes(self) -> bool:
        """Changes that a checkout could lose: everything except untracked files."""
        return bool(self.modified or self.added or self.deleted or self.conflicted)


class BranchInfo(Struct, frozen=True):
    """One local or remote-tracking branch."""

    name: str
    """Short name: "main" for a local branch, "origin/main" for a remote-tracking one."""
    ref: str
    """Full ref name: "refs/heads/main", "refs/remotes/origin/main"."""
    head: str
    """Commit sha the branch points at."""
    remote: bool
    """True for a remote-tracking branch."""
    current: bool
    """True for the branch checked out in this working tree."""
    upstream: str | None = None
    """For a local branch, its upstream's short name ("origin/main")."""


class PullResult(Struct, frozen=True):
    """What a fast-forward pull did."""

    upstream: str
    """The branch pulled from ("origin/main")."""
    before: str | None
    """HEAD before the pull; None when the branch had no commit yet."""
    after: str | None
    """HEAD after the pull (== before when already up to date)."""
    commits: int
    """How many commits the fast-forward brought in (0 when up to date)."""

    @property
    def updated(self) -> bool:
        return self.before != self.after


class WorktreeInfo(Struct, frozen=True):
    """One working tree of a repository (the main one comes first)."""

    path: str
    head: str | None
    branch: str | None
    """Checked-out branch (short name); None when detached or bare."""
    bare: bool = False


# ---------------------------------------------------------------------------- errors


class SnapshotEntry(Struct, frozen=True):
    """A path whose content differs from the snapshot's base commit."""

    path: str
    # Git's mode: 0o100644, 0o100755 (executable), 0o120000 (symlink), 0o160000 (submodule).
    mode: int
    # The git object id of the new content; None when the path was deleted.
    blob: str | None


class VcsError(PortError):
    """A version-control operation failed; str() is one line, free of credentials."""

    def __init__(self, message: str) -> None:
        # Cooperative: for the classes that also derive from a DomainError this reaches
        # DomainError.__init__, which sets `.message` and `.field` for the HTTP layer.
        super().__init__(message)
        self.message = message


class RepositoryNotFound(VcsError, NotFound):
    """A local path given as a repository (or clone source) does not exist."""


class NotAGitRepository(VcsError, ValidationFailed):
    """The path exists but is not the top of a git working tree or a git directory.

    Also raised when an operation that needs a working tree is given a bare repository.
    """


class InvalidVcsArgument(VcsError, ValidationFailed):
    """User input rejected before git ran: git never sees it."""


class InvalidRefName(InvalidVcsArgument):
    """Not a valid branch or ref name (`git check-ref-format --branch`), starts with "-",
    or is a revision expression ("HEAD~2", "main^", "@{-1}") where a name is expected."""


class UnsafeSource(InvalidVcsArgument):
    """A clone source that could inject options ("-..."), run a remote helper
    ("ext::...", "<transport>::...") or uses a scheme other than https, http, ssh, git,
    file or the scp-like "user@host:path"."""


class InvalidPath(InvalidVcsArgument):
    """A path argument that is absolute, leaves the repository, or matches no file."""


class DestinationNotEmpty(VcsError, Conflict):
    """The target directory of a clone or worktree exists and is not empty."""


class CloneFailed(VcsError, ValidationFailed):
    """Git could not clone the source; str() carries git's reason in one line."""


class UnknownRef(VcsError, NotFound):
    """No branch, tag or commit by that name (or the name matches several remotes)."""


class BranchExists(VcsError, Conflict):
    """The branch to create already exists."""


class DirtyWorkingTree(VcsError, Conflict):
    """The operation would discard or overwrite local changes, so it was not done.

    `paths` lists the files in the way when git named them.
    """

    def __init__(self, message: str, *, paths: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.paths = tuple(paths)


class DivergedBranch(VcsError, Conflict):
    """The local branch and its upstream both have commits: no fast-forward exists."""

    def __init__(self, message: str, *, ahead: int, behind: int) -> None:
        super().__init__(message)
        self.ahead = ahead
        self.behind = behind


class NoUpstream(VcsError, Conflict):
    """Nothing to pull from: HEAD is detached, the branch has no upstream, or the
    repository has no remote."""


class NothingToCommit(VcsError, Conflict):
    """There are no changes (in the given paths) to commit."""


class OperationCancelled(VcsError):
    """The cancel token was set; git was stopped and its partial work removed."""


class GitOperationFailed(VcsError):
    """Git failed for a reason the other classes do not cover, or ran past its timeout."""


# ------------------------------------------------------------------------------ port


class Vcs(Protocol):
    """Git repositories on this machine.

    Every method is **synchronous and blocking** (it runs git); call it from a worker
    thread, which is what `GitRunner` does. Methods are safe to call from several threads
    at once for *different* repositories; git's own locks (index.lock) make concurrent
    writes to the same repository fail with `GitOperationFailed` rather than corrupt it.

    Common rules:
    - `repo` is the top of a working tree (a clone or a worktree); a path that does not
      exist raises `RepositoryNotFound`, a folder that is not one raises
      `NotAGitRepository` (a bare repository too, where a working tree is needed).
    - Branch and ref names are validated before git sees them (`InvalidRefName`); refs
      name a branch, remote-tracking branch, tag, full ref or commit sha, or are "HEAD",
      never revision expressions. Paths are relative to the repository (`InvalidPath`).
    - Git never prompts: a server asking for credentials fails the call instead.
    - Nothing discards local changes: where git would, `DirtyWorkingTree` is raised.
    - Hooks never run, and `cancel` (where offered) stops git within about 100 ms.
    """

    def is_repository(self, path: AnyPath) -> bool:
        """True when `path` is the top of a git working tree or a bare repository.

        Never raises for a missing or unreadable path: it answers False.
        """
        ...

    def clone(
        self,
        source: str,
        dest: AnyPath,
        *,
        branch: str | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> RepoInfo:
        """Clone `source` into `dest` and check out `branch` (default: the remote's HEAD).

        `source` is a local path (to a working tree or a bare repository) or a URL:
        https://, http://, ssh://, git://, file:// or scp-like `user@host:path`.
        Raises:
        - `UnsafeSource` for a source starting with "-", a `<transport>::` address
          (`ext::` runs commands) or any other scheme — checked before git runs;
        - `RepositoryNotFound` for a local path that does not exist;
        - `NotAGitRepository` for a local folder that is not a repository;
        - `InvalidRefName` / `UnknownRef` for a bad or missing `branch`;
        - `DestinationNotEmpty` when `dest` exists and is not an empty directory;
        - `CloneFailed` when git fails (unreachable, not found, authentication), with
          git's reason in one line and no `user:password@` from the URL;
        - `OperationCancelled` when `cancel` is set; `GitOperationFailed` on timeout.
        On every failure `dest` is left as it was found: removed if the clone created it,
        emptied if it was an empty directory — never a half-made clone.
        """
        ...

    def status(self, repo: AnyPath) -> RepoStatus:
        """The working tree's branch, HEAD, changes and position against its upstream.

        Read-only: it does not even refresh the index (no optional locks), so it is safe
        on a repository someone else is using. Untracked files are listed one by one;
        ignored files are not listed.
        """
        ...

    def fetch(
        self,
        repo: AnyPath,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        """Fetch the current branch's remote (or `origin`), pruning deleted branches.

        Raises `NoUpstream` when the repository has no remote, `GitOperationFailed` when
        the remote cannot be reached, `OperationCancelled` when `cancel` is set. Never
        touches the working tree or local branches.
        """
        ...

    def pull(
        self,
        repo: AnyPath,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> PullResult:
        """Fetch, then fast-forward the current branch to its upstream. Never merges.

        Raises `NoUpstream` (detached HEAD, no upstream), `DivergedBranch` when both sides
        have commits (with `ahead`/`behind`), `DirtyWorkingTree` when local changes
        (tracked, or untracked files in the way) would be overwritten — changes that do
        not collide are kept, as git does — and what `fetch` raises.
        """
        ...

    def branches(self, repo: AnyPath) -> list[BranchInfo]:
        """Local branches, then remote-tracking ones, each sorted by name.

        Symbolic refs such as `origin/HEAD` are left out.
        """
        ...

    def checkout(self, repo: AnyPath, ref: str, *, create: bool = False) -> RepoStatus:
        """Switch the working tree to `ref` and return the new status.

        - `create=True`: create branch `ref` at HEAD and switch to it (`BranchExists` if
          it exists);
        - a local branch: switch to it;
        - a name that only exists as a remote-tracking branch in exactly one remote
          ("feature" with "origin/feature"): create the local tracking branch;
        - a tag, remote-tracking branch, full ref or commit sha: detach HEAD there.
        Raises `DirtyWorkingTree` when there are tracked changes (modified, added,
        deleted, conflicted) — even when git could carry them over — or untracked files
        would be overwritten; `UnknownRef` when nothing matches; `InvalidRefName`.
        """
        ...

    def diff(
        self, repo: AnyPath, base: str | None = None, *, paths: Sequence[str] | None = None
    ) -> str:
        """Unified diff from `base` (default HEAD) to the working tree, as it is on disk.

        Staged and unstaged changes alike; untracked (not ignored) files appear as new
        files. `paths` limits the diff to those files or folders (taken literally, no
        glob). Read-only: it uses a scratch index, so the repository's index is untouched.
        Binary files show as "Binary files ... differ". Empty string when nothing differs.
        Raises `UnknownRef` for an unknown base, `InvalidPath` for a path outside `repo`.
        """
        ...

    def commit(
        self,
        repo: AnyPath,
        message: str,
        *,
        paths: Sequence[str] | None = None,
        author_name: str,
        author_email: str,
    ) -> str:
        """Stage everything (or only `paths`, including their deletions) and commit it.

        Returns the new commit's sha. With `paths`, only those paths are committed, even
        if other changes were staged before. The message is kept as given (lines starting
        with "#" are not comments); hooks do not run; commits are not signed. The
        committer is the adapter's identity, the author the one given.
        Raises `NothingToCommit` when nothing changed, `InvalidVcsArgument` for an empty
        message or an author with "<", ">" or a newline, `InvalidPath` for a path that is
        outside `repo` or matches nothing.
        """
        ...

    def create_worktree(
        self, repo: AnyPath, path: AnyPath, branch: str, *, base: str = "HEAD"
    ) -> str:
        """Add a working tree at `path` on a new branch `branch` starting at `base`.

        Returns the worktree's absolute path. Each run uses `run_branch(run_id)`.
        Raises `InvalidRefName`, `BranchExists`, `UnknownRef` (base), and
        `DestinationNotEmpty` when `path` holds files. On failure nothing is left behind
        (no directory, no branch, no worktree record).
        """
        ...

    def remove_worktree(self, repo: AnyPath, path: AnyPath, *, force: bool = False) -> None:
        """Remove the worktree at `path` and its record; its branch and commits stay.

        Without `force`, a worktree with uncommitted changes or untracked files raises
        `DirtyWorkingTree` and is kept. A worktree whose directory is already gone just
        has its record pruned; a `path` that is not a worktree of `repo` raises
        `NotAGitRepository`, and the main working tree `InvalidVcsArgument`.
        """
        ...

    def worktrees(self, repo: AnyPath) -> list[WorktreeInfo]:
        """The repository's working trees, the main one first."""
        ...

    def snapshot(
        self,
        repo: AnyPath,
        base: str,
        *,
        index_file: AnyPath,
        paths: Sequence[str] | None = None,
        rescan: bool = False,
    ) -> list[SnapshotEntry]:
        """Stage the working tree into `index_file` and list what differs from `base`.

        `index_file` is a scratch index the caller owns (made from `base` when it does
        not exist yet; later calls are incremental, reading only what changed); the
        repository's own index, HEAD and refs are never touched. With `paths`, only
        those are re-staged — even if ignored — and only differences among them are
        listed (the caller keeps the rest from its last snapshot); without, every change
        is staged (`add -A`: untracked files too, ignored ones not) and listed. Git stores
        the staged contents as objects; read them with `read_objects`. Symbolic links are
        recorded as links (mode 0o120000), never followed. Sorted by path.

        Git trusts file stat data (size, mtime to the second, inode) to skip reading
        files it staged before; a file rewritten within the same second to the same size
        can look unchanged. `rescan` rebuilds the scratch index from `base`, so every file
        is read (use it after rewriting files behind git's back).
        """
        ...

    def list_tree(self, repo: AnyPath, commit: str) -> dict[str, tuple[int, str]]:
        """Every file of `commit`'s tree, recursively: path -> (git mode, object id)."""
        ...

    def read_objects(self, repo: AnyPath, names: Sequence[str]) -> dict[str, bytes]:
        """The content of each object named (a blob id, or `<commit>:<path>`); names
        that do not resolve to a blob are left out of the result."""
        ...

    def fetch_branch(self, repo: AnyPath, source: AnyPath, branch: str) -> str:
        """Copy `branch` of the repository at `source` into `repo` (objects and one ref,
        created or moved), without touching `repo`'s working tree, index or HEAD. Hooks
        do not run. Returns the branch's commit. Raises `BranchExists` when `branch` is
        the branch checked out in `repo`, `UnknownRef` when `source` lacks it."""
        ...
