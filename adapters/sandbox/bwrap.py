"""The bwrap sandbox: each command in fresh Linux namespaces, through bubblewrap.

Each exec runs `bwrap <options> -- command` (a few milliseconds of overhead). What the
command gets:

- a read-only system: /usr bound read-only, /bin /sbin /lib /lib64 as they are on the
  host (symbolic links into /usr on merged-/usr systems, read-only binds otherwise), and
  a short list of /etc entries (users, name resolution, certificates, the dynamic
  linker's cache, alternatives; not the whole of /etc: /etc/shadow and service secrets
  stay out);
- the workspace read-write at /workspace (its cwd), `read_only_mounts` read-only at
  their targets, a private HOME (/home/sandbox) and /tmp that persist across the execs of
  one sandbox and vanish on close, a fresh /proc and a minimal /dev;
- new user, pid, network, IPC, UTS and cgroup namespaces (`--unshare-all`), every
  capability dropped (`--cap-drop ALL`: root inside cannot remount /usr writable), its
  own session (`--new-session`: no TIOCSTI into CodeForge's terminal), and
  `--die-with-parent`: killing bwrap kills the namespace's init, and with it every
  process in the namespace, daemons included;
- network `none`: an empty network namespace (only its own loopback; the host's
  127.0.0.1 is another interface); `full`: the host's network (`--share-net`); `llm`: the
  empty namespace, the LLM proxy's socket bound in read-only, and `llm_forwarder.py`
  (run by the host's python3, which the sandbox sees in /usr) relaying a port of the
  namespace's loopback to it for the one exec (about 12 ms more per exec). Without a
  python3 in /usr, `llm` is refused.

What it does not do: limit memory or process counts of the tree (no cgroups: RLIMIT_NPROC
does not bind root, so `memory_bytes` and `pids` are refused), filter system calls
(no seccomp profile), or hide the kernel (a kernel exploit escapes every namespace).
The workspace itself is the host's directory: what a command writes there is written.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

from adapters.sandbox.environment import sandbox_environment
from adapters.sandbox.host import (
    HostSandbox,
    Launch,
    Scratch,
    check_mount_sources,
    refuse_unsupported,
)
from adapters.sandbox.llm_relay import (
    FORWARDER,
    INSIDE_FORWARDER,
    INSIDE_SOCKET,
    check_llm_socket,
    forwarder_argv,
    llm_env,
)
from adapters.sandbox.paths import Workspace
from adapters.sandbox.processes import rlimit_argv
from codeforge.ports.sandbox import (
    Capabilities,
    ExecResult,
    NetworkMode,
    SandboxError,
    SandboxSpec,
    SandboxUnavailable,
)

KIND = "bwrap"
WORKDIR = "/workspace"
HOME = "/home/sandbox"
# The sandbox's own /tmp: a bind of the sandbox's private scratch directory, not the host's.
TMP = "/tmp"  # noqa: S108
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
ETC_ENTRIES = (
    "alternatives", "bash.bashrc", "ca-certificates", "ca-certificates.conf", "gai.conf",
    "gitconfig", "group", "host.conf", "hostname", "hosts", "inputrc", "ld.so.cache",
    "ld.so.conf", "ld.so.conf.d", "locale.alias", "localtime", "mime.types", "nsswitch.conf",
    "os-release", "passwd", "profile", "protocols", "resolv.conf", "services", "ssl",
    "timezone",
)  # fmt: skip
PROBE_TIMEOUT = 10.0
FIXES = (
    "install bubblewrap (`apt-get install bubblewrap`, or scripts/install-test-system-deps.sh), "
    "or set sandbox.kind to docker (isolated) or mount (no isolation)"
)


def system_options(etc_entries: Sequence[str] = ETC_ENTRIES) -> list[str]:
    """bwrap options that show this machine's system read-only, as it is laid out here."""
    options: list[str] = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            options += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            options += ["--ro-bind", path, path]
    for name in etc_entries:
        path = f"/etc/{name}"
        if os.path.exists(path):
            options += ["--ro-bind", path, path]
    return options


def system_python() -> str | None:
    """The host's python3 where a sandbox sees it (in /usr or /bin), or None."""
    for path in ("/usr/bin/python3", "/bin/python3"):
        if os.access(path, os.X_OK):
            return path
    return None


def namespace_options(network: NetworkMode) -> list[str]:
    options = ["--die-with-parent", "--new-session", "--unshare-all", "--cap-drop", "ALL"]
    if network is NetworkMode.FULL:
        options.append("--share-net")
    return options


class BwrapSandbox(HostSandbox):
    def __init__(self, *, prefix: list[str], forwarder: list[str], **common: Any) -> None:
        super().__init__(**common)
        self._prefix = prefix
        self._forwarder = forwarder

    def _launch(
        self, argv: list[str], cwd: tuple[str, ...], environment: Mapping[str, str]
    ) -> Launch:
        inside = "/".join((WORKDIR, *cwd))
        # bwrap's own cwd does not matter (the command gets --chdir); "/" keeps it from
        # pinning any directory of the workspace.
        command = [*self._forwarder, "--", *argv] if self._forwarder else argv
        return Launch([*self._prefix, "--chdir", inside, "--", *command], "/")

    def _finish(self, argv: list[str], result: ExecResult) -> ExecResult:
        if result.exit_code != 1 or not result.stderr.startswith("bwrap: "):
            return result
        # bwrap itself failed (it exits 1 and says "bwrap: ..."): a missing or
        # non-executable command is the command's failure, as a shell reports it;
        # anything else is the sandbox's.
        message = result.stderr.strip().splitlines()[-1]
        if message.startswith("bwrap: execvp "):
            missing = message.endswith("No such file or directory")
            text = "command not found" if missing else message.rsplit(": ", 1)[-1].lower()
            return ExecResult(
                exit_code=127 if missing else 126,
                stdout=result.stdout,
                stderr=f"{argv[0]}: {text}\n",
                duration=result.duration,
            )
        raise SandboxError(f"bubblewrap could not start the command: {message}")


