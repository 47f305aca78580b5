"""Sandboxes: where agents run shell commands and edit files, and nowhere else.

An agent touches a workspace only through this port, so its guarantees are the
platform's safety. A `SandboxFactory` opens a `Sandbox` for one workspace (a run's
worktree) from a `SandboxSpec`: limits, a network mode, extra read-only mounts and the
names of host environment variables the commands may see.

Every adapter guarantees (the compliance suite checks each one against each adapter):

1. **Paths stay inside the workspace.** Every path given to a file operation, and every
   `cwd`, is relative to the workspace root. Absolute paths, `..` components, NUL bytes
   and paths whose symbolic links resolve outside the workspace raise `PathEscape`,
   before anything is read, written or run.
2. **The environment is scrubbed.** A command sees a small fixed base (`PATH`, `HOME`,
   `LANG`, `TERM`), the host variables named in `SandboxSpec.env_whitelist`, and the
   values the caller passes explicitly (`SandboxSpec.env`, then `exec(env=...)`), and
   nothing else: API keys and tokens in the host's environment never reach it.
3. **Commands end when they are told to.** An exec past its timeout, and every exec still
   running at `close()`, is killed together with its process group (children and
   grandchildren). When an exec's command exits, whatever it left running in its process
   group is killed too: no process outlives the exec that started it. Adapters with
   `Capabilities.kills_process_tree` also catch processes that left the group (daemons).
4. **Output is bounded.** Each of stdout and stderr is kept up to
   `SandboxLimits.output_bytes`: past it the result keeps the head and the tail around a
   `truncation_marker()` and says `truncated=True`. The command's output is always read to
   the end, so a chatty command never blocks on a full pipe.
5. **argv is not a shell.** `exec(["echo", "$HOME; rm -rf /"])` passes that string as one
   argument; only a `str` command runs through `SandboxSpec.shell`.
6. **Nothing is silently weaker than asked.** A spec that asks for something an adapter
   cannot enforce (a network mode, a tree-wide memory or pids limit, rlimits, a mount at
   another path) is refused at `open()` with `SandboxUnsupported`. What an adapter cannot
   enforce at all — a mount sandbox cannot cut the network, whatever the mode says — is
   stated by a `Capabilities` flag, which a policy checks before choosing the adapter.

Network modes: `none` cuts a command off from every network, the host's loopback included;
`full` gives it the host's network; `llm` lets it reach CodeForge's own LLM proxy and
nothing else. The proxy is an HTTP server on a host unix socket (`SandboxSpec.llm_socket`,
owned by the agent runtime); a command finds it at the URL in `CODEFORGE_LLM_URL`
(`http://127.0.0.1:<port>`), a loopback port the adapter relays to that socket. Only
adapters with `Capabilities.isolates_network` make "nothing else" true.

Layers (`LayeredSandbox`, the hybrid adapter): commands and file operations see the
workspace, but what they change lands in a layer of the sandbox's own. `merge()` applies
the layer to the workspace as one all-or-nothing step and returns the diff; `discard()`
(and `close()` without a merge) drops it. A path changed both in the layer and on the
host since the layer began is a conflict: the merge refuses, naming the paths, and
writes nothing.

Streaming: `exec(..., on_output=callback)` awaits `callback(OutputChunk)` for output as it
is produced, then returns the complete `ExecResult`. A callback, rather than an async
iterator, keeps one code path for plain and streamed execs and leaves no half-consumed
generator that could keep a process alive; awaiting it is the backpressure (a slow
consumer slows the reading, not the memory). An exception from the callback kills the
command and propagates from `exec`.

Errors (every adapter raises these, `from` the underlying exception):

    PortError
    +-- SandboxError                  any sandbox failure
        +-- InvalidSandboxSpec        (ValidationFailed, ValueError)  a spec breaks a rule
        +-- PathEscape                (ValidationFailed)  a path outside the workspace
        +-- SandboxPathNotFound       (NotFound)  no such file or directory in the workspace
        +-- WrongFileType             (ValidationFailed)  a directory where a file is needed,
        |                             a file where a directory is, a non-empty directory
        +-- SandboxUnsupported        (ValidationFailed)  the spec asks what the adapter
        |                             cannot enforce
        +-- SandboxClosed             (Conflict)  the sandbox was closed
        +-- MergeConflict             (Conflict)  the layer and the host changed the same
        |                             paths; `paths` names them, nothing was merged
        +-- LayerBusy                 (Conflict)  merge or discard while commands or file
        |                             operations run
        +-- SandboxUnavailable        (DependencyUnavailable)  the adapter cannot run on this
                                      machine (bubblewrap missing, docker down)

A command that fails is not an error: `exec` returns its exit code. A command that does
not exist returns exit code 127 and a message on stderr, as a shell would.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Final, Literal, Protocol, Self, runtime_checkable

from msgspec import Struct, field

from codeforge.domain.errors import Conflict, NotFound, ValidationFailed
from codeforge.ports.errors import DependencyUnavailable, PortError

__all__ = [
    "BASE_ENV_NAMES",
    "DEFAULT_OUTPUT_BYTES",
    "DEFAULT_TIMEOUT",
    "ISOLATION",
    "LLM_URL_ENV",
    "RLIMITS",
    "TREE_LIMITS",
    "Capabilities",
    "ChangeKind",
    "ExecResult",
    "FileKind",
    "FileStat",
    "InvalidSandboxSpec",
    "LayerBusy",
    "LayerChange",
    "LayerDiff",
    "LayeredSandbox",
    "MergeConflict",
    "NetworkMode",
    "OutputCallback",
    "OutputChunk",
    "PathEscape",
    "ReadOnlyMount",
    "Sandbox",
    "SandboxClosed",
    "SandboxError",
    "SandboxFactory",
    "SandboxLimits",
    "SandboxPathNotFound",
    "SandboxSpec",
    "SandboxUnavailable",
    "SandboxUnsupported",
    "StreamName",
    "WrongFileType",
    "check_env",
    "truncation_marker",
]

DEFAULT_TIMEOUT: Final = 120.0
"""Seconds an exec may run when neither the spec nor the call says otherwise."""

DEFAULT_OUTPUT_BYTES: Final = 1024 * 1024
"""Bytes kept of each of stdout and stderr when the spec does not say otherwise."""

BASE_ENV_NAMES: Final = ("PATH", "HOME", "LANG", "TERM")
"""The variables every command sees, with values the adapter chooses (not the host's)."""

ISOLATION: Final = ("isolates_filesystem", "isolates_network", "isolates_processes")
"""The capability flags a policy that "demands isolation" requires of an adapter."""

RLIMITS: Final = ("cpu_seconds", "file_size_bytes", "open_files", "process_memory_bytes")
"""The per-process limits, enforced where `Capabilities.enforces_rlimits`."""

TREE_LIMITS: Final = ("memory_bytes", "pids")
"""The tree-wide limits, enforced where cgroups are (docker)."""

LLM_URL_ENV: Final = "CODEFORGE_LLM_URL"
"""In network mode `llm`, the variable holding the URL where a command reaches the proxy."""

_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_PATTERN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\*?")


# ---------------------------------------------------------------------------- errors


class SandboxError(PortError):
    """A sandbox operation failed; str() says what and, where it can, how to fix it."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        # Cooperative: for the classes that also derive from a DomainError this reaches
        # DomainError.__init__, which the HTTP layer reads `.message` and `.field` from.
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidSandboxSpec(SandboxError, ValidationFailed, ValueError):
    """A `SandboxSpec` (or one of its parts) breaks a rule; `field` names which.

    Also a ValueError, so `msgspec.convert` reports it like any bad value in config.
    """


class PathEscape(SandboxError, ValidationFailed):
    """A path that is absolute, holds `..` or NUL, or resolves outside the workspace."""


class SandboxPathNotFound(SandboxError, NotFound):
    """No such file or directory in the workspace."""


class WrongFileType(SandboxError, ValidationFailed):
    """The path exists but is the wrong kind of thing for the operation."""


class SandboxUnsupported(SandboxError, ValidationFailed):
    """The spec asks for something this adapter cannot enforce; nothing was opened."""


class SandboxClosed(SandboxError, Conflict):
    """The sandbox was closed; open a new one."""


class MergeConflict(SandboxError, Conflict):
    """The layer and the host both changed `paths` since the layer began; nothing merged."""

    def __init__(self, message: str, *, paths: Sequence[str]) -> None:
        super().__init__(message, field="paths")
        self.paths = tuple(paths)


class LayerBusy(SandboxError, Conflict):
    """A merge or discard was asked while commands or file operations were running."""


class SandboxUnavailable(SandboxError, DependencyUnavailable):
    """The adapter cannot open sandboxes on this machine; str() says why and how to fix it."""


# ---------------------------------------------------------------------------- values


class NetworkMode(StrEnum):
    NONE = "none"
    """No network at all, the host's loopback included."""
    LLM = "llm"
    """Only CodeForge's own LLM proxy is reachable."""
    FULL = "full"
    """The host's network."""


class ReadOnlyMount(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A host directory or file the commands may read (a tool's virtual environment)."""

    source: str
    """Absolute host path."""
    target: str = ""
    """Absolute path where commands see it; empty means the same as `source`."""

    def __post_init__(self) -> None:
        _require_absolute(self.source, "read_only_mounts.source")
        if self.target:
            _require_absolute(self.target, "read_only_mounts.target")

    @property
    def path_inside(self) -> str:
        return self.target or self.source


class SandboxLimits(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What one exec may consume. None means "not limited".

    `timeout` and `output_bytes` bind on every adapter. The per-process rlimits
    (`cpu_seconds`, `file_size_bytes`, `open_files`, `process_memory_bytes`) need
    `Capabilities.enforces_rlimits`; the tree-wide `memory_bytes` and `pids` need
    `enforces_memory_limit` and `enforces_pids_limit`. An adapter refuses (at `open()`,
    with `SandboxUnsupported`) a limit it cannot enforce.
    """

    timeout: float = DEFAULT_TIMEOUT
    """Default wall-clock seconds per exec; `exec(timeout=...)` overrides it per call."""
    output_bytes: int = DEFAULT_OUTPUT_BYTES
    """Bytes kept of each of stdout and stderr."""
    cpu_seconds: int | None = None
    """CPU seconds per process (RLIMIT_CPU); a process past it is killed."""
    file_size_bytes: int | None = None
    """Largest file a process may write (RLIMIT_FSIZE)."""
    open_files: int | None = None
    """Open file descriptors per process (RLIMIT_NOFILE)."""
    process_memory_bytes: int | None = None
    """Address space per process (RLIMIT_AS): a per-process cap, not a tree-wide one."""
    memory_bytes: int | None = None
    """Memory of the whole process tree (a cgroup limit)."""
    pids: int | None = None
    """Processes of the whole tree at once, binding root too (a cgroup limit)."""
    disk_bytes: int | None = None
    """A storage quota on the sandbox's own filesystem (docker's writable container layer,
    `storage_opt size`); needs `Capabilities.enforces_disk_limit`. The workspace is the
    host's directory and is not covered."""

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise InvalidSandboxSpec("limits.timeout must be > 0", field="limits.timeout")
        if self.output_bytes < 1:
            raise InvalidSandboxSpec(
                "limits.output_bytes must be >= 1", field="limits.output_bytes"
            )
        for name in (*RLIMITS, *TREE_LIMITS, "disk_bytes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InvalidSandboxSpec(f"limits.{name} must be >= 1", field=f"limits.{name}")


class SandboxSpec(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to open: a workspace and the rules its commands run under."""

    workspace: str
    """Absolute host path of an existing directory: the run's worktree."""
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    network: NetworkMode = NetworkMode.NONE
    read_only_mounts: tuple[ReadOnlyMount, ...] = ()
    env_whitelist: tuple[str, ...] = ()
    """Host variables passed through: exact names, or a prefix ending in `*` ("LC_*")."""
    env: dict[str, str] = field(default_factory=dict)
    """Values every command sees (over the base and the whitelisted host values)."""
    shell: tuple[str, ...] = ("/bin/sh", "-c")
    """How a `str` command runs: the command string is appended as the last argument."""
    llm_socket: str = ""
    """Absolute host path of the unix socket where CodeForge's LLM proxy (an HTTP server)
    listens; required by network `llm`, unused by the other modes."""

    def __post_init__(self) -> None:
        _require_absolute(self.workspace, "workspace")
        if self.llm_socket:
            _require_absolute(self.llm_socket, "llm_socket")
        elif self.network is NetworkMode.LLM:
            raise InvalidSandboxSpec(
                "network 'llm' needs llm_socket: the absolute path of the unix socket where "
                "CodeForge's LLM proxy listens",
                field="llm_socket",
            )
        for pattern in self.env_whitelist:
            if not _ENV_PATTERN.fullmatch(pattern):
                raise InvalidSandboxSpec(
                    f"env_whitelist entry {pattern!r} is not a variable name or a NAME_* "
                    "prefix (a bare '*' would pass every host secret through)",
                    field="env_whitelist",
                )
        check_env(self.env, "env")
        if not self.shell or any(not part or "\0" in part for part in self.shell):
            raise InvalidSandboxSpec(
                "shell must be a non-empty argv without empty or NUL arguments", field="shell"
            )


StreamName = Literal["stdout", "stderr"]


class OutputChunk(Struct, frozen=True):
    """Output as the command produced it (decoded as UTF-8, never split in a character).

    Chunks cover the first `output_bytes` of each stream; past that one chunk carries the
    truncation notice and the rest is not streamed (the `ExecResult` keeps the tail).
    """

    stream: StreamName
    text: str


OutputCallback = Callable[[OutputChunk], Awaitable[None]]


class ExecResult(Struct, frozen=True, kw_only=True):
    """How an exec ended."""

    exit_code: int
    """The command's exit status; 128+N when a signal N ended it (as a shell reports it),
    so a timed-out command reports 137 (SIGKILL); 127 when the command does not exist."""
    stdout: str
    """Decoded as UTF-8 (bytes that are not UTF-8 become U+FFFD), capped as described."""
    stderr: str
    duration: float
    """Wall-clock seconds from start to the end of its output."""
    timed_out: bool = False
    """The wall-clock timeout expired and the process group was killed."""
    truncated: bool = False
    """stdout or stderr was longer than `output_bytes`; the text holds a marker."""
    killed_by_limit: str | None = None
    """The limit that ended the command, when one did: "cpu_seconds", "file_size_bytes",
    "memory_bytes", "pids" (the wall-clock timeout is `timed_out`)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


FileKind = Literal["file", "directory", "symlink", "other"]


class FileStat(Struct, frozen=True, kw_only=True):
    """One file or directory of the workspace."""

    path: str
    """Relative to the workspace root, "/"-separated ("." for the root)."""
    kind: FileKind
    size: int
    mode: int
    """Permission bits (0o644)."""
    modified: datetime
    """Last modification, timezone-aware (UTC)."""


class Capabilities(Struct, frozen=True, kw_only=True):
    """What an adapter really enforces. Every flag defaults to False: an adapter claims
    only what it does, and a flag added later is False for adapters that predate it."""

    isolates_filesystem: bool = False
    """Commands see only the system (read-only), the workspace and the read-only mounts;
    the host's other files (home directories, keys, other workspaces) are invisible."""
    enforces_read_only: bool = False
    """System directories and `read_only_mounts` cannot be written, even by root."""
    remaps_mounts: bool = False
    """A `ReadOnlyMount` may appear at a `target` other than its `source`."""
    isolates_network: bool = False
    """`network: none` really cuts commands off, the host's loopback included."""
    network_modes: frozenset[NetworkMode] = frozenset()
    """The modes `open()` accepts. Without `isolates_network` the mode is not enforced."""
    isolates_processes: bool = False
    """Commands cannot see or signal processes outside the sandbox (a pid namespace)."""
    kills_process_tree: bool = False
    """Timeouts and `close()` also kill processes that left the process group or session
    (a double-forked daemon); without it only the group and its descendants die."""
    enforces_rlimits: bool = False
    """The per-process `SandboxLimits` rlimits apply."""
    enforces_memory_limit: bool = False
    """`SandboxLimits.memory_bytes` caps the whole tree (cgroups)."""
    enforces_pids_limit: bool = False
    """`SandboxLimits.pids` caps the whole tree, root included (cgroups)."""
    enforces_disk_limit: bool = False
    """`SandboxLimits.disk_bytes` caps the sandbox's own filesystem (a storage quota)."""
    layered_writes: bool = False
    """Writes land in a layer, not in the workspace, until `LayeredSandbox.merge()`."""

    def missing(self, required: Collection[str]) -> list[str]:
        """The flags in `required` that this adapter does not have, in order."""
        unknown = [name for name in required if name not in self.__struct_fields__]
        if unknown:
            raise ValueError(f"unknown capability flags: {', '.join(unknown)}")
        return [name for name in required if getattr(self, name) is not True]

    def refusals(self, spec: SandboxSpec) -> list[str]:
        """Why an adapter with these capabilities must refuse `spec` (empty: it may open it)."""
        reasons = []
        if spec.network not in self.network_modes:
            accepted = ", ".join(sorted(self.network_modes)) or "none at all"
            reasons.append(f"network mode {spec.network.value!r} (accepted: {accepted})")
        limits = spec.limits
        if not self.enforces_rlimits:
            reasons.extend(f"limits.{n}" for n in RLIMITS if getattr(limits, n) is not None)
        if limits.memory_bytes is not None and not self.enforces_memory_limit:
            reasons.append("limits.memory_bytes (a tree-wide memory limit needs cgroups)")
        if limits.pids is not None and not self.enforces_pids_limit:
            reasons.append("limits.pids (a pids limit that binds root needs cgroups)")
        if limits.disk_bytes is not None and not self.enforces_disk_limit:
            reasons.append("limits.disk_bytes (a storage quota the storage driver enforces)")
        if not self.remaps_mounts:
            reasons.extend(
                f"a read-only mount of {m.source} at another path ({m.target})"
                for m in spec.read_only_mounts
                if m.target and m.target != m.source
            )
        return reasons


def truncation_marker(omitted: int, total: int) -> str:
    """The line that stands where output was cut: the head before it, the tail after."""
    return f"\n[output truncated: {omitted} of {total} bytes omitted]\n"


def check_env(env: Mapping[str, str], where: str) -> None:
    """Raise InvalidSandboxSpec unless every name is a variable name and no value holds NUL."""
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            raise InvalidSandboxSpec(f"{where}: {name!r} is not a variable name", field=where)
        if "\0" in value:
            raise InvalidSandboxSpec(f"{where}: the value of {name} holds a NUL", field=where)


def _require_absolute(path: str, where: str) -> None:
    if not path.startswith("/") or "\0" in path:
        raise InvalidSandboxSpec(f"{where} must be an absolute path: {path!r}", field=where)


# ---------------------------------------------------------------------------- ports


class Sandbox(Protocol):
    """One open sandbox over one workspace. Safe to use from concurrent tasks: execs may
    run at once, and file operations may run while commands do (see each adapter's
    documentation for what a command racing a file operation can and cannot do).

    Paths (`path`, `cwd`) are relative to the workspace root, "/"-separated; "." is the
    root. See the module docstring for the guarantees; after `close()` every operation
    raises `SandboxClosed`.
    """

    @property
    def kind(self) -> str:
        """The adapter's name: "mount", "bwrap", "docker", "hybrid"."""
        ...

    @property
    def spec(self) -> SandboxSpec: ...

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def workdir(self) -> str:
        """The workspace root as commands see it ("/workspace" under bwrap)."""
        ...

    async def exec(
        self,
        command: Sequence[str] | str,
        *,
        cwd: str = ".",
        env: Mapping[str, str] | None = None,
        # The adapter's own timeout kills the process group and still returns the result
        # (output so far, timed_out=True); a caller's cancel scope could do neither.
        timeout: float | None = None,  # noqa: ASYNC109
        stdin: bytes | str | None = None,
        on_output: OutputCallback | None = None,
    ) -> ExecResult:
        """Run `command` (an argv, or a string for `spec.shell`) in `cwd` and wait for it.

        `env` adds to (and overrides) the scrubbed environment for this call only;
        `timeout` (seconds) overrides `spec.limits.timeout`; `stdin` is written to the
        command's standard input, which is then closed (without it the input is empty).
        Raises PathEscape / SandboxPathNotFound / WrongFileType for a bad `cwd`,
        InvalidSandboxSpec for a bad `env` or an empty argv, SandboxClosed after close().
        """
        ...

    async def read_file(self, path: str) -> bytes:
        """The file's content. A directory raises WrongFileType."""
        ...

    async def write_file(self, path: str, data: bytes | str) -> None:
        """Create or replace the file (str is written as UTF-8), creating missing parent
        directories. Readers never see a half-written file: the content is written aside
        and renamed into place, keeping an existing file's permission bits."""
        ...

    async def list_dir(self, path: str = ".") -> list[FileStat]:
        """The directory's entries, sorted by name, symbolic links not followed."""
        ...

    async def delete(self, path: str, *, recursive: bool = False) -> None:
        """Remove a file, a symbolic link (not its target) or an empty directory; with
        `recursive`, a directory and everything in it. The root cannot be deleted."""
        ...

    async def stat(self, path: str) -> FileStat:
        """The file or directory at `path`, symbolic links followed (inside the workspace)."""
        ...

    async def close(self) -> None:
        """Kill every exec still running, release what the sandbox holds. Idempotent."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class SandboxFactory(Protocol):
    """Opens sandboxes of one kind."""

    @property
    def kind(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    async def check(self) -> None:
        """Return if this adapter can open sandboxes on this machine, else raise
        SandboxUnavailable saying why and how to fix it. Cheap after the first call
        (adapters probe once and remember the answer)."""
        ...

    async def start(self) -> None:
        """Begin what the factory keeps for the process's life (docker's warm pool);
        called once at start for the kind runs use, after `check()`. Idempotent; nothing
        to do for most kinds."""
        ...

    async def close(self) -> None:
        """Stop what `start()` began and release it (sandboxes still open are their
        owners' to close). Idempotent."""
        ...

    async def open(self, spec: SandboxSpec) -> Sandbox:
        """Open a sandbox for `spec.workspace`.

        Raises SandboxUnsupported when `capabilities.refusals(spec)` is not empty,
        SandboxPathNotFound / WrongFileType when the workspace (or a read-only mount's
        source) is missing or not a directory, SandboxUnavailable when the adapter cannot
        run here.
        """
        ...


ChangeKind = Literal["added", "modified", "deleted"]


class LayerChange(Struct, frozen=True, kw_only=True):
    """One path a layer changes in the workspace."""

    path: str
    """Relative to the workspace root, "/"-separated."""
    change: ChangeKind
    """`modified` covers content, permission bits and kind (a file that became a link)."""
    kind: FileKind
    """What the path is in the layer; for a deletion, what it was in the workspace."""
    mode: int | None = None
    """Permission bits in the layer (None for a deletion)."""
    old_mode: int | None = None
    """Permission bits in the workspace before (None for an addition)."""


class LayerDiff(Struct, frozen=True, kw_only=True):
    """What a layer changes: every path, and a unified diff of the text among them."""

    changes: tuple[LayerChange, ...] = ()
    """Sorted by path. A deleted directory is listed with everything it held."""
    patch: str = ""
    """`git diff`-style unified diff (`a/` and `b/` prefixes) of the files that are text
    before and after; binary and very large files appear as a "Binary files ... differ"
    line, links as their target text."""
    conflicts: tuple[str, ...] = ()
    """Paths the layer changed that the host also changed since the layer began: while
    any remain, `merge()` refuses. They are not in `changes`."""
    skipped: tuple[str, ...] = ()
    """Special files (fifos, sockets, devices) in the layer, which are never merged."""

    @property
    def added(self) -> tuple[str, ...]:
        return tuple(c.path for c in self.changes if c.change == "added")

    @property
    def modified(self) -> tuple[str, ...]:
        return tuple(c.path for c in self.changes if c.change == "modified")

    @property
    def deleted(self) -> tuple[str, ...]:
        return tuple(c.path for c in self.changes if c.change == "deleted")

    @property
    def empty(self) -> bool:
        return not self.changes


@runtime_checkable
class LayeredSandbox(Sandbox, Protocol):
    """A sandbox whose writes land in a layer (`Capabilities.layered_writes`): the hybrid
    adapter; runtime-checkable, so a caller holding a `Sandbox` can ask `isinstance`.
    Commands and file operations see the workspace with the layer on top; the workspace
    itself changes only in `merge()`.

    The layer begins at `open()` and again after every merge or discard; "the workspace
    as the layer began" is the base a merge compares the host against.
    """

    async def changes(self) -> LayerDiff:
        """What `merge()` would apply now. Reads only; may run while commands do."""
        ...

    async def merge(self) -> LayerDiff:
        """Apply the layer to the workspace, all or nothing, and return what was applied.

        Additions, edits, deletions, kind and permission changes (setuid, setgid and
        sticky bits are dropped) land together: if any step fails, every step already
        taken is undone before the error propagates, and a merge interrupted by a crash
        is undone when the next hybrid sandbox opens the workspace. Symbolic links in the
        layer are merged as links, never followed; nothing is written outside the
        workspace. Afterwards the layer is empty.

        Raises MergeConflict (nothing written) when a path the layer changes was also
        changed on the host since the layer began, naming every such path; LayerBusy
        while an exec or file operation runs; SandboxClosed after close().
        """
        ...

    async def discard(self) -> None:
        """Drop every change in the layer; the workspace is left as it is.

        Raises LayerBusy while an exec or file operation runs."""
        ...
