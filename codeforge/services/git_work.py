"""Git work off the event loop: bounded, cancellable, with progress.

The `Vcs` port is synchronous (git is a blocking subprocess). `GitRunner` runs each call
on a thread of its own pool and offers the same operations as coroutines:

- **Bounded**: at most `max_concurrent` git operations run at once (default 5); the
  rest wait, first come first served, on an `asyncio.Semaphore`. A slot is held until the
  thread has really finished — a cancelled call whose git is still being stopped keeps
  its slot, so the bound holds for processes, not just for coroutines.
- **Cancellable**: cancelling the awaiting task sets the call's cancel token; the
  adapter stops git (its whole process group) and, for a clone, removes the half-made
  clone. The task's `CancelledError` is raised only after that cleanup, so when
  `await task` returns the directory is gone. Operations without a token (status, diff,
  commit, ...) are short; a cancelled one finishes in its thread, then cancels — its
  effect (a commit, a worktree) stays. Likewise, a cancel that lands in the instant after
  a clone completed leaves that complete clone in place.
- **Progress**: callbacks are relayed from the git thread to the event loop thread
  (`call_soon_threadsafe`), in order, before the call's result is delivered.
- Context variables (request ids for logs) follow the call into its thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from codeforge.ports.vcs import (
    AnyPath,
    BranchInfo,
    ProgressCallback,
    PullResult,
    RepoInfo,
    RepoStatus,
    SnapshotEntry,
    Vcs,
    WorktreeInfo,
)

T = TypeVar("T")

DEFAULT_MAX_CONCURRENT = 5


class GitRunner:
    """Runs `Vcs` calls in worker threads, at most `max_concurrent` at a time."""

    def __init__(self, vcs: Vcs, *, max_concurrent: int = DEFAULT_MAX_CONCURRENT) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._vcs = vcs
        self._max = max_concurrent
        # A pool of our own: a burst of clones must not starve the default executor
        # that asyncio.to_thread and DNS lookups share. Sized to the bound, so the
        # semaphore, not the pool's queue, decides who waits.
        self._pool = ThreadPoolExecutor(max_workers=max_concurrent, thread_name_prefix="git")
        self._semaphore: asyncio.Semaphore | None = None
        self._running = 0
        self._waiting = 0
        self._closed = False

    @property
    def max_concurrent(self) -> int:
        return self._max

    @property
    def running(self) -> int:
        """Git operations running in threads now (for metrics and the dashboard)."""
        return self._running

    @property
    def waiting(self) -> int:
        """Calls waiting for a free slot."""
        return self._waiting

    async def aclose(self) -> None:
        """Refuse new calls and wait for running ones to finish (their threads end)."""
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(self._pool.shutdown, wait=True)
        )

    # ------------------------------------------------------------------ operations

    async def is_repository(self, path: AnyPath) -> bool:
        return await self._call(self._vcs.is_repository, path)

    async def clone(
        self,
        source: str,
        dest: AnyPath,
        *,
        branch: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> RepoInfo:
        """Clone as `Vcs.clone` does; cancelling the task stops git and removes `dest`."""
        return await self._cancellable(
            self._vcs.clone, source, dest, branch=branch, progress=progress
        )

    async def status(self, repo: AnyPath) -> RepoStatus:
        return await self._call(self._vcs.status, repo)

    async def fetch(self, repo: AnyPath, *, progress: ProgressCallback | None = None) -> None:
        await self._cancellable(self._vcs.fetch, repo, progress=progress)

    async def pull(self, repo: AnyPath, *, progress: ProgressCallback | None = None) -> PullResult:
        return await self._cancellable(self._vcs.pull, repo, progress=progress)

    async def branches(self, repo: AnyPath) -> list[BranchInfo]:
        return await self._call(self._vcs.branches, repo)

    async def checkout(self, repo: AnyPath, ref: str, *, create: bool = False) -> RepoStatus:
        return await self._call(self._vcs.checkout, repo, ref, create=create)

    async def diff(
        self, repo: AnyPath, base: str | None = None, *, paths: Sequence[str] | None = None
    ) -> str:
        return await self._call(self._vcs.diff, repo, base, paths=paths)

    async def commit(
        self,
        repo: AnyPath,
        message: str,
        *,
        paths: Sequence[str] | None = None,
        author_name: str,
        author_email: str,
    ) -> str:
        return await self._call(
            self._vcs.commit,
            repo,
            message,
            paths=paths,
            author_name=author_name,
            author_email=author_email,
        )

    async def create_worktree(
        self, repo: AnyPath, path: AnyPath, branch: str, *, base: str = "HEAD"
    ) -> str:
        return await self._call(self._vcs.create_worktree, repo, path, branch, base=base)

    async def remove_worktree(self, repo: AnyPath, path: AnyPath, *, force: bool = False) -> None:
        await self._call(self._vcs.remove_worktree, repo, path, force=force)

    async def worktrees(self, repo: AnyPath) -> list[WorktreeInfo]:
        return await self._call(self._vcs.worktrees, repo)

    async def snapshot(
        self,
        repo: AnyPath,
        base: str,
        *,
        index_file: AnyPath,
        paths: Sequence[str] | None = None,
        rescan: bool = False,
    ) -> list[SnapshotEntry]:
        return await self._call(
            self._vcs.snapshot, repo, base, index_file=index_file, paths=paths, rescan=rescan
        )

    async def list_tree(self, repo: AnyPath, commit: str) -> dict[str, tuple[int, str]]:
        return await self._call(self._vcs.list_tree, repo, commit)

    async def read_objects(self, repo: AnyPath, names: Sequence[str]) -> dict[str, bytes]:
        return await self._call(self._vcs.read_objects, repo, names)

    async def fetch_branch(self, repo: AnyPath, source: AnyPath, branch: str) -> str:
        return await self._call(self._vcs.fetch_branch, repo, source, branch)

    # ------------------------------------------------------------------ machinery

    async def _cancellable(
        self,
        method: Callable[..., T],
        *args: object,
        progress: ProgressCallback | None,
        **kwargs: object,
    ) -> T:
        """Call a method that takes `progress` and `cancel`, wiring both to this loop."""
        loop = asyncio.get_running_loop()
        cancel = threading.Event()
        relay = None if progress is None else _relay(loop, progress)
        return await self._call(
            method, *args, progress=relay, cancel=cancel, _cancel_token=cancel, **kwargs
        )

    async def _call(
        self,
        method: Callable[..., T],
        *args: object,
        _cancel_token: threading.Event | None = None,
        **kwargs: object,
    ) -> T:
        if self._closed:
            raise RuntimeError("the git runner is closed")
        semaphore = self._get_semaphore()
        self._waiting += 1
        try:
            await semaphore.acquire()
        finally:
            self._waiting -= 1
        self._running += 1
        try:
            loop = asyncio.get_running_loop()
            context = contextvars.copy_context()
            call = functools.partial(context.run, method, *args, **kwargs)
            future = loop.run_in_executor(self._pool, call)
            try:
                # shield: a cancel must not detach us from the thread; we stop it below.
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                if _cancel_token is not None:
                    _cancel_token.set()
                await _finish(future)
                raise
        finally:
            self._running -= 1
            semaphore.release()

    def _get_semaphore(self) -> asyncio.Semaphore:
        # Created on first use, inside the running loop that will use it.
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._max)
        return self._semaphore


async def _finish(future: asyncio.Future[T]) -> None:
    """Wait for a cancelled call's thread to end, however often we are cancelled again.

    The adapter cleans up (kills git, removes the half-made clone) in that thread; the
    caller's CancelledError must not overtake it. Its outcome (OperationCancelled,
    usually) is consumed here: the caller asked to cancel and gets CancelledError.
    """
    while not future.done():
        # asyncio.wait neither raises the call's exception nor cancels the call.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({future})
    if not future.cancelled():
        future.exception()  # mark it retrieved: no "exception was never retrieved" noise


def _relay(loop: asyncio.AbstractEventLoop, progress: ProgressCallback) -> ProgressCallback:
    """A progress callback for the git thread that runs `progress` on the loop thread."""

    def relay(stage: str, percent: float | None, message: str) -> None:
        # A closed loop (shutdown) must not abort the clone through its progress line.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(progress, stage, percent, message)

    return relay


__all__ = ["DEFAULT_MAX_CONCURRENT", "GitRunner"]
