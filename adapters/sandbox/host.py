"""The sandbox machinery shared by adapters whose commands are host processes.

`HostSandbox` implements the `Sandbox` port for a workspace that is a host directory:
file operations go through `files` (in a worker thread), commands through `processes`.
An adapter supplies only how a command line is launched: `_launch` turns an argv, a
resolved cwd and the command's environment into a `Launch` (host argv, host cwd); `_run`
may wrap the run (docker tracks and kills the exec's processes inside its container);
`_finish` may correct what the launcher reports (bwrap's own "execvp" failure is a
missing command).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, ParamSpec, Self, TypeVar

from adapters.sandbox import files, processes
from adapters.sandbox.environment import command_environment
from adapters.sandbox.paths import Workspace, translate
from codeforge.ports.sandbox import (
    Capabilities,
    ExecResult,
    FileStat,
    InvalidSandboxSpec,
    OutputCallback,
    SandboxClosed,
    SandboxPathNotFound,
    SandboxSpec,
    SandboxUnsupported,
)

P = ParamSpec("P")
T = TypeVar("T")

# How long close() waits for killed execs and running file operations to wind down.
CLOSE_WAIT = 5.0


def refuse_unsupported(kind: str, capabilities: Capabilities, spec: SandboxSpec) -> None:
    """Raise SandboxUnsupported naming everything in `spec` that `kind` cannot enforce."""
    refusals = capabilities.refusals(spec)
    if refusals:
        raise SandboxUnsupported(
            f"the {kind} sandbox cannot enforce: {'; '.join(refusals)}. Drop these from the "
            "spec, or choose a sandbox kind whose capabilities include them",
            field="spec",
        )


def check_mount_sources(spec: SandboxSpec) -> None:
    for mount in spec.read_only_mounts:
        if not Path(mount.source).exists():
            raise SandboxPathNotFound(
                f"the read-only mount source {mount.source} does not exist",
                field="read_only_mounts",
            )


class Scratch:
    """A private HOME and TMP for one sandbox, on the host, removed on close."""

    def __init__(self, kind: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"codeforge-{kind}-"))
        self.home = self.root / "home"
        self.tmp = self.root / "tmp"
        self.home.mkdir()
        self.tmp.mkdir()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class Launch(NamedTuple):
    """How one command starts on the host; `marker` is the adapter's own tag for it."""

    argv: list[str]
    cwd: str
    marker: str = ""


class HostSandbox(ABC):
    """A `Sandbox` over a host directory whose commands run as host processes."""

    def __init__(
        self,
        *,
        kind: str,
        spec: SandboxSpec,
        capabilities: Capabilities,
        workspace: Workspace,
        scratch: Scratch | None,
        env: Mapping[str, str],
        workdir: str,
        rlimits: Sequence[str],
        cleanups: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self._kind = kind
        self._spec = spec
        self._capabilities = capabilities
        self._workspace = workspace
        self._scratch = scratch
        self._env = dict(env)
        self._workdir = workdir
        self._rlimits = list(rlimits)
        self._cleanups = list(cleanups)
        self._running: set[processes.ProcessGroup] = set()
        self._closed = False
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- what the adapters supply ----------------------------------------------------

    @abstractmethod
    def _launch(
        self, argv: list[str], cwd: tuple[str, ...], environment: Mapping[str, str]
    ) -> Launch:
        """How to run `argv` in the workspace directory `cwd` with `environment`."""

    async def _run(
        self,
        launch: Launch,
        environment: Mapping[str, str],
        timeout: float,  # noqa: ASYNC109 - a duration handed to processes.run
        stdin: bytes | str | None,
        on_output: OutputCallback | None,
    ) -> ExecResult:
        return await processes.run(
            self._rlimits + launch.argv,
            cwd=launch.cwd,
            env=environment,
            timeout=timeout,
            stdin=stdin,
            limits=self._spec.limits,
            on_output=on_output,
            running=self._running,
        )

    def _finish(self, argv: list[str], result: ExecResult) -> ExecResult:
        return result

    # -- the port --------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def spec(self) -> SandboxSpec:
        return self._spec

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def workdir(self) -> str:
        return self._workdir

    @property
    def closed(self) -> bool:
        return self._closed

    async def exec(
        self,
        command: Sequence[str] | str,
        *,
        cwd: str = ".",
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - see the Sandbox port
        stdin: bytes | str | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecResult:
        self._check_open()
        argv = processes.command_argv(command, self._spec.shell)
        environment = command_environment(self._env, env)
        seconds = self._spec.limits.timeout if timeout is None else timeout
        if not seconds > 0:
            raise InvalidSandboxSpec("timeout must be > 0", field="timeout")
        cwd_parts = self._workspace.resolve(cwd, field="cwd")
        with self._workspace.open_dir(cwd_parts, field="cwd"):
            pass  # it exists, is a directory, and is reached without following a link
        launch = self._launch(argv, cwd_parts, environment)
        with self._busy_guard():
            try:
                result = await self._run(launch, environment, seconds, stdin, on_output)
            except (FileNotFoundError, NotADirectoryError) as e:
                raise translate(e, cwd_parts, field="cwd") from e
        if self._closed:
            raise SandboxClosed("the sandbox was closed while the command ran; it was killed")
        return self._finish(argv, result)

    async def read_file(self, path: str) -> bytes:
        return await self._in_thread(files.read_file, self._workspace, path)

    async def write_file(self, path: str, data: bytes | str) -> None:
        content = data.encode() if isinstance(data, str) else bytes(data)
        await self._in_thread(files.write_file, self._workspace, path, content)

    async def list_dir(self, path: str = ".") -> list[FileStat]:
        return await self._in_thread(files.list_dir, self._workspace, path)

    async def delete(self, path: str, *, recursive: bool = False) -> None:
        await self._in_thread(files.delete, self._workspace, path, recursive=recursive)

    async def stat(self, path: str) -> FileStat:
        return await self._in_thread(files.stat_path, self._workspace, path)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for group in list(self._running):
            group.kill()
        # A killed exec returns within its drain grace; a file operation within its
        # syscalls. The descriptor and scratch go only after they have: a descriptor
        # number closed under a running operation could be reused by an unrelated open.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), CLOSE_WAIT)
        self._workspace.close()
        if self._scratch is not None:
            self._scratch.remove()
        for cleanup in self._cleanups:
            await cleanup()

    # -- for adapters built on this one (hybrid) ------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether an exec or a file operation is running."""
        return self._busy > 0

    def replace_workspace(self, workspace: Workspace) -> None:
        """Work on `workspace` from now on (the same path, remounted); closes the old one.

        Only while nothing runs (`busy` is False): a running operation holds the old one.
        """
        assert not self.busy, "replace_workspace while an operation runs"
        self._workspace.close()
        self._workspace = workspace

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- plumbing ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxClosed(f"this {self._kind} sandbox is closed; open a new one")

    @contextlib.contextmanager
    def _busy_guard(self) -> Iterator[None]:
        self._busy += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    async def _in_thread(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        self._check_open()
        with self._busy_guard():
            return await asyncio.to_thread(fn, *args, **kwargs)
