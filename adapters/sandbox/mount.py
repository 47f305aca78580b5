"""The mount sandbox: commands run on the host, directly in the workspace.

Fast (a command costs little more than a bare `subprocess` call) and with **no isolation
beyond path checks**. What it does guarantee is what every adapter does (see
`codeforge.ports.sandbox`): the file operations stay inside the workspace, the
environment is scrubbed, output is capped, and a timeout or `close()` kills the
command's process group. What it does not: a command can read and write anything the
CodeForge process can (other workspaces, home directories, keys), reach any network
(the network mode is accepted but not enforced), see and signal host processes, and
leave a daemon running by double-forking out of its process group. Its capabilities
say exactly that, so a policy that demands isolation refuses it.

Network mode `llm` runs a relay in CodeForge's own process, on a free port of the host's
loopback, to the proxy's socket (`CODEFORGE_LLM_URL` names it); a command can still reach
everything else.

Per-process rlimits (`cpu_seconds`, `file_size_bytes`, `open_files`,
`process_memory_bytes`) are applied through util-linux `prlimit` when it is installed.
Tree-wide memory and pids limits are refused: RLIMIT_NPROC does not bind root, and a
per-process address-space cap does not bound a tree.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping

from adapters.sandbox.environment import sandbox_environment
from adapters.sandbox.host import (
    HostSandbox,
    Launch,
    Scratch,
    check_mount_sources,
    refuse_unsupported,
)
from adapters.sandbox.llm_relay import HostRelay, check_llm_socket, llm_env
from adapters.sandbox.paths import Workspace
from adapters.sandbox.processes import rlimit_argv
from codeforge.ports.sandbox import Capabilities, NetworkMode, SandboxSpec

KIND = "mount"


class MountSandbox(HostSandbox):
    def _launch(
        self, argv: list[str], cwd: tuple[str, ...], environment: Mapping[str, str]
    ) -> Launch:
        return Launch(argv, self._workspace.host_path(cwd))


class MountSandboxFactory:
    """Opens mount sandboxes. `prlimit` is the util-linux tool's path (None: rlimits are
    refused); `host_env` replaces this process's environment as the whitelist's source."""

    kind = KIND

    def __init__(
        self,
        *,
        prlimit: str | None = shutil.which("prlimit"),
        host_env: Mapping[str, str] | None = None,
    ) -> None:
        self._prlimit = prlimit
        self._host_env = host_env
        self.capabilities = Capabilities(
            # Every mode is accepted and none is enforced: isolates_network is False.
            network_modes=frozenset(NetworkMode),
            enforces_rlimits=prlimit is not None,
        )

    async def check(self) -> None:
        """The mount sandbox needs nothing but the host: always available."""

    async def start(self) -> None:
        """Nothing to start."""

    async def close(self) -> None:
        """Nothing to release."""

    async def open(self, spec: SandboxSpec) -> MountSandbox:
        refuse_unsupported(KIND, self.capabilities, spec)
        check_mount_sources(spec)
        check_llm_socket(spec)
        cleanups = []
        extra: dict[str, str] = {}
        if spec.network is NetworkMode.LLM:
            relay = HostRelay(spec.llm_socket)
            await relay.start()
            cleanups.append(relay.close)
            extra = llm_env(spec, relay.port)
        try:
            workspace = Workspace(spec.workspace)
        except BaseException:
            for cleanup in cleanups:
                await cleanup()
            raise
        scratch = Scratch(KIND)
        extra["TMPDIR"] = str(scratch.tmp)
        env = sandbox_environment(
            home=str(scratch.home),
            whitelist=spec.env_whitelist,
            spec_env=spec.env,
            extra_base=extra,
            host=self._host_env,
        )
        return MountSandbox(
            kind=KIND,
            spec=spec,
            capabilities=self.capabilities,
            workspace=workspace,
            scratch=scratch,
            env=env,
            workdir=workspace.root,
            rlimits=rlimit_argv(self._prlimit, spec.limits) if self._prlimit else [],
            cleanups=cleanups,
        )
