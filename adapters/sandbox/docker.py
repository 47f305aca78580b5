"""The docker sandbox: one long-lived container per sandbox, one `docker exec` per command.

`open()` creates and starts a container (the docker SDK) that idles under docker's init
until `close()` removes it. What a command gets:

- a read-only root filesystem from the configured image, plus `system_mounts` (host
  directories bound read-only, for an image that is an empty rootfs: the test image);
- the workspace bound read-write at /workspace (its cwd), `read_only_mounts` read-only
  at their targets, a private HOME (/home/sandbox) and /tmp that persist across the execs
  of one sandbox: tmpfs of `scratch_bytes` each (default 256 MiB; a write past it fails
  with "No space left on device"), gone with the container;
- cgroup limits on the whole container: memory (default 512 MB, swap included; the
  tmpfs scratch counts), 1 CPU, pids (default 100, root included); per-process rlimits
  as docker ulimits;
- a storage quota on the container's writable layer (`limits.disk_bytes`, or the
  factory's `storage_quota`) through `storage_opt size`, where the storage driver
  enforces one (overlay2 only on xfs with `pquota`; `check()` tries it once): otherwise
  `enforces_disk_limit` is False and a spec asking for it is refused. With the default
  read-only root the layer takes no writes at all; the quota matters with
  `writable_root` (commands may then install packages into the container);
- every capability dropped and `no-new-privileges`: root inside cannot remount anything;
- its own pid namespace; network `none` (only its own loopback), `full` (the host's
  network namespace) or `llm`: `none`, plus the LLM proxy's socket bound in and
  `llm_forwarder.py` as the container's idle process, relaying a port of the
  container's own loopback to it. `llm` needs `python3` in the image (the test image
  has the host's /usr); without one, `open()` refuses the spec saying so.

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
why `kills_process_tree` holds. The exec's tree is stopped (SIGSTOP) before it is
killed, so a child forked during the kill cannot slip away. An exec cancelled before
the engine started its command is watched for `LATE_START_WATCH` seconds and killed
if it starts after all. An orphan of another exec running at the same time dies
too: no exec may leave anything behind, and an orphan cannot be told apart.

Needs: a docker engine on this machine (the workspace is a bind mount, and the kills go
through the host's /proc), an image with `/bin/sh` and `setsid` (util-linux or busybox).
A command the memory cgroup kills reports `killed_by_limit="memory_bytes"` (read from
the cgroup's oom_kill counter, v1 or v2).

Warm pool (`warm_pool` containers per template, `docker_pool.py`): `open()` takes a
started container and binds the workspace into it, instead of creating and starting
one; that needs root (CAP_SYS_ADMIN), and without it every open is cold, as it says.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import structlog

from adapters.sandbox import mounts, processes
from adapters.sandbox.docker_pool import Started, Template, WarmPool, remove_orphan_directories
from adapters.sandbox.environment import SAFE_PATH, sandbox_environment
from adapters.sandbox.host import (
    HostSandbox,
    Launch,
    check_mount_sources,
    refuse_unsupported,
)
from adapters.sandbox.llm_relay import (
    FORWARDER,
    INSIDE_FORWARDER,
    INSIDE_PORT,
    INSIDE_SOCKET,
    check_llm_socket,
    forwarder_argv,
    llm_env,
)
from adapters.sandbox.owners import is_orphan, owner_label, owner_tag, tag_is_gone
from adapters.sandbox.paths import Workspace
from codeforge.ports.sandbox import (
    Capabilities,
    ExecResult,
    NetworkMode,
    OutputCallback,
    SandboxError,
    SandboxSpec,
    SandboxUnavailable,
    SandboxUnsupported,
)

log = structlog.get_logger("codeforge.sandbox")

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
DEFAULT_SCRATCH = 256 * 1024 * 1024
QUOTA_PROBE = "64m"
START_WAIT = 10.0
# How long an exec cancelled before its command started is watched: the docker CLI is
# killed at once, but an exec the engine was already asked to start still starts, later.
LATE_START_WATCH = 10.0
LATE_START_POLL = 0.05
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


def pool_directory(base: str) -> str:
    """This process's warm pool directory under `base`."""
    return os.path.join(base, owner_tag())


