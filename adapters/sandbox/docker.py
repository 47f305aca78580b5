"""The docker sandbox: one long-lived container per sandbox, one `docker exec` per command.

`open()` creates and starts a container (the docker SDK) that idles under docker's init
until `close()` removes it. What a command gets:

- a read-only root filesystem from the configured image, plus `system_mounts` (host
  directories bound read-only, for an image that is an empty rootfs: the test image);
- the workspace bound read-write at /workspace (its cwd), `read_only_mounts` read-only
  at their targets, a private HOME (/home/sandbox) and /tmp that persist across the execs
  of one sandbox (host scratch directories, removed on close);
- cgroup limits on the whole container: memory (default 512 MB, swap included), 1 CPU,
  pids (default 100, root included); per-process rlimits as docker ulimits;
- every capability dropped and `no-new-privileges`: root inside cannot remount anything;
- its own pid namespace; network `none` (only its own loopback) or `full` (the host's
  network namespace). `llm` is refused: it needs a proxy-only network not built yet.

Exec runs through the `docker` CLI (`docker exec -i`), not the SDK's attach socket: the
CLI gives separate stdout and stderr pipes, stdin with EOF, and an exit status, so the
host-process machinery (`processes.run`: capped output, streaming, timeouts) is reused
as it is; the cost is one CLI start per exec (~60 ms). Environment values travel as
`-e NAME` with the value in the CLI's own environment, never on a command line (so a
whitelisted `DOCKER_*` variable is read by the CLI too; the engine is always given with
`-H`). Docker's own `HOSTNAME` is unset unless the caller passes one.

Each command runs under a small `sh` wrapper that puts it in a session of its own and,
when it exits, kills that session's process group, so a background child does not keep
the exec (and docker's output streams) open. After every exec (exit, timeout, cancel) and
on `close()` the CLI is killed and the container's processes are killed from the host
(they are host processes in a pid namespace): the exec's wrapper and everything below it,
and every
orphan reparented to the container's init (daemons that double-forked away), which is
why `kills_process_tree` holds. An orphan of another exec running at the same time dies
too: no exec may leave anything behind, and an orphan cannot be told apart.

Needs: a docker engine on this machine (the workspace is a bind mount, and the kills go
through the host's /proc), an image with `/bin/sh` and `setsid` (util-linux or busybox).
A command the memory cgroup kills reports `killed_by_limit="memory_bytes"` (read from
the cgroup's oom_kill counter, v1 or v2). Storage quotas and a warm pool are not
implemented.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from adapters.sandbox import processes
from adapters.sandbox.environment import sandbox_environment
from adapters.sandbox.host import (
    HostSandbox,
    Launch,
    Scratch,
    check_mount_sources,
    refuse_unsupported,
)
from adapters.sandbox.paths import Workspace
from codeforge.ports.sandbox import (
    Capabilities,
    ExecResult,
    NetworkMode,
    OutputCallback,
    SandboxError,
    SandboxSpec,
    SandboxUnavailable,
)

KIND = "docker"
WORKDIR = "/workspace"
HOME = "/home/sandbox"
TMP = "/tmp"  # noqa: S108 - the container's own /tmp, bound to the sandbox's scratch
LABEL = "codeforge.sandbox"
OWNER_LABEL = "codeforge.sandbox.owner"
DEFAULT_IMAGE = "debian:bookworm-slim"
DEFAULT_MEMORY = 512 * 1024 * 1024
DEFAULT_CPUS = 1.0
DEFAULT_PIDS = 100
FIXES = "start a docker engine (and set docker_host), or set sandbox.kind to bwrap or mount"
# The command runs as a background job (not a group leader), so `setsid` makes it a
# session of its own without forking: $! is its session and group id. Input goes through
# fd 3 because a background job's stdin is /dev/null otherwise.
WRAPPER = (
    'if ! command -v -- "$1" >/dev/null 2>&1; then '
    'printf "%s: command not found\\n" "$1" >&2; exit 127; fi; '
    'exec 3<&0; setsid "$@" <&3 3<&- & c=$!; wait $c; rc=$?; '
    "kill -9 -$c 2>/dev/null; exit $rc"
)


def process_start(pid: int) -> str:
    """The start time of `pid` (clock ticks since boot), "" when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def owner_label() -> str:
    """Who owns a container: host, pid and the pid's start time (pids are reused)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid)}"


def is_orphan(owner: str) -> bool:
    """Whether a container labelled `owner` belongs to a process of this host that is gone."""
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return process_start(int(pid)) != started


def kill_pids(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def pids_with_marker(marker: bytes, namespace: str) -> set[int]:
    """Host pids in the pid namespace `namespace` whose command line holds `marker`."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if marker not in Path(f"/proc/{entry}/cmdline").read_bytes():
                continue
            if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                found.add(int(entry))
        except OSError:
            continue
    return found


