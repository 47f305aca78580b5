"""A private PostgreSQL cluster that CodeForge runs itself when no database.url is configured.

Layout of the cluster folder:

- ``data/``: the cluster (PGDATA);
- ``log/postgres.log``: the server log;
- ``.lock``: flock that serialises start and stop across processes;
- ``.owner``: "<CodeForge pid> <postmaster pid>" of the process that started the running
  server, so that a server left behind by a CodeForge that died is adopted and stopped later.

The server listens on TCP 127.0.0.1 only (no Unix socket: data paths can exceed the socket path
limit) and trusts local connections. PostgreSQL refuses to run as root, so as root every server
command runs as an unprivileged user through ``runuser``.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import math
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from codeforge.ports.errors import DependencyUnavailable

_BINARIES = ("initdb", "pg_ctl", "postgres")
_HOST = "127.0.0.1"
_SERVER_USERS = ("postgres", "codeforge-pg")  # the first that exists; the last is created
_LOG_TAIL_LINES = 25
_USE_OWN_SERVER = (
    "To use a PostgreSQL server of your own instead, set "
    "CODEFORGE_DATABASE__URL=postgresql://user@host:5432/db (or database.url in the config file)."
)


class EmbeddedPostgresUnavailable(DependencyUnavailable):
    """No way to run an embedded PostgreSQL here.

    str() is a complete one-paragraph message for the user: what was tried and how to fix it.
    """


class EmbeddedPostgresFailed(DependencyUnavailable):
    """A PostgreSQL command or the server failed; the message ends with the server log's tail."""


@dataclass(frozen=True)
class _Postmaster:
    pid: int
    port: int
    ready: bool