def kill_pids(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def freeze_trees(roots: set[int]) -> set[int]:
    """Stop `roots` and everything below them; the stopped pids.

    A process that is stopped cannot fork, so once the walk finds nothing new the set is
    complete: killing a tree found by one /proc scan could miss a child forked between
    the scan and the kill (the wrapper forks the command), and that child would be
    reparented out of reach (docker's shim is a subreaper)."""
    frozen: set[int] = set()
    pending = set(roots)
    while pending:
        for pid in pending:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGSTOP)
        frozen |= pending
        pending = {child for pid in pending for child in processes.descendants(pid)} - frozen
    return frozen


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


class IdleGone(Exception):
    """The container's idle process ended (or never started)."""


def wait_for_idle(init_pid: int, within: float = START_WAIT) -> int:
    """The host pid of the container's idle process, once docker's init has started it."""
    deadline = time.monotonic() + within
    while True:
        children = processes.descendants(init_pid)
        if len(children) == 1:
            return children.pop()
        if not os.path.exists(f"/proc/{init_pid}"):
            raise IdleGone("the container stopped")
        if time.monotonic() > deadline:
            raise SandboxUnavailable(
                f"the sandbox container's init has {len(children)} children, expected 1"
            )
        time.sleep(0.01)


def listening(pid: int, port: int) -> bool:
    """Whether 127.0.0.1:`port` listens in the network namespace of `pid`."""
    local = f"0100007F:{port:04X}"
    try:
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1] == local and line.split()[3] == "0A" for line in lines)


def wait_for_listener(pid: int, port: int, within: float = START_WAIT) -> None:
    deadline = time.monotonic() + within
    while not listening(pid, port):
        if not os.path.exists(f"/proc/{pid}"):
            raise IdleGone("the LLM relay exited")
        if time.monotonic() > deadline:
            raise SandboxUnavailable(f"the LLM relay did not listen within {within:g} s")
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
    def __init__(self, *, docker_cli: list[str], started: Started, **common: Any) -> None:
        super().__init__(**common)
        self._cli = docker_cli
        self._started = started
        self._container = started.container
        self._init_pid = started.init_pid
        self._idle_pid = started.idle_pid
        self._namespace = started.namespace
        self._markers: set[bytes] = set()
        self._late_starts: set[asyncio.Task[None]] = set()

    @property
    def warm(self) -> bool:
        """Whether this sandbox's container came from the warm pool."""
        return self._started.slot is not None

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
        ended = False
        try:
            result = await super()._run(launch, environment, timeout, stdin, on_output)
            ended = not result.timed_out
        finally:
            self._markers.discard(marker)
            found = self._kill_leftovers(marker)
            if not ended and not found:
                # Cancelled or timed out before the engine started the command: it may
                # start yet, with nobody waiting for it.
                self._watch_late_start(marker)
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

    def _kill_leftovers(self, marker: bytes) -> bool:
        """Kill the exec's processes in the container, and every orphan of init's.

        Whether the exec's wrapper was found (it had started and not yet ended)."""
        wrappers = pids_with_marker(marker, self._namespace)
        victims = freeze_trees(wrappers)
        victims |= processes.descendants(self._init_pid) - {self._idle_pid}
        kill_pids(victims)
        return bool(wrappers)

    def _watch_late_start(self, marker: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._kill_late_start(marker))
        self._late_starts.add(task)
        task.add_done_callback(self._late_starts.discard)

    async def _kill_late_start(self, marker: bytes) -> None:
        deadline = time.monotonic() + LATE_START_WATCH
        while time.monotonic() < deadline:
            await asyncio.sleep(LATE_START_POLL)
            if await asyncio.to_thread(self._kill_leftovers, marker):
                log.info("killed an exec that started after it was abandoned")
                return

    async def close(self) -> None:
        if self._closed:
            return
        for task in list(self._late_starts):
            task.cancel()  # removing the container ends whatever they watch for
        for marker in list(self._markers):
            self._kill_leftovers(marker)
        await super().close()
        await asyncio.to_thread(remove_started, self._started)


