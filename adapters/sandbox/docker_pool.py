"""Docker's warm pool: containers started ahead of time, so `open()` does not wait for one.

A container's mounts are fixed when it is created, and a pooled container is created
before anyone knows which workspace it will serve. So each one gets a **slot**: an empty
directory of its own under the pool's directory, bound at /workspace with
`bind-propagation=rslave`. The pool's directory is made a shared mount, so when `open()`
binds the run's workspace onto the slot on the host (`mounts.bind`, root only), the mount
propagates into that container — and only that one: every other container's bind covers
its own slot, not this one. A pooled container serves one sandbox and is removed on
close; the pool then starts a fresh one. No container ever sees two workspaces.

Templates: a container is made for one (limits, network, read-only mounts) combination,
the `Template`. The pool keeps `size` containers started for each of the templates most
recently asked for (the default template from the start, the others after their first,
cold, open), at most `MAX_TEMPLATES` of them.

Without CAP_SYS_ADMIN the workspace cannot be bound in after creation: the pool reports
why (`problem`) and every open is cold. Pool containers carry the sandbox labels, so a
crashed process's pool is removed at the next start like its other containers, and its
slot directory and mounts with it (`remove_orphan_directories`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, NamedTuple

import structlog
from msgspec import Struct

from adapters.sandbox import mounts
from codeforge.ports.sandbox import NetworkMode, ReadOnlyMount, SandboxLimits, SandboxSpec

log = structlog.get_logger("codeforge.sandbox")

MAX_TEMPLATES: Final = 4
RETRY_AFTER: Final = 5.0
"""Seconds the pool waits after a container failed to start before it tries again."""


class Template(Struct, frozen=True, kw_only=True):
    """What a container is created with, apart from its workspace."""

    limits: SandboxLimits
    """With `timeout` and `output_bytes` at their defaults: they do not shape a container."""
    network: NetworkMode
    llm_socket: str
    read_only_mounts: tuple[ReadOnlyMount, ...]

    @classmethod
    def of(cls, spec: SandboxSpec) -> Template:
        limits = spec.limits
        return cls(
            limits=SandboxLimits(
                cpu_seconds=limits.cpu_seconds,
                file_size_bytes=limits.file_size_bytes,
                open_files=limits.open_files,
                process_memory_bytes=limits.process_memory_bytes,
                memory_bytes=limits.memory_bytes,
                pids=limits.pids,
                disk_bytes=limits.disk_bytes,
            ),
            network=spec.network,
            llm_socket=spec.llm_socket if spec.network is NetworkMode.LLM else "",
            read_only_mounts=spec.read_only_mounts,
        )


class Started(NamedTuple):
    """A started container and what the sandbox needs to know of it."""

    container: Any
    init_pid: int
    idle_pid: int
    namespace: str
    slot: str | None = None
    """The pool slot bound at /workspace (None: the workspace was bound at creation)."""


def remove_orphan_directories(base: str, is_gone: Callable[[str], bool]) -> None:
    """Unmount and remove the pool directories under `base` of processes that are gone
    (`is_gone` is asked with each directory's name: its owner's tag)."""
    try:
        entries = os.listdir(base)
    except FileNotFoundError:
        return
    for entry in entries:
        if is_gone(entry):
            path = os.path.join(base, entry)
            mounts.unmount_all_under(path)
            mounts.remove_empty_directories(path)


class WarmPool:
    """Started containers kept ready per template.

    `create(template, slot)` starts a container whose /workspace is the slot directory
    (blocking: it runs in a worker thread); `remove(started)` removes one.
    """

    def __init__(
        self,
        *,
        size: int,
        directory: str,
        create: Callable[[Template, str], Started],
        remove: Callable[[Started], None],
    ) -> None:
        self.size = size
        self.directory = directory
        self._create = create
        self._remove = remove
        self._ready: OrderedDict[Template, list[Started]] = OrderedDict()
        self._wake = asyncio.Event()
        self._filled = asyncio.Condition()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self.problem: str | None = None
        """Why the pool is not in use (None while it is)."""

    @property
    def active(self) -> bool:
        return self._worker is not None and self.problem is None and not self._closed

    def ready(self, template: Template) -> int:
        """How many started containers wait for `template`."""
        return len(self._ready.get(template, ()))

    async def wait_ready(self, template: Template, count: int = 1) -> None:
        """Return once `count` containers wait for `template`, or the pool is not active."""
        async with self._filled:
            await self._filled.wait_for(lambda: self.ready(template) >= count or not self.active)

    async def start(self, templates: list[Template]) -> None:
        """Make the pool's directory a shared mount and begin filling it; on failure the
        pool stays inactive and `problem` says why (opens are then cold)."""
        try:
            os.makedirs(self.directory, exist_ok=True)
            await asyncio.to_thread(mounts.make_shared, self.directory)
        except OSError as e:
            self.disable(
                f"the warm pool cannot bind workspaces into started containers ({e}); it "
                "needs CAP_SYS_ADMIN (run CodeForge as root) - every open starts a container"
            )
            return
        for template in templates:
            self._ready.setdefault(template, [])
        self._worker = asyncio.create_task(self._fill(), name="docker warm pool")
        self._wake.set()

    def disable(self, problem: str) -> None:
        """Stop handing out containers (the ready ones are removed at close)."""
        if self.problem is None:
            self.problem = problem
            log.warning("docker warm pool disabled", detail=problem)
            self._notify()

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._filled:
                self._filled.notify_all()

        with contextlib.suppress(RuntimeError):  # no running loop: nobody can be waiting
            asyncio.get_running_loop().create_task(notify())

    def take(self, template: Template) -> Started | None:
        """A ready container for `template`, or None (the caller opens cold). Either way
        the template is now the most recent, and the pool refills it."""
        if not self.active:
            return None
        ready = self._ready.setdefault(template, [])
        self._ready.move_to_end(template)
        taken = ready.pop(0) if ready else None
        self._wake.set()
        return taken

    async def close(self) -> None:
        """Stop filling, remove every ready container and the pool's mounts. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._notify()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        leftovers = [started for ready in self._ready.values() for started in ready]
        self._ready.clear()
        for started in leftovers:
            await asyncio.to_thread(self._remove, started)
        await asyncio.to_thread(mounts.unmount_all_under, self.directory)
        mounts.remove_empty_directories(self.directory)

    async def _fill(self) -> None:
        """One container at a time (the machine is small, and runs are using it), most
        recently wanted template first."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._evict()
            while (template := self._next_short()) is not None and self.active:
                slot = os.path.join(self.directory, f"slot-{secrets.token_hex(8)}")
                os.mkdir(slot)
                try:
                    started = await asyncio.to_thread(self._create, template, slot)
                except Exception as e:
                    os.rmdir(slot)
                    log.warning("docker warm pool could not start a container", error=str(e))
                    await asyncio.sleep(RETRY_AFTER)
                    continue
                if template in self._ready and self.active:
                    self._ready[template].append(started)
                    async with self._filled:
                        self._filled.notify_all()
                else:  # evicted (or the pool closed) while it started
                    await asyncio.to_thread(self._remove, started)

    def _next_short(self) -> Template | None:
        for template in reversed(self._ready):
            if len(self._ready[template]) < self.size:
                return template
        return None

    async def _evict(self) -> None:
        while len(self._ready) > MAX_TEMPLATES:
            _, ready = self._ready.popitem(last=False)
            for started in ready:
                await asyncio.to_thread(self._remove, started)