class BwrapSandboxFactory:
    """Opens bwrap sandboxes.

    `bwrap` and `prlimit` are the tools' paths (None: not installed); `etc_entries` the
    names under /etc that commands may read; `host_env` replaces this process's
    environment as the whitelist's source; `python` the python3 under /usr that runs the
    LLM relay (None: network `llm` is refused). `check()` probes bwrap once, with the options
    a real exec uses, and remembers the answer.
    """

    kind = KIND

    def __init__(
        self,
        *,
        bwrap: str | None = shutil.which("bwrap"),
        prlimit: str | None = shutil.which("prlimit"),
        etc_entries: Sequence[str] = ETC_ENTRIES,
        host_env: Mapping[str, str] | None = None,
        python: str | None = system_python(),
    ) -> None:
        self._bwrap = bwrap
        self._prlimit = prlimit
        self._python = python
        self._host_env = host_env
        self._system = system_options(etc_entries)
        self._problem: str | None = None
        self._probed = False
        self._probe_lock = asyncio.Lock()
        self.capabilities = Capabilities(
            isolates_filesystem=True,
            enforces_read_only=True,
            remaps_mounts=True,
            isolates_network=True,
            network_modes=frozenset(
                {NetworkMode.NONE, NetworkMode.FULL} | ({NetworkMode.LLM} if python else set())
            ),
            isolates_processes=True,
            kills_process_tree=True,
            enforces_rlimits=prlimit is not None,
        )

    async def check(self) -> None:
        async with self._probe_lock:
            if not self._probed:
                self._problem = await self._probe()
                self._probed = True
        if self._problem is not None:
            raise SandboxUnavailable(self._problem)

    async def start(self) -> None:
        """Nothing to start."""

    async def close(self) -> None:
        """Nothing to release."""

    async def open(self, spec: SandboxSpec) -> BwrapSandbox:
        await self.check()
        assert self._bwrap is not None  # check() passed
        refuse_unsupported(KIND, self.capabilities, spec)
        check_mount_sources(spec)
        check_llm_socket(spec)
        workspace = Workspace(spec.workspace)
        scratch = Scratch(KIND)
        env = sandbox_environment(
            home=HOME,
            whitelist=spec.env_whitelist,
            spec_env=spec.env,
            extra_base=llm_env(spec),
            host=self._host_env,
        )
        llm = spec.network is NetworkMode.LLM and self._python is not None
        relay_mounts = (
            ["--ro-bind", FORWARDER, INSIDE_FORWARDER, "--ro-bind", spec.llm_socket, INSIDE_SOCKET]
            if llm
            else []
        )
        prefix = [
            self._bwrap,
            *namespace_options(spec.network),
            *self._system,
            "--proc", "/proc",
            "--dev", "/dev",
            "--bind", str(scratch.tmp), TMP,
            "--bind", str(scratch.home), HOME,
            "--bind", workspace.root, WORKDIR,
            *(
                option
                for mount in spec.read_only_mounts
                for option in ("--ro-bind", mount.source, mount.path_inside)
            ),
            *relay_mounts,
        ]  # fmt: skip
        return BwrapSandbox(
            prefix=prefix,
            forwarder=forwarder_argv(self._python) if llm and self._python else [],
            kind=KIND,
            spec=spec,
            capabilities=self.capabilities,
            workspace=workspace,
            scratch=scratch,
            env=env,
            workdir=WORKDIR,
            rlimits=rlimit_argv(self._prlimit, spec.limits) if self._prlimit else [],
        )

    async def _probe(self) -> str | None:
        """Why bwrap cannot run here, or None when it can."""
        if self._bwrap is None:
            return f"bubblewrap (bwrap) is not installed: {FIXES}"
        argv = [
            self._bwrap,
            *namespace_options(NetworkMode.NONE),
            *self._system,
            "--proc", "/proc",
            "--dev", "/dev",
            "--", "true",
        ]  # fmt: skip
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env={"PATH": "/usr/bin:/bin"},
            )
            _, stderr = await asyncio.wait_for(process.communicate(), PROBE_TIMEOUT)
        except TimeoutError:
            process.kill()
            return f"bwrap did not finish a trivial command within {PROBE_TIMEOUT:g} s: {FIXES}"
        except FileNotFoundError:
            return f"bubblewrap is not installed at {self._bwrap}: {FIXES}"
        except OSError as e:
            return f"bwrap could not be started ({e}): {FIXES}"
        if process.returncode != 0:
            said = stderr.decode(errors="replace").strip() or f"exit status {process.returncode}"
            return (
                f"bwrap cannot create its namespaces on this machine ({said}); this usually "
                "means unprivileged user namespaces are disabled (sysctl "
                "kernel.unprivileged_userns_clone=1, or an AppArmor profile for bwrap) or "
                f"a container without the privileges to nest them. Fix that, or {FIXES}"
            )
        return None