def wait_for_idle(init_pid: int, within: float = 5.0) -> int:
    """The host pid of the container's idle process, once docker's init has started it."""
    deadline = time.monotonic() + within
    while True:
        children = processes.descendants(init_pid)
        if len(children) == 1:
            return children.pop()
        if time.monotonic() > deadline:
            raise SandboxUnavailable(
                f"the sandbox container's init has {len(children)} children, expected 1"
            )
        time.sleep(0.01)


def oom_kills(pid: int) -> int | None:
    """How many times the memory cgroup of `pid` killed a process (None: not readable)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            candidates = [f"/sys/fs/cgroup/memory{path}/memory.oom_control"]
            break
        if controllers == "":
            candidates = [f"/sys/fs/cgroup{path}/memory.events"]
    else:
        return None
    for candidate in candidates:
        try:
            text = Path(candidate).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    return None


class DockerSandbox(HostSandbox):
    def __init__(
        self,
        *,
        docker_cli: list[str],
        container: Any,
        init_pid: int,
        idle_pid: int,
        namespace: str,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self._cli = docker_cli
        self._container = container
        self._init_pid = init_pid
        self._idle_pid = idle_pid
        self._namespace = namespace
        self._markers: set[bytes] = set()

    def _launch(
        self, argv: list[str], cwd: tuple[str, ...], environment: Mapping[str, str]
    ) -> Launch:
        marker = f"codeforge-exec-{secrets.token_hex(8)}"
        wrapper = WRAPPER if "HOSTNAME" in environment else "unset HOSTNAME; " + WRAPPER
        host_argv = [
            *self._cli,
            "exec",
            "-i",
            "-w",
            "/".join((WORKDIR, *cwd)),
            *(option for name in environment for option in ("-e", name)),
            self._container.id,
            "/bin/sh",
            "-c",
            # docker puts the container's HOSTNAME in every exec's environment.
            wrapper,
            marker,
            *argv,
        ]
        return Launch(host_argv, "/", marker)

    async def _run(
        self,
        launch: Launch,
        environment: Mapping[str, str],
        timeout: float,  # noqa: ASYNC109 - a duration handed to processes.run
        stdin: bytes | str | None,
        on_output: OutputCallback | None,
    ) -> ExecResult:
        marker = launch.marker.encode()
        self._markers.add(marker)
        ooms = oom_kills(self._init_pid)
        try:
            result = await super()._run(launch, environment, timeout, stdin, on_output)
        finally:
            self._markers.discard(marker)
            self._kill_leftovers(marker)
        if result.exit_code == 137 and not result.timed_out and ooms is not None:
            after = oom_kills(self._init_pid)
            if after is not None and after > ooms:
                # Another exec of this sandbox may have been the one killed at the same
                # moment; the cgroup does not say whose process it chose.
                return msgspec.structs.replace(result, killed_by_limit="memory_bytes")
        return result

    def _finish(self, argv: list[str], result: ExecResult) -> ExecResult:
        if result.exit_code == 125 and "Error response from daemon" in result.stderr:
            raise SandboxError(f"docker could not run the command: {result.stderr.strip()}")
        return result

    def _kill_leftovers(self, marker: bytes) -> None:
        """Kill the exec's processes in the container, and every orphan of init's."""
        victims = set()
        for pid in pids_with_marker(marker, self._namespace):
            victims.add(pid)
            victims |= processes.descendants(pid)
        victims |= processes.descendants(self._init_pid) - {self._idle_pid}
        kill_pids(victims)

    async def close(self) -> None:
        if self._closed:
            return
        for marker in list(self._markers):
            self._kill_leftovers(marker)
        await super().close()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._container.remove, force=True)


class DockerSandboxFactory:
    """Opens docker sandboxes.

    `docker_host` is the engine's URL (None: $DOCKER_HOST or the default socket);
    `image` the image commands run in; `system_mounts` host paths bound read-only at the
    same path (for an image that is an empty rootfs); `memory_bytes`, `cpus`, `pids` the
    defaults when a spec does not set `memory_bytes` or `pids`; `docker_cli` the CLI's
    path; `host_env` replaces this process's environment as the whitelist's source.
    `check()` pings the engine once, removes orphans of crashed processes, and
    remembers the answer.
    """

    kind = KIND

    def __init__(
        self,
        *,
        docker_host: str | None = None,
        image: str = DEFAULT_IMAGE,
        system_mounts: Sequence[str] = (),
        memory_bytes: int = DEFAULT_MEMORY,
        cpus: float = DEFAULT_CPUS,
        pids: int = DEFAULT_PIDS,
        docker_cli: str | None = shutil.which("docker"),
        host_env: Mapping[str, str] | None = None,
    ) -> None:
        self._docker_host = docker_host or os.environ.get("DOCKER_HOST")
        self._image = image
        self._system_mounts = tuple(system_mounts)
        self._memory = memory_bytes
        self._cpus = cpus
        self._pids = pids
        self._docker_cli = docker_cli
        self._host_env = host_env
        self._client: Any = None
        self._problem: str | None = None
        self._probed = False
        self._probe_lock = asyncio.Lock()
        self.capabilities = Capabilities(
            isolates_filesystem=True,
            enforces_read_only=True,
            remaps_mounts=True,
            isolates_network=True,
            network_modes=frozenset({NetworkMode.NONE, NetworkMode.FULL}),
            isolates_processes=True,
            kills_process_tree=True,
            enforces_rlimits=True,
            enforces_memory_limit=True,
            enforces_pids_limit=True,
        )

    async def check(self) -> None:
        async with self._probe_lock:
            if not self._probed:
                self._problem = await asyncio.to_thread(self._probe)
                self._probed = True
        if self._problem is not None:
            raise SandboxUnavailable(self._problem)

    async def open(self, spec: SandboxSpec) -> DockerSandbox:
        await self.check()
        refuse_unsupported(KIND, self.capabilities, spec)
        check_mount_sources(spec)
        workspace = Workspace(spec.workspace)
        scratch = Scratch(KIND)
        try:
            container, init_pid, idle_pid, namespace = await asyncio.to_thread(
                self._start, spec, workspace, scratch
            )
        except BaseException:
            workspace.close()
            scratch.remove()
            raise
        env = sandbox_environment(
            home=HOME, whitelist=spec.env_whitelist, spec_env=spec.env, host=self._host_env
        )
        assert self._docker_cli is not None  # check() passed
        cli = [self._docker_cli, *(["-H", self._docker_host] if self._docker_host else [])]
        return DockerSandbox(
            docker_cli=cli,
            container=container,
            init_pid=init_pid,
            idle_pid=idle_pid,
            namespace=namespace,
            kind=KIND,
            spec=spec,
            capabilities=self.capabilities,
            workspace=workspace,
            scratch=scratch,
            env=env,
            workdir=WORKDIR,
            rlimits=[],
        )

    # -- engine calls (blocking: run in a worker thread) ---------------------------------

    def _probe(self) -> str | None:
        """Why docker cannot run here, or None when it can; removes orphan containers."""
        if self._docker_cli is None:
            return f"the docker CLI is not installed: {FIXES}"
        try:
            import docker  # type: ignore[import-untyped]

            client = docker.DockerClient(base_url=self._docker_host or None, timeout=30)
            client.ping()
            client.images.get(self._image)
        except Exception as e:
            return f"the docker engine cannot be used ({type(e).__name__}: {e}): {FIXES}"
        self._client = client
        self._remove_orphans()
        return None

    def _remove_orphans(self) -> None:
        for container in self._client.containers.list(all=True, filters={"label": LABEL}):
            if is_orphan(container.labels.get(OWNER_LABEL, "")):
                with contextlib.suppress(Exception):
                    container.remove(force=True)

    def _start(
        self, spec: SandboxSpec, workspace: Workspace, scratch: Scratch
    ) -> tuple[Any, int, int, str]:
        from docker.errors import DockerException  # type: ignore[import-untyped]
        from docker.types import Mount, Ulimit  # type: ignore[import-untyped]

        limits = spec.limits
        mounts = [Mount(path, path, type="bind", read_only=True) for path in self._system_mounts]
        mounts += [
            Mount(WORKDIR, workspace.root, type="bind"),
            Mount(HOME, str(scratch.home), type="bind"),
            Mount(TMP, str(scratch.tmp), type="bind"),
            *(
                Mount(m.path_inside, m.source, type="bind", read_only=True)
                for m in spec.read_only_mounts
            ),
        ]
        ulimits = []
        if limits.cpu_seconds is not None:
            # Soft below hard: SIGXCPU (reported as the cpu limit) before SIGKILL.
            ulimits.append(Ulimit(name="cpu", soft=limits.cpu_seconds, hard=limits.cpu_seconds + 1))
        if limits.file_size_bytes is not None:
            ulimits.append(
                Ulimit(name="fsize", soft=limits.file_size_bytes, hard=limits.file_size_bytes)
            )
        if limits.open_files is not None:
            ulimits.append(Ulimit(name="nofile", soft=limits.open_files, hard=limits.open_files))
        if limits.process_memory_bytes is not None:
            size = limits.process_memory_bytes
            ulimits.append(Ulimit(name="as", soft=size, hard=size))
        memory = limits.memory_bytes or self._memory
        try:
            container = self._client.containers.create(
                self._image,
                ["sleep", "infinity"],
                init=True,
                labels={LABEL: "1", OWNER_LABEL: owner_label()},
                mounts=mounts,
                read_only=True,
                network_mode="host" if spec.network is NetworkMode.FULL else "none",
                mem_limit=memory,
                memswap_limit=memory,
                nano_cpus=int(self._cpus * 1e9),
                pids_limit=limits.pids or self._pids,
                ulimits=ulimits,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                user=f"{os.getuid()}:{os.getgid()}",
                working_dir=WORKDIR,
                environment={
                    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                },
            )
        except DockerException as e:
            raise SandboxUnavailable(f"docker could not create the sandbox container: {e}") from e
        try:
            try:
                container.start()
            except DockerException as e:
                raise SandboxUnavailable(
                    f"docker could not start the sandbox container: {e}"
                ) from e
            container.reload()
            init_pid = int(container.attrs["State"]["Pid"])
            namespace = os.readlink(f"/proc/{init_pid}/ns/pid")
            idle = wait_for_idle(init_pid)
        except OSError as e:
            with contextlib.suppress(Exception):
                container.remove(force=True)
            raise SandboxUnavailable(
                f"the sandbox container's processes are not visible from here ({e}); the "
                f"docker sandbox needs an engine on this machine: {FIXES}"
            ) from e
        except BaseException:
            with contextlib.suppress(Exception):
                container.remove(force=True)
            raise
        return container, init_pid, idle, namespace