class EmbeddedPostgres:
    """A PostgreSQL cluster under ``cluster_dir`` that this object starts, reuses or adopts.

    Synchronous and blocking (it runs subprocesses): call it from a thread in async code.
    ``bin_dir`` pins the folder holding initdb, pg_ctl and postgres; None discovers it (see
    :func:`find_bin_dir`). ``start_timeout`` bounds each of initdb, server start-up and
    shutdown, in seconds.
    """

    def __init__(
        self,
        cluster_dir: Path,
        *,
        port: int = 0,
        database: str = "codeforge",
        user: str = "codeforge",
        start_timeout: float = 60.0,
        bin_dir: Path | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (pick a free one) or 1-65535, not {port}")
        if start_timeout <= 0:
            raise ValueError(f"start_timeout must be positive, not {start_timeout}")
        self._cluster_dir = Path(cluster_dir).absolute()
        self._data_dir = self._cluster_dir / "data"
        self._log_file = self._cluster_dir / "log" / "postgres.log"
        self._owner_file = self._cluster_dir / ".owner"
        self._port = port
        self._database = database
        self._user = user
        self._start_timeout = start_timeout
        self._pinned_bin_dir = bin_dir
        self._bin_dir: Path | None = None
        self._run_as: str | None = None
        self._url: str | None = None
        self._owned_pid: int | None = None

    @property
    def url(self) -> str:
        """libpq URL of the running server; RuntimeError before start() or after stop()."""
        if self._url is None:
            raise RuntimeError("the embedded PostgreSQL is not started")
        return self._url

    @property
    def owns_server(self) -> bool:
        """Whether stop() stops the server: True if this object started (or adopted) it."""
        return self._owned_pid is not None

    def start(self) -> str:
        """Make the server run and return a libpq URL to ``database``. Idempotent.

        Initialises the cluster if there is none, starts the server unless it already runs,
        and creates ``database`` if missing. A server that already runs is reused and not
        owned, unless the process recorded as having started it is gone: then it is adopted.
        A stale postmaster.pid (crash) is removed and PostgreSQL recovers by itself.
        Raises EmbeddedPostgresUnavailable when PostgreSQL cannot run here at all, and
        EmbeddedPostgresFailed when it could but did not.
        """
        try:
            return self._start()
        except OSError as exc:
            raise EmbeddedPostgresUnavailable(
                f"CodeForge cannot use {self._cluster_dir} for its embedded PostgreSQL: {exc}. "
                f"Point database.embedded.dir (CODEFORGE_DATABASE__EMBEDDED__DIR) at a folder "
                f"that CodeForge may write to. {_USE_OWN_SERVER}"
            ) from exc

    def _start(self) -> str:
        self._cluster_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._run_as = _server_user(self._data_dir) if os.geteuid() == 0 else None
        self._bin_dir = self._pinned_bin_dir or find_bin_dir(_cluster_version(self._data_dir))
        _require_binaries(self._bin_dir)
        if self._run_as is not None:
            self._hand_over_to(self._run_as, self._bin_dir)
        deadline = time.monotonic() + self._start_timeout
        with self._locked():
            running = self._postmaster()
            launched = running is None
            if running is None:
                self._initialise_if_missing()
                self._clear_stale_server(deadline)
                running = self._launch()
                self._take_ownership(running.pid)
            elif running.pid != self._owned_pid:
                self._owned_pid = None
                if self._is_orphan(running.pid):
                    self._take_ownership(running.pid)
            try:
                running = self._wait_until_ready(deadline)
                self._create_database(running.port)
            except BaseException:
                if launched:  # do not leave behind a server nobody will stop
                    with contextlib.suppress(EmbeddedPostgresFailed):
                        self._stop_owned_server()
                raise
            self._url = f"postgresql://{self._user}@{_HOST}:{running.port}/{self._database}"
        return self._url

    def stop(self) -> None:
        """Stop the server (pg_ctl stop -m fast) if and only if this object started or adopted it.

        Idempotent; a server that another object or process started keeps running, and so
        does one that replaced ours after ours died.
        """
        if self._owned_pid is not None:
            with self._locked():
                self._stop_owned_server()
        self._url = None

    # Cluster life cycle -------------------------------------------------------------------

    def _initialise_if_missing(self) -> None:
        if (self._data_dir / "PG_VERSION").exists():
            return
        # initdb into a side folder and rename it: "data" exists only once it is complete,
        # so an initdb killed half-way is simply redone.
        staging = self._cluster_dir / "data.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        self._pg(
            "initdb",
            "-D",
            str(staging),
            "-U",
            self._user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            doing="initialising the PostgreSQL cluster",
        )
        try:
            staging.rename(self._data_dir)
        except OSError as exc:
            raise EmbeddedPostgresFailed(
                f"{self._data_dir} exists but is not a PostgreSQL cluster (no PG_VERSION); "
                f"move it away so that CodeForge can create the cluster there: {exc}"
            ) from exc

    def _clear_stale_server(self, deadline: float) -> None:
        """Remove postmaster.pid of a dead server and wait for its last processes to exit."""
        # PostgreSQL clears a stale pid file itself, but not when the pid is a zombie (init
        # in containers often does not reap) or was reused by another process.
        (self._data_dir / "postmaster.pid").unlink(missing_ok=True)
        # Backends of a killed postmaster exit on their own within milliseconds; until they
        # have, the new postmaster refuses to start ("shared memory block still in use").
        while _processes_in(self._data_dir) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _launch(self) -> _Postmaster:
        port = self._port or _free_port()
        self._log_file.parent.mkdir(mode=0o700, exist_ok=True)
        self._pg(
            "pg_ctl",
            "start",
            "-D",
            str(self._data_dir),
            "-l",
            str(self._log_file),
            "-w",
            "-t",
            str(math.ceil(self._start_timeout)),
            "-o",
            f"-p {port} -c listen_addresses={_HOST} -c unix_socket_directories=''",
            doing="starting PostgreSQL",
        )
        running = self._postmaster()
        if running is None:
            raise EmbeddedPostgresFailed(
                f"pg_ctl reported that PostgreSQL started, but no server runs in "
                f"{self._data_dir}.{self._log_tail()}"
            )
        return running

    def _take_ownership(self, postmaster_pid: int) -> None:
        self._owned_pid = postmaster_pid
        self._owner_file.write_text(f"{os.getpid()} {postmaster_pid}\n")

    def _stop_owned_server(self) -> None:
        """Stop our server if it still runs (the lock is held) and forget that we own it."""
        running = self._postmaster()
        if running is not None and running.pid == self._owned_pid:
            self._pg(
                "pg_ctl",
                "stop",
                "-D",
                str(self._data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                str(math.ceil(self._start_timeout)),
                doing="stopping PostgreSQL",
            )
        with contextlib.suppress(FileNotFoundError):
            if self._owner_file.read_text() == f"{os.getpid()} {self._owned_pid}\n":
                self._owner_file.unlink()
        self._owned_pid = None

    def _wait_until_ready(self, deadline: float) -> _Postmaster:
        # pg_ctl -w has already waited for a server we launched; a reused one may still be
        # starting up (recovery) when we find it.
        while True:
            running = self._postmaster()
            if running is None:
                raise EmbeddedPostgresFailed(
                    f"PostgreSQL in {self._data_dir} stopped while starting.{self._log_tail()}"
                )
            if running.ready:
                return running
            if time.monotonic() >= deadline:
                raise EmbeddedPostgresFailed(
                    f"PostgreSQL in {self._data_dir} was not ready after "
                    f"{self._start_timeout:g} s.{self._log_tail()}"
                )
            time.sleep(0.1)

    def _create_database(self, port: int) -> None:
        try:
            with psycopg.connect(
                host=_HOST,
                port=port,
                user=self._user,
                dbname="postgres",
                autocommit=True,
                connect_timeout=max(2, math.ceil(self._start_timeout)),
            ) as conn:
                found = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (self._database,)
                ).fetchone()
                if found is None:
                    conn.execute(
                        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self._database))
                    )
        except psycopg.Error as exc:
            raise EmbeddedPostgresFailed(
                f"Could not create database {self._database!r} as {self._user!r} on "
                f"{_HOST}:{port}: {exc}{self._log_tail()}"
            ) from exc

    # State on disk ------------------------------------------------------------------------

    def _postmaster(self) -> _Postmaster | None:
        """The server running on this cluster per postmaster.pid, or None if none runs."""
        try:
            lines = (self._data_dir / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        if not _is_postmaster_of(pid, self._data_dir):
            return None
        ready = len(lines) > 7 and lines[7].strip() == "ready"
        return _Postmaster(pid=pid, port=port, ready=ready)

    def _is_orphan(self, postmaster_pid: int) -> bool:
        """Whether we started this server in a CodeForge process that is now gone."""
        try:
            owner, recorded = (int(part) for part in self._owner_file.read_text().split())
        except (FileNotFoundError, ValueError):
            return False
        return recorded == postmaster_pid and not _is_alive(owner)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._cluster_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _log_tail(self) -> str:
        try:
            lines = self._log_file.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        except OSError:
            return ""
        return f"\nLast lines of {self._log_file}:\n" + "\n".join(lines) if lines else ""

    # Running as root ----------------------------------------------------------------------

    def _hand_over_to(self, user: str, bin_dir: Path) -> None:
        """Give the cluster folder to ``user`` and check it can reach it and the binaries."""
        account = pwd.getpwnam(user)
        self._log_file.parent.mkdir(mode=0o700, exist_ok=True)
        for path in (self._cluster_dir, self._log_file.parent):
            os.chown(path, account.pw_uid, account.pw_gid)
        fixes = {
            self._cluster_dir: (
                "Point database.embedded.dir (CODEFORGE_DATABASE__EMBEDDED__DIR) at a folder that "
                f"{user!r} can reach, such as /var/lib/codeforge/postgres."
            ),
            bin_dir / "postgres": (
                "Install PostgreSQL system-wide (for example apt install postgresql), or install "
                f"CodeForge where {user!r} can reach it."
            ),
        }
        for target, fix in fixes.items():
            if not _reachable_by(user, target):
                raise EmbeddedPostgresUnavailable(
                    f"CodeForge runs as root, so it runs its embedded PostgreSQL as the "
                    f"unprivileged user {user!r} (PostgreSQL refuses to run as root), but that "
                    f"user cannot reach {target} because it may not enter "
                    f"{_first_untraversable(target, account)}. CodeForge does not "
                    f"change the permissions of your folders. {fix} {_USE_OWN_SERVER}"
                )

    def _pg(self, program: str, *args: str, doing: str) -> None:
        """Run a PostgreSQL program (as the server user when root); failures become ours."""
        assert self._bin_dir is not None
        argv = [str(self._bin_dir / program), *args]
        if self._run_as is not None:
            argv = ["runuser", "-u", self._run_as, "--", *argv]
        try:
            done = subprocess.run(
                argv,
                cwd=self._cluster_dir,
                env=_server_env(),
                capture_output=True,
                text=True,
                timeout=self._start_timeout + 30,
                check=False,
            )
        except OSError as exc:
            raise EmbeddedPostgresUnavailable(
                f"CodeForge could not run {argv[0]} while {doing} for its embedded PostgreSQL: "
                f"{exc}. {_USE_OWN_SERVER}"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedPostgresFailed(
                f"{program} did not finish while {doing}.{self._log_tail()}"
            ) from exc
        if done.returncode != 0:
            output = (done.stderr.strip() or done.stdout.strip())[-2000:]
            raise EmbeddedPostgresFailed(
                f"{program} failed (exit {done.returncode}) while {doing} in "
                f"{self._cluster_dir}: {output}{self._log_tail()}"
            )


# Binaries ---------------------------------------------------------------------------------


def pgserver_bin_dir() -> Path | None:
    """The binaries bundled by the pgserver package, or None when it is not installed.

    Only its binaries are used, never its Python API, which as root widens the permissions
    of every parent folder. Its binaries find their libraries through an RPATH.
    """
    spec = importlib.util.find_spec("pgserver")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def find_bin_dir(version: str | None = None) -> Path:
    """The first folder with initdb, pg_ctl and postgres, of PostgreSQL ``version`` if given.

    Looks at ``pg_config --bindir``, then /usr/lib/postgresql/*/bin from the highest version,
    then PATH, then the pgserver package. Raises EmbeddedPostgresUnavailable if none fits.
    """
    # Keyed by the real postgres binary: /usr/local/bin may only hold links to a system install.
    by_binary: dict[Path, Path] = {}
    for path in _candidate_bin_dirs():
        if _has_binaries(path):
            by_binary.setdefault((path / "postgres").resolve(), path)
    usable = list(by_binary.values())
    if not usable:
        raise EmbeddedPostgresUnavailable(
            "CodeForge found no PostgreSQL server programs (initdb, pg_ctl, postgres) to run its "
            "embedded database: it looked at pg_config --bindir, /usr/lib/postgresql/*/bin, "
            "PATH and the binaries bundled with the pgserver Python package. Install PostgreSQL "
            "(for example apt install postgresql) or pgserver (pip install pgserver). "
            + _USE_OWN_SERVER
        )
    if version is None:
        return usable[0]
    found: dict[Path, str] = {}
    for path in usable:
        found[path] = _major_version(path)
        if found[path] == version:
            return path
    listed = ", ".join(f"{found[path] or '?'} in {path}" for path in usable)
    raise EmbeddedPostgresUnavailable(
        f"The embedded PostgreSQL cluster was created by PostgreSQL {version}, which can only "
        f"be run by PostgreSQL {version}, but CodeForge found only PostgreSQL {listed}. "
        f"Install PostgreSQL {version} again, or move the cluster folder away to start with "
        f"an empty database. {_USE_OWN_SERVER}"
    )


def _candidate_bin_dirs() -> Iterator[Path]:
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            if done.stdout.strip():
                yield Path(done.stdout.strip())
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    yield from sorted(versions, key=lambda path: _version_key(path.parent.name), reverse=True)
    initdb = shutil.which("initdb")
    if initdb is not None:
        yield Path(initdb).parent
    pgserver = pgserver_bin_dir()
    if pgserver is not None:
        yield pgserver


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


def _has_binaries(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / name, os.X_OK) for name in _BINARIES)


def _require_binaries(bin_dir: Path) -> None:
    if not _has_binaries(bin_dir):
        raise EmbeddedPostgresUnavailable(
            f"{bin_dir} does not hold the PostgreSQL server programs initdb, pg_ctl and "
            f"postgres needed to run the embedded database. {_USE_OWN_SERVER}"
        )


def _major_version(bin_dir: Path) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, timeout=10
        )
        if match := re.search(r"\(PostgreSQL\) (\d+)", done.stdout):
            return match.group(1)
    return ""