def remove_started(started: Started) -> None:
    """Remove a container (and unbind and remove its pool slot); never raises."""
    with contextlib.suppress(Exception):
        started.container.remove(force=True)
    if started.slot is not None:
        mounts.unmount_all_under(started.slot)
        mounts.remove_empty_directories(started.slot)


class DockerSandboxFactory:
    """Opens docker sandboxes.

    `docker_host` is the engine's URL (None: $DOCKER_HOST or the default socket);
    `image` the image commands run in; `system_mounts` host paths bound read-only at the
    same path (for an image that is an empty rootfs); `memory_bytes`, `cpus`, `pids` the
    defaults when a spec does not set `memory_bytes` or `pids`; `scratch_bytes` the size
    of each of /tmp and HOME; `storage_quota` the writable layer's quota when a spec
    sets no `disk_bytes` (None: none); `writable_root` lets commands write the
    container's root filesystem (the image's files: installs); `warm_pool` how many
    started containers to keep per template (0: none) and `pool_directory` where their
    slots live; `docker_cli` the CLI's path; `host_env` replaces this process's
    environment as the whitelist's source.

    `check()` pings the engine once, removes the containers and pool slots of crashed
    processes, tries a storage quota (which settles `capabilities.enforces_disk_limit`),
    and remembers the answer. `start()` starts the warm pool, `close()` removes it.
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
        scratch_bytes: int = DEFAULT_SCRATCH,
        storage_quota: int | None = None,
        writable_root: bool = False,
        warm_pool: int = 0,
        pool_directory: str | None = None,
        docker_cli: str | None = shutil.which("docker"),
        host_env: Mapping[str, str] | None = None,
    ) -> None:
        self._docker_host = docker_host or os.environ.get("DOCKER_HOST")
        self._image = image
        self._system_mounts = tuple(system_mounts)
        self._memory = memory_bytes
        self._cpus = cpus
        self._pids = pids
        self._scratch = scratch_bytes
        self._quota = storage_quota or None
        self._writable_root = writable_root
        self._pool_size = warm_pool
        self._pool_base = os.path.realpath(
            pool_directory or os.path.join(tempfile.gettempdir(), "codeforge-docker-pool")
        )
        self._pool: WarmPool | None = None
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
            network_modes=frozenset(NetworkMode),
            isolates_processes=True,
            kills_process_tree=True,
            enforces_rlimits=True,
            enforces_memory_limit=True,
            enforces_pids_limit=True,
        )
        self.quota_problem: str | None = None
        """Why the storage driver cannot enforce a quota (None: it can, or not probed)."""

    @property
    def pool(self) -> WarmPool | None:
        """The warm pool, once `start()` made one (its `problem` says if it is unused)."""
        return self._pool

    async def check(self) -> None:
        async with self._probe_lock:
            if not self._probed:
                self._problem = await asyncio.to_thread(self._probe)
                self._probed = True
        if self._problem is not None:
            raise SandboxUnavailable(self._problem)

    async def start(self) -> None:
        """Start the warm pool (when `warm_pool` > 0), filling it in the background."""
        if self._pool_size < 1 or self._pool is not None:
            return
        await self.check()
        self._pool = WarmPool(
            size=self._pool_size,
            directory=pool_directory(self._pool_base),
            create=lambda template, slot: self._start(template, slot, slot=True),
            remove=remove_started,
        )
        default = Template.of(SandboxSpec(workspace="/"))
        await self._pool.start([default])

    async def close(self) -> None:
        """Remove the warm pool's containers (open sandboxes are closed by their owners)."""
        if self._pool is not None:
            await self._pool.close()

    async def open(self, spec: SandboxSpec) -> DockerSandbox:
        await self.check()
        refuse_unsupported(KIND, self.capabilities, spec)
        check_mount_sources(spec)
        check_llm_socket(spec)
        workspace = Workspace(spec.workspace)
        template = Template.of(spec)
        try:
            started = await self._take_warm(template, workspace)
            if started is None:
                started = await asyncio.to_thread(self._start, template, workspace.root)
        except BaseException:
            workspace.close()
            raise
        env = sandbox_environment(
            home=HOME,
            whitelist=spec.env_whitelist,
            spec_env=spec.env,
            extra_base=llm_env(spec),
            host=self._host_env,
        )
        assert self._docker_cli is not None  # check() passed
        cli = [self._docker_cli, *(["-H", self._docker_host] if self._docker_host else [])]
        return DockerSandbox(
            docker_cli=cli,
            started=started,
            kind=KIND,
            spec=spec,
            capabilities=self.capabilities,
            workspace=workspace,
            scratch=None,
            env=env,
            workdir=WORKDIR,
            rlimits=[],
        )

    async def _take_warm(self, template: Template, workspace: Workspace) -> Started | None:
        """A pooled container with the workspace bound in, or None (open cold)."""
        if self._pool is None:
            return None
        started = self._pool.take(template)
        if started is None:
            return None
        try:
            await asyncio.to_thread(attach_workspace, started, workspace)
        except OSError as e:
            await asyncio.to_thread(remove_started, started)
            if e.errno in (errno.EPERM, errno.EACCES, errno.EXDEV, errno.EINVAL):
                # It cannot work for the next one either: stop trying.
                self._pool.disable(
                    f"binding a workspace into a pooled container failed ({e}); opens are cold"
                )
            else:  # this container is gone (its process ended): open cold this once
                log.warning("docker warm pool: a pooled container was unusable", error=str(e))
            return None
        return started

    # -- engine calls (blocking: run in a worker thread) ---------------------------------

    def _probe(self) -> str | None:
        """Why docker cannot run here, or None when it can; removes orphans."""
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
        self.quota_problem = self._probe_quota()
        if self.quota_problem is None:
            self.capabilities = msgspec.structs.replace(self.capabilities, enforces_disk_limit=True)
        elif self._quota is not None:
            return (
                f"a storage quota is configured (sandbox.docker_storage_quota), but "
                f"{self.quota_problem}: set it to 0, or give docker a storage driver that "
                "enforces quotas (overlay2 on xfs mounted with pquota)"
            )
        return None

    def _probe_quota(self) -> str | None:
        """Why the storage driver cannot enforce `storage_opt size` (None: it can)."""
        from docker.errors import APIError  # type: ignore[import-untyped]

        try:
            probe = self._client.containers.create(
                self._image,
                ["true"],
                labels={LABEL: "1", OWNER_LABEL: owner_label()},
                storage_opt={"size": QUOTA_PROBE},
                network_mode="none",
            )
        except APIError as e:
            driver = self._client.info().get("Driver", "?")
            return f"the storage driver {driver} cannot enforce a quota ({e.explanation or e})"
        with contextlib.suppress(Exception):
            probe.remove(force=True)
        return None

    def _remove_orphans(self) -> None:
        for container in self._client.containers.list(all=True, filters={"label": LABEL}):
            if is_orphan(container.labels.get(OWNER_LABEL, "")):
                with contextlib.suppress(Exception):
                    container.remove(force=True)
        remove_orphan_directories(self._pool_base, tag_is_gone)

    def _start(self, template: Template, source: str, *, slot: bool = False) -> Started:
        """Create and start a container whose /workspace is `source` (a pool slot, bound
        with rslave propagation, when `slot`)."""
        from docker.errors import DockerException
        from docker.types import Mount  # type: ignore[import-untyped]

        limits = template.limits
        llm = template.network is NetworkMode.LLM
        mounts_ = [Mount(path, path, type="bind", read_only=True) for path in self._system_mounts]
        mounts_ += [
            Mount(WORKDIR, source, type="bind", propagation="rslave" if slot else None),
            *(
                Mount(m.path_inside, m.source, type="bind", read_only=True)
                for m in template.read_only_mounts
            ),
        ]
        if llm:
            mounts_ += [
                Mount(INSIDE_FORWARDER, FORWARDER, type="bind", read_only=True),
                Mount(INSIDE_SOCKET, template.llm_socket, type="bind", read_only=True),
            ]
        memory = limits.memory_bytes or self._memory
        quota = limits.disk_bytes or self._quota
        uid, gid = os.getuid(), os.getgid()
        try:
            container = self._client.containers.create(
                self._image,
                forwarder_argv("python3") if llm else ["sleep", "infinity"],
                init=True,
                labels={LABEL: "1", OWNER_LABEL: owner_label()},
                mounts=mounts_,
                tmpfs={
                    TMP: f"size={self._scratch},mode=1777,exec",
                    HOME: f"size={self._scratch},mode=700,uid={uid},gid={gid},exec",
                },
                read_only=not self._writable_root,
                network_mode="host" if template.network is NetworkMode.FULL else "none",
                mem_limit=memory,
                memswap_limit=memory,
                nano_cpus=int(self._cpus * 1e9),
                pids_limit=limits.pids or self._pids,
                ulimits=ulimits(limits),
                storage_opt={"size": str(quota)} if quota else None,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                user=f"{uid}:{gid}",
                working_dir=WORKDIR,
                environment={"PATH": SAFE_PATH},
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
            if init_pid == 0:
                raise IdleGone("the container exited at once")
            try:
                namespace = os.readlink(f"/proc/{init_pid}/ns/pid")
            except FileNotFoundError as e:
                container.reload()
                if container.status != "running":
                    raise IdleGone("the container exited at once") from e
                raise
            idle = wait_for_idle(init_pid)
            if llm:
                wait_for_listener(idle, INSIDE_PORT)
        except IdleGone as e:
            logs = _logs(container)
            with contextlib.suppress(Exception):
                container.remove(force=True)
            if llm:
                raise SandboxUnsupported(
                    f"network 'llm' needs python3 in the image {self._image} to run the "
                    f"LLM relay, and it did not start ({e}: {logs}); use an image with "
                    "python3, or network none or full",
                    field="network",
                ) from e
            raise SandboxUnavailable(f"the sandbox container stopped at once: {logs}") from e
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
        return Started(container, init_pid, idle, namespace, source if slot else None)


def attach_workspace(started: Started, workspace: Workspace) -> None:
    """Bind `workspace` onto a pooled container's slot; check the container sees it."""
    assert started.slot is not None
    mounts.bind(workspace.root, started.slot)
    try:
        seen = os.stat(f"/proc/{started.idle_pid}/root{WORKDIR}")
        real = os.fstat(workspace.fd)
        if (seen.st_dev, seen.st_ino) != (real.st_dev, real.st_ino):
            raise OSError(
                errno.EXDEV,
                "the bind did not propagate into the container (its /workspace is not "
                "the workspace)",
            )
    except BaseException:
        mounts.unmount_all_under(started.slot)
        raise


def ulimits(limits: Any) -> list[Any]:
    """The spec's per-process limits as docker ulimits."""
    from docker.types import Ulimit

    found = []
    if limits.cpu_seconds is not None:
        # Soft below hard: SIGXCPU (reported as the cpu limit) before SIGKILL.
        found.append(Ulimit(name="cpu", soft=limits.cpu_seconds, hard=limits.cpu_seconds + 1))
    if limits.file_size_bytes is not None:
        size = limits.file_size_bytes
        found.append(Ulimit(name="fsize", soft=size, hard=size))
    if limits.open_files is not None:
        found.append(Ulimit(name="nofile", soft=limits.open_files, hard=limits.open_files))
    if limits.process_memory_bytes is not None:
        size = limits.process_memory_bytes
        found.append(Ulimit(name="as", soft=size, hard=size))
    return found


def _logs(container: Any) -> str:
    try:
        text = container.logs(stdout=True, stderr=True).decode(errors="replace").strip()
    except Exception:
        return "no logs"
    return text[-500:] or "no output"
