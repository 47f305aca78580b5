"""aider's own virtual environment: named by config, or created once on demand.

aider-chat pins litellm, tree-sitter and others at versions that clash with CodeForge's,
so it never shares CodeForge's environment: it lives in a venv of its own and is called
by path (`<venv>/bin/aider`), the venv mounted read-only into each run's sandbox.

- `aider.venv` set: that venv is used as it is, never created or changed. Its
  `bin/aider` must exist; its version and interpreter are read once per process.
- otherwise CodeForge manages `<data_dir>/tools/aider-<version>`. The first `ensure()`
  creates it: `python -m venv`, then `pip install aider-chat==<version>` from whatever
  package index pip is configured with (its output logged line by line as progress),
  then `aider --version` must answer. A lock file makes concurrent runs and processes
  sharing the data dir create it once (the others wait); a marker file written last
  says the venv is complete, so a directory left by a crash mid-install is removed
  and made again. A failure (the index out of reach, `install_timeout` passed, a
  Python aider does not support) raises `AiderUnavailable` saying what pip said and
  how to fix it; for `RETRY_AFTER` seconds later calls get the same answer at once
  rather than a new attempt each (PyPI being down should not cost every run minutes).

The sandbox needs to see the venv and the interpreter it was made from (a venv's
python is a link to its base interpreter): `AiderEnv.mounts` lists both, leaving out
what lives in the system directories every sandbox already shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from msgspec import Struct

from codeforge.ports.errors import DependencyUnavailable
from codeforge.settings import AiderSettings

log = structlog.get_logger("codeforge.aider")

MARKER = ".codeforge-aider.json"
RETRY_AFTER = 60.0
# What every sandbox shows read-only anyway: no mount needed for what lives here.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
PIP_OPTIONS = ("--disable-pip-version-check", "--no-input", "--progress-bar", "off")
# Seconds pip waits on a silent connection, and its retries: an index out of reach
# fails in about a minute, not at `install_timeout`.
PIP_NETWORK = ("--timeout", "20", "--retries", "2")
_PROBE = "import json, sys; print(json.dumps([sys.base_prefix, sys.version.split()[0]]))"


class AiderUnavailable(DependencyUnavailable):
    """aider cannot run here; str() says why and how to fix it."""


class AiderEnv(Struct, frozen=True, kw_only=True):
    venv: str
    executable: str
    version: str
    # Host directories a sandbox must show read-only for aider to run.
    mounts: tuple[str, ...]


class AiderInstall:
    def __init__(self, settings: AiderSettings, tools_dir: Path) -> None:
        self._settings = settings
        self._tools = tools_dir
        self._env: AiderEnv | None = None
        self._failure: tuple[float, str] | None = None
        self._installing_since: float | None = None
        self._pending: asyncio.Task[AiderEnv] | None = None

    @property
    def managed(self) -> bool:
        return not self._settings.venv

    @property
    def venv(self) -> Path:
        if self._settings.venv:
            return Path(self._settings.venv).expanduser().absolute()
        return (self._tools / f"aider-{self._settings.version}").absolute()

    async def ensure(self) -> AiderEnv:
        """The venv, ready to run; created first when CodeForge manages it and it is not.

        Callers share one attempt: a caller that gives up (its run was cancelled) does not
        stop an install others wait for."""
        if self._env is not None:
            return self._env
        if self._failure is not None and time.monotonic() - self._failure[0] < RETRY_AFTER:
            raise AiderUnavailable(self._failure[1])
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._attempt())
        return await asyncio.shield(self._pending)

    async def _attempt(self) -> AiderEnv:
        try:
            env = await (self._managed() if self.managed else self._configured())
        except AiderUnavailable as e:
            self._failure = (time.monotonic(), str(e))
            log.warning("aider is unavailable", problem=str(e))
            raise
        self._failure = None
        self._env = env
        return env

    def start_background(self) -> None:
        """Create the managed venv now, in the background (`aider.install_at_start`)."""
        if self.managed and self._pending is None:
            self._pending = asyncio.create_task(self._attempt())
            # Its failure is logged and reported to the first run; nobody else awaits it.
            self._pending.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def close(self) -> None:
        """Stop an install still running (shutdown); the next start begins it again."""
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, AiderUnavailable):
                await pending

    def describe(self) -> str:
        """One line for readiness; raises when a configured venv cannot work."""
        if self._env is not None:
            return f"aider {self._env.version} at {self._env.venv}"
        if not self.managed:
            if not os.access(self.venv / "bin" / "aider", os.X_OK):
                raise AiderUnavailable(
                    f"aider.venv {self.venv} has no bin/aider: install aider-chat into it "
                    "(python -m venv DIR && DIR/bin/pip install aider-chat) or unset aider.venv"
                )
            return f"aider at {self.venv} (version read at the first aider run)"
        if self._installing_since is not None:
            seconds = time.monotonic() - self._installing_since
            return f"installing aider-chat {self._settings.version} ({seconds:.0f} s so far)"
        if self._failure is not None:
            return f"aider not installed: {self._failure[1]}"
        if (self.venv / MARKER).is_file():
            return f"aider-chat {self._settings.version} installed at {self.venv}"
        return (
            f"aider-chat {self._settings.version} not installed yet: created at {self.venv} "
            "by the first aider run (or at start with aider.install_at_start)"
        )

    # -- a venv someone else made -------------------------------------------------------

    async def _configured(self) -> AiderEnv:
        venv = self.venv
        executable = venv / "bin" / "aider"
        if not os.access(executable, os.X_OK):
            raise AiderUnavailable(
                f"aider.venv {venv} has no bin/aider: install aider-chat into it "
                "(python -m venv DIR && DIR/bin/pip install aider-chat) or unset aider.venv "
                "to let CodeForge create one"
            )
        return await self._inspect(venv)

    # -- the venv CodeForge manages -----------------------------------------------------

    async def _managed(self) -> AiderEnv:
        venv = self.venv
        marker = venv / MARKER
        if marker.is_file():
            return await self._inspect(venv)
        self._tools.mkdir(parents=True, exist_ok=True)
        async with _file_lock(self._tools / f"aider-{self._settings.version}.lock"):
            if not marker.is_file():  # another process may have made it while we waited
                self._installing_since = time.monotonic()
                try:
                    await asyncio.wait_for(self._create(venv), self._settings.install_timeout)
                except TimeoutError:
                    raise AiderUnavailable(
                        f"installing aider-chat {self._settings.version} took longer than "
                        f"aider.install_timeout ({self._settings.install_timeout:g} s); check "
                        "access to your package index, raise the timeout, or install it "
                        "yourself and set aider.venv"
                    ) from None
                finally:
                    self._installing_since = None
        return await self._inspect(venv)

    async def _create(self, venv: Path) -> None:
        version = self._settings.version
        python = self._settings.python or sys.executable
        started = time.monotonic()
        log.info("creating aider's virtual environment", venv=str(venv), version=version)
        if await asyncio.to_thread(venv.exists):
            log.warning("removing an unfinished aider venv", venv=str(venv))
            await asyncio.to_thread(shutil.rmtree, venv)
        try:
            await _run([python, "-m", "venv", str(venv)], "python -m venv")
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", *PIP_OPTIONS]
            await _run([*pip, *PIP_NETWORK, f"aider-chat=={version}"], "pip install")
            env = await self._inspect(venv)
        except BaseException:
            # Leave no half-made venv for a reader without the lock to trust.
            await asyncio.to_thread(shutil.rmtree, venv, True)
            raise
        marker = {"version": env.version, "python": python, "created": time.time()}
        (venv / MARKER).write_text(json.dumps(marker))
        log.info(
            "aider's virtual environment is ready",
            venv=str(venv),
            version=env.version,
            seconds=round(time.monotonic() - started, 1),
        )

    # -- both ------------------------------------------------------------------------------

    async def _inspect(self, venv: Path) -> AiderEnv:
        """Check that aider answers, and find what a sandbox must show for it to run."""
        venv = Path(await asyncio.to_thread(os.path.realpath, venv))
        executable = venv / "bin" / "aider"
        said = await _run([str(executable), "--version"], "aider --version", quiet=True)
        words = said.split()
        if len(words) < 2 or words[0] != "aider":
            raise AiderUnavailable(f"{executable} --version said {said.strip()[:200]!r}")
        probe = await _run([str(venv / "bin" / "python"), "-c", _PROBE], "python", quiet=True)
        base_prefix, _python = json.loads(probe)
        mounts = [str(venv)]
        base = await asyncio.to_thread(os.path.realpath, base_prefix)
        if not any(base == d or base.startswith(d + "/") for d in SYSTEM_DIRS):
            mounts.append(base)
        return AiderEnv(
            venv=str(venv), executable=str(executable), version=words[1], mounts=tuple(mounts)
        )


async def _run(argv: list[str], what: str, *, quiet: bool = False) -> str:
    """Run a step of the install; its output, or AiderUnavailable with its last lines."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONUNBUFFERED": "1"}
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,  # so a timeout or cancel can kill all of it
        )
    except OSError as e:
        raise AiderUnavailable(f"cannot run {argv[0]}: {e}") from e
    tail: deque[str] = deque(maxlen=15)
    lines: list[str] = []
    try:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            if not line:
                continue
            tail.append(line)
            lines.append(line)
            if not quiet:
                log.info("aider install", step=what, output=line[:300])
        code = await process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise
    if code != 0:
        said = "\n".join(tail)
        hint = (
            " (is the package index reachable? pip uses your pip.conf and PIP_* variables)"
            if what == "pip install"
            else ""
        )
        raise AiderUnavailable(f"{what} failed with exit code {code}{hint}:\n{said}")
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    """An exclusive lock on `path` across processes, polled so waiting stays cancellable."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.25)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class AiderProbe:
    """The `aider` check of /health/ready: what state aider's venv is in (never a call to
    PyPI). Down only when a configured `aider.venv` cannot work; a managed venv not made
    yet, or whose install failed, is up with the detail saying so (native runs go on)."""

    name = "aider"

    def __init__(self, install: AiderInstall) -> None:
        self._install = install

    async def check(self) -> str | None:
        return self._install.describe()
