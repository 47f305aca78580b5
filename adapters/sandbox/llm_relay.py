"""Network mode `llm`: how a sandboxed command reaches CodeForge's LLM proxy, and only it.

The proxy is an HTTP server on a host unix socket (`SandboxSpec.llm_socket`). A command
finds it at `CODEFORGE_LLM_URL` (`http://127.0.0.1:<port>`), a loopback TCP port relayed
to that socket:

- bwrap and docker keep their network namespace empty (as in mode `none`) and bind the
  socket into the sandbox at `INSIDE_SOCKET`; `llm_forwarder.py`, run by the python3 the
  sandbox sees, listens on `INSIDE_PORT` of the namespace's own loopback. Nothing else is
  reachable: the namespace has no other interface.
- mount runs `HostRelay` in CodeForge's own event loop, on a free port of the host's
  loopback. It cannot keep a command from reaching anything else (mount does not
  isolate the network, as its capabilities say).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from pathlib import Path
from typing import Final

from codeforge.ports.sandbox import (
    LLM_URL_ENV,
    NetworkMode,
    SandboxPathNotFound,
    SandboxSpec,
    WrongFileType,
)

INSIDE_PORT: Final = 4000
"""The port commands reach inside an isolating sandbox (its own loopback: any port is free)."""
INSIDE_SOCKET: Final = "/run/codeforge/llm.sock"
INSIDE_FORWARDER: Final = "/run/codeforge/llm_forwarder.py"
FORWARDER: Final = str(Path(__file__).with_name("llm_forwarder.py"))
CHUNK: Final = 64 * 1024


def llm_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def llm_env(spec: SandboxSpec, port: int = INSIDE_PORT) -> dict[str, str]:
    """The variables a command gets for the spec's network mode (empty unless `llm`)."""
    return {LLM_URL_ENV: llm_url(port)} if spec.network is NetworkMode.LLM else {}


def check_llm_socket(spec: SandboxSpec) -> None:
    """Raise unless, in mode `llm`, `spec.llm_socket` is a unix socket on this host."""
    if spec.network is not NetworkMode.LLM:
        return
    try:
        info = os.stat(spec.llm_socket)
    except FileNotFoundError as e:
        raise SandboxPathNotFound(
            f"the LLM proxy socket {spec.llm_socket} does not exist (is the proxy running?)",
            field="llm_socket",
        ) from e
    if not stat.S_ISSOCK(info.st_mode):
        raise WrongFileType(
            f"llm_socket {spec.llm_socket} is not a unix socket", field="llm_socket"
        )


def forwarder_argv(python: str, *command: str) -> list[str]:
    """The argv that runs the forwarder inside a sandbox (then `command`, when given)."""
    argv = [python, "-I", "-S", INSIDE_FORWARDER, str(INSIDE_PORT), INSIDE_SOCKET]
    return [*argv, "--", *command] if command else argv


class HostRelay:
    """A loopback TCP port of this host relayed to a unix socket, in this event loop."""

    def __init__(self, socket_path: str) -> None:
        self._path = socket_path
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            try:
                up_reader, up_writer = await asyncio.open_unix_connection(self._path)
            except OSError:
                return
            try:
                await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()
            self._connections.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
