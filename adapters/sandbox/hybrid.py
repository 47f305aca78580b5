"""The hybrid sandbox: the workspace to read, a layer of its own to write, merged on success.

A `LayeredSandbox` (see `codeforge.ports.sandbox`). `open()` records the workspace's base
(the stat of every path), starts a layer over it (`layers.py`: an overlay mount where
this process may mount, else a copy) and opens an **inner** sandbox on the layer's view:
commands run under the inner kind's isolation, which the hybrid's capabilities are
(plus `layered_writes`):

- `bwrap` (the default): namespaces, a read-only system, no network; the commands see the
  layer at /workspace and nothing of the host's workspace path, so every write they make
  lands in the layer;
- `mount`: no isolation: the commands run on the host in the layer's directory. Writes
  through the workspace's relative paths land in the layer; a command that names the
  host workspace's absolute path writes there directly, as it could write anywhere.

File operations resolve paths inside the layer's view, so a symbolic link to the host
workspace's absolute path is refused like any other link out of the workspace.

`merge()` applies the layer to the workspace (`merge.py`: conflicts refused, all or
nothing, journalled), then starts a fresh layer over the result; `discard()` starts a
fresh layer without applying; `close()` discards. Both need the sandbox idle: no exec or
file operation running (`LayerBusy` otherwise), and while one runs, new operations wait.
HOME and /tmp are the inner sandbox's and last across merges.

`open()` also undoes what a merge interrupted by a crash left in the workspace, and
`check()` removes the layers of crashed processes.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Literal, Self

import msgspec
import structlog

from adapters.sandbox import layers
from adapters.sandbox import merge as merging
from adapters.sandbox.host import HostSandbox, refuse_unsupported
from adapters.sandbox.owners import is_orphan, owner_label
from adapters.sandbox.paths import Workspace
from codeforge.ports.sandbox import (
    Capabilities,
    ExecResult,
    FileStat,
    LayerBusy,
    LayerDiff,
    MergeConflict,
    OutputCallback,
    SandboxClosed,
    SandboxFactory,
    SandboxSpec,
    SandboxUnavailable,
)

log = structlog.get_logger("codeforge.sandbox")

KIND = "hybrid"
LayerKind = Literal["auto", "overlay", "copy"]


class HybridSandbox:
    def __init__(
        self,
        *,
        spec: SandboxSpec,
        capabilities: Capabilities,
        inner: HostSandbox,
        layer: layers.Layer,
        host_root: str,
        base: merging.Manifest,
    ) -> None:
        self._spec = spec
        self._capabilities = capabilities
        self._inner = inner
        self._layer = layer
        self._host_root = host_root
        self._base = base
        self._closed = False
        self._idle = asyncio.Event()  # set while no merge or discard runs
        self._idle.set()

    @property
    def kind(self) -> str:
        return KIND

    @property
    def spec(self) -> SandboxSpec:
        return self._spec

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def workdir(self) -> str:
        return self._inner.workdir

    @property
    def layer_kind(self) -> str:
        """ "overlay" or "copy"."""
        return self._layer.kind

    # -- the Sandbox port, through the inner sandbox -------------------------------------

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
        await self._ready()
        return await self._inner.exec(
            command, cwd=cwd, env=env, timeout=timeout, stdin=stdin, on_output=on_output
        )

    async def read_file(self, path: str) -> bytes:
        await self._ready()
        return await self._inner.read_file(path)

    async def write_file(self, path: str, data: bytes | str) -> None:
        await self._ready()
        await self._inner.write_file(path, data)

    async def list_dir(self, path: str = ".") -> list[FileStat]:
        await self._ready()
        return await self._inner.list_dir(path)

    async def delete(self, path: str, *, recursive: bool = False) -> None:
        await self._ready()
        await self._inner.delete(path, recursive=recursive)

    async def stat(self, path: str) -> FileStat:
        await self._ready()
        return await self._inner.stat(path)

    # -- the layer -------------------------------------------------------------------------

    async def changes(self) -> LayerDiff:
        await self._ready()
        return await asyncio.to_thread(self._diff)

    async def merge(self) -> LayerDiff:
        async with self._exclusive("merge"):
            diff = await asyncio.to_thread(self._merge)
            self._inner.replace_workspace(Workspace(self._layer.view))
        return diff

    async def discard(self) -> None:
        async with self._exclusive("discard"):
            await asyncio.to_thread(self._restart)
            self._inner.replace_workspace(Workspace(self._layer.view))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._idle.wait()  # a merge under way finishes first
        await self._inner.close()
        await asyncio.to_thread(self._layer.remove)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- plumbing ----------------------------------------------------------------------------

    async def _ready(self) -> None:
        if self._closed:
            raise SandboxClosed("this hybrid sandbox is closed; open a new one")
        await self._idle.wait()

    def _exclusive(self, what: str) -> _Exclusive:
        if self._closed:
            raise SandboxClosed("this hybrid sandbox is closed; open a new one")
        if self._inner.busy or not self._idle.is_set():
            raise LayerBusy(
                f"cannot {what} while commands or file operations run: wait for them to "
                "finish (a merge must not take half of a command's writes)"
            )
        return _Exclusive(self._idle)

    def _plan(self, host: merging.Tree, layer: merging.Tree) -> merging.Plan:
        candidates, hides = self._layer.candidates()
        return merging.evaluate(candidates, hides, self._base, host, layer)

    def _diff(self) -> LayerDiff:
        with merging.Tree(self._host_root) as host, merging.Tree(self._layer.source) as layer:
            plan = self._plan(host, layer)
            return plan.diff(merging.render_patch(plan, host, layer))

    def _merge(self) -> LayerDiff:
        with merging.Tree(self._host_root) as host, merging.Tree(self._layer.source) as layer:
            plan = self._plan(host, layer)
            if plan.conflicts:
                shown = ", ".join(sorted(plan.conflicts, key=merging.parts_key)[:20])
                raise MergeConflict(
                    f"the workspace changed since the layer began at {len(plan.conflicts)} "
                    f"path(s) the layer also changed: {shown}. Nothing was merged; discard "
                    "the layer, or resolve the paths on the host and merge again",
                    paths=plan.conflicts,
                )
            diff = plan.diff(merging.render_patch(plan, host, layer))
            merging.apply(plan, host, layer, owner=owner_label())
        self._restart()
        return diff

    def _restart(self) -> None:
        """A fresh, empty layer over the workspace as it is now."""
        with merging.Tree(self._host_root) as host:
            self._base = merging.snapshot(host)
        self._layer.reset()


class _Exclusive:
    """Holds off new operations (they wait on `idle`) for one merge or discard."""

    def __init__(self, idle: asyncio.Event) -> None:
        self._idle = idle

    async def __aenter__(self) -> None:
        self._idle.clear()

    async def __aexit__(self, *exc: object) -> None:
        self._idle.set()


class HybridSandboxFactory:
    """Opens hybrid sandboxes whose commands run in sandboxes of `inner` (bwrap or mount).

    `layer`: "overlay" (needs CAP_SYS_ADMIN), "copy", or "auto" (overlay where it can be
    mounted, else copy, logged once). `layers_directory`: where layers live (default: a
    `codeforge-hybrid` directory in the system temp directory); an overlay's upper
    directory must be on a filesystem that can be one (ext4, xfs, tmpfs; not overlayfs).
    """

    kind = KIND

    def __init__(
        self,
        *,
        inner: SandboxFactory,
        layer: LayerKind = "auto",
        layers_directory: str | None = None,
    ) -> None:
        self._inner = inner
        self._layer_choice = layer
        self._base = os.path.realpath(
            layers_directory or os.path.join(tempfile.gettempdir(), "codeforge-hybrid")
        )
        self.capabilities = msgspec.structs.replace(inner.capabilities, layered_writes=True)
        self.layer_kind: Literal["overlay", "copy"] | None = None
        """The layer sandboxes get, once `check()` has decided."""
        self._problem: str | None = None
        self._probed = False
        self._probe_lock = asyncio.Lock()

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
        """Nothing to release (each sandbox removes its layer)."""

    async def open(self, spec: SandboxSpec) -> HybridSandbox:
        await self.check()
        refuse_unsupported(KIND, self.capabilities, spec)
        checked = Workspace(spec.workspace)  # exists, is a directory, is not "/"
        root = checked.root
        checked.close()
        assert self.layer_kind is not None  # check() passed
        layer_class = layers.OverlayLayer if self.layer_kind == "overlay" else layers.CopyLayer
        layer = layer_class(await asyncio.to_thread(layers.new_directory, self._base), root)
        try:
            base = await asyncio.to_thread(self._begin, layer, root)
            inner = await self._inner.open(msgspec.structs.replace(spec, workspace=layer.view))
        except BaseException:
            await asyncio.to_thread(layer.remove)
            raise
        assert isinstance(inner, HostSandbox)
        return HybridSandbox(
            spec=spec,
            capabilities=self.capabilities,
            inner=inner,
            layer=layer,
            host_root=root,
            base=base,
        )

    @staticmethod
    def _begin(layer: layers.Layer, root: str) -> merging.Manifest:
        with merging.Tree(root) as host:
            for line in merging.recover(host, is_orphan):
                log.warning("hybrid sandbox: a crashed merge was cleaned up", workspace=root,
                            detail=line)  # fmt: skip
            base = merging.snapshot(host)
        layer.begin()
        return base

    async def _probe(self) -> str | None:
        try:
            await self._inner.check()
        except SandboxUnavailable as e:
            fix = (
                "; set sandbox.hybrid_isolation to mount to run them without isolation"
                if self._inner.kind != "mount"
                else ""
            )
            return (
                f"the hybrid sandbox runs its commands under {self._inner.kind}, which "
                f"cannot run here: {e}{fix}"
            )
        removed = await asyncio.to_thread(layers.remove_orphans, self._base)
        if removed:
            log.info("hybrid sandbox: layers of crashed processes removed", count=len(removed))
        if self._layer_choice == "copy":
            self.layer_kind = "copy"
            return None
        why = await asyncio.to_thread(layers.overlay_problem, self._base)
        if why is None:
            self.layer_kind = "overlay"
        elif self._layer_choice == "overlay":
            return f"sandbox.hybrid_layer is overlay, but {why}; set it to copy or auto"
        else:
            self.layer_kind = "copy"
            log.warning(
                "hybrid sandbox: overlay layers are unavailable, layers are copies of the "
                "workspace (slower to open; commands see the workspace as it was at open)",
                detail=why,
            )
        return None