def _cluster_version(data_dir: Path) -> str | None:
    try:
        return (data_dir / "PG_VERSION").read_text().strip()
    except FileNotFoundError:
        return None


def _server_env() -> dict[str, str]:
    # PGDATA, PGPORT, PGHOST... would silently redirect pg_ctl and postgres.
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


# Processes --------------------------------------------------------------------------------


def _is_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (killed, not yet reaped) counts as dead."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return False
    except OSError:
        return False
    else:
        return stat_line.rpartition(")")[2].split()[0] not in ("Z", "X")
    try:  # no procfs (macOS)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_postmaster_of(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a live postgres process serving ``data_dir`` (not a reused pid)."""
    if not _is_alive(pid):
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True  # no procfs: trust postmaster.pid, as pg_ctl does
    try:
        if (proc / "comm").read_text().strip() != "postgres":
            return False
        return Path(os.readlink(proc / "cwd")) == data_dir.resolve()
    except PermissionError:
        return True  # another user's postgres: the name matched, the folder cannot be seen
    except OSError:
        return False


def _processes_in(data_dir: Path) -> bool:
    """Whether a live process has ``data_dir`` as its working folder (all postgres ones do)."""
    target = str(data_dir.resolve())
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError):
            if os.readlink(entry / "cwd") == target and _is_alive(int(entry.name)):
                return True
    return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_HOST, 0))
        return int(probe.getsockname()[1])


# Root -------------------------------------------------------------------------------------


def _server_user(data_dir: Path) -> str:
    """Who runs the server when CodeForge is root; creates codeforge-pg if needed."""
    with contextlib.suppress(OSError, KeyError):
        owner = data_dir.stat().st_uid
        if owner != 0:
            return pwd.getpwuid(owner).pw_name  # keep running an existing cluster as its owner
    for name in _SERVER_USERS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name).pw_name
    name = _SERVER_USERS[-1]
    command = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        error = done.stderr.strip() or f"exit {done.returncode}"
    except (OSError, subprocess.SubprocessError) as exc:
        error = str(exc)
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name).pw_name  # also when a concurrent useradd won the race
    raise EmbeddedPostgresUnavailable(
        f"CodeForge runs as root, and PostgreSQL refuses to run as root, so CodeForge tried to "
        f"create the system user {name!r} to run its embedded PostgreSQL, but useradd failed: "
        f"{error}. Create a user named {name!r} or 'postgres', or run CodeForge as an "
        f"unprivileged user. {_USE_OWN_SERVER}"
    )


def _reachable_by(user: str, path: Path) -> bool:
    try:
        done = subprocess.run(
            ["runuser", "-u", user, "--", "test", "-x", str(path)],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmbeddedPostgresUnavailable(
            f"CodeForge runs as root and needs runuser to run its embedded PostgreSQL as the "
            f"unprivileged user {user!r} (PostgreSQL refuses to run as root), but could not run "
            f"it: {exc}. Install util-linux or run CodeForge as an unprivileged user. "
            + _USE_OWN_SERVER
        ) from exc
    return done.returncode == 0


def _first_untraversable(path: Path, account: pwd.struct_passwd) -> Path:
    """The outermost folder on the way to ``path`` that ``account`` may not enter."""
    groups = set(os.getgrouplist(account.pw_name, account.pw_gid))
    for folder in [*reversed(path.parents), path]:
        try:
            mode = folder.stat()
        except OSError:
            return folder
        if mode.st_uid == account.pw_uid:
            allowed = mode.st_mode & stat.S_IXUSR
        elif mode.st_gid in groups:
            allowed = mode.st_mode & stat.S_IXGRP
        else:
            allowed = mode.st_mode & stat.S_IXOTH
        if not allowed:
            return folder
    return path
