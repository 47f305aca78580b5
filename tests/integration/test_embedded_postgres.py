"""The embedded PostgreSQL cluster, against real servers from both binary sources."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from adapters.postgres.embedded import (
    EmbeddedPostgres,
    EmbeddedPostgresUnavailable,
    find_bin_dir,
    pgserver_bin_dir,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PGSERVER = pgserver_bin_dir()

Factory = Callable[[], EmbeddedPostgres]


def _discovered() -> Path | None:
    try:
        return find_bin_dir()
    except EmbeddedPostgresUnavailable:
        return None


@pytest.fixture(params=["discovered", "pgserver"])
def bin_dir(request: pytest.FixtureRequest) -> Path:
    found = _discovered() if request.param == "discovered" else PGSERVER
    if found is None:
        pytest.skip(f"no PostgreSQL binaries from {request.param}")
    return found


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Not tmp_path: pytest makes /tmp/pytest-of-<user> 0700, which the unprivileged server
    # user cannot enter when the tests run as root.
    path = Path(tempfile.mkdtemp(prefix="codeforge-pg-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_pg(workdir: Path, bin_dir: Path) -> Iterator[Factory]:
    """Builds EmbeddedPostgres objects; afterwards stops them and any server left running."""
    created: list[EmbeddedPostgres] = []

    def make() -> EmbeddedPostgres:
        pg = EmbeddedPostgres(workdir / "cluster", bin_dir=bin_dir, start_timeout=30)
        created.append(pg)
        return pg

    yield make
    failures: list[Exception] = []
    for pg in created:
        try:
            pg.stop()
        except Exception as exc:  # stop the others and sweep first, then report
            failures.append(exc)
    for pid_file in workdir.glob("*/data/postmaster.pid"):
        _stop_pid(_postmaster_pid(pid_file.parent))
    if failures:
        raise failures[0]


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # this machine's init does not reap zombies


def _stop_pid(pid: int | None) -> None:
    if pid is None or not _running(pid):
        return
    os.kill(pid, signal.SIGINT)  # fast shutdown
    deadline = time.monotonic() + 10
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _query(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(query)
        return cursor.fetchall() if cursor.description else []


def _accepts_connections(url: str) -> bool:
    try:
        _query(url, "SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def test_start_initialises_a_cluster_that_serves_the_database(
    make_pg: Factory, workdir: Path, bin_dir: Path
) -> None:
    pg = make_pg()

    url = pg.start()

    assert url.startswith("postgresql://codeforge@127.0.0.1:")
    assert url.endswith("/codeforge")
    assert pg.url == url
    assert pg.owns_server
    assert pg.start() == url  # idempotent
    assert _query(url, "SELECT 1, current_database()") == [(1, "codeforge")]
    settings = _query(
        url,
        "SELECT current_setting('listen_addresses'), current_setting('unix_socket_directories')",
    )
    assert settings == [("127.0.0.1", "")]
    version = _query(url, "SELECT current_setting('server_version_num')::int / 10000")[0][0]
    assert str(version) == (workdir / "cluster/data/PG_VERSION").read_text().strip()
    if bin_dir == PGSERVER:
        assert version == 16
    assert (workdir / "cluster/log/postgres.log").stat().st_size > 0


def test_a_second_instance_reuses_the_running_server_without_owning_it(make_pg: Factory) -> None:
    first = make_pg()
    url = first.start()
    second = make_pg()

    assert second.start() == url
    assert not second.owns_server
    second.stop()
    second.stop()

    assert _accepts_connections(url)
    first.stop()
    assert not _accepts_connections(url)


def test_concurrent_starts_share_one_server(make_pg: Factory) -> None:
    instances = [make_pg(), make_pg()]
    urls: list[str] = []
    errors: list[BaseException] = []

    def start(pg: EmbeddedPostgres) -> None:
        try:
            urls.append(pg.start())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(pg,)) for pg in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(set(urls)) == 1
    assert sorted(pg.owns_server for pg in instances) == [False, True]
    assert _query(urls[0], "SELECT 1") == [(1,)]


def test_stop_then_start_keeps_the_data(make_pg: Factory, workdir: Path) -> None:
    pg = make_pg()
    _query(pg.start(), "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
    pg.stop()
    pg.stop()
    with pytest.raises(RuntimeError):
        _ = pg.url
    # A pid file naming a live process that is not postgres (pid reuse after a reboot).
    (workdir / "cluster/data/postmaster.pid").write_text(f"{os.getpid()}\n/x\n0\n5432\n")

    again = make_pg()
    url = again.start()

    assert again.owns_server
    assert _query(url, "SELECT x FROM kept") == [(42,)]


def test_a_killed_postmaster_is_recovered(make_pg: Factory, workdir: Path) -> None:
    crashed = make_pg()
    _query(crashed.start(), "CREATE TABLE committed (x int); INSERT INTO committed VALUES (7)")
    pid = _postmaster_pid(workdir / "cluster/data")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    while _running(pid):
        time.sleep(0.01)

    recovered = make_pg()
    url = recovered.start()

    assert recovered.owns_server
    assert _query(url, "SELECT x FROM committed") == [(7,)]
    crashed.stop()  # its server is gone; it must not stop the new one
    assert _accepts_connections(url)


def test_a_server_left_by_a_dead_codeforge_is_adopted(
    make_pg: Factory, workdir: Path, bin_dir: Path
) -> None:
    cluster = workdir / "cluster"
    script = (
        "import sys; from pathlib import Path; "
        "from adapters.postgres.embedded import EmbeddedPostgres; "
        "print(EmbeddedPostgres(Path(sys.argv[1]), bin_dir=Path(sys.argv[2])).start())"
    )
    pg = make_pg()
    left = subprocess.run(
        [sys.executable, "-c", script, str(cluster), str(bin_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()

    assert pg.start() == left
    assert pg.owns_server
    pg.stop()
    assert not _accepts_connections(left)


def test_missing_binaries_are_reported_as_unavailable(workdir: Path) -> None:
    pg = EmbeddedPostgres(workdir / "cluster", bin_dir=workdir)

    with pytest.raises(EmbeddedPostgresUnavailable, match="CODEFORGE_DATABASE__URL"):
        pg.start()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to another user")
def test_a_folder_the_server_user_cannot_enter_is_reported(workdir: Path) -> None:
    private = workdir / "private"
    private.mkdir(mode=0o700)
    pg = EmbeddedPostgres(private / "cluster")

    with pytest.raises(EmbeddedPostgresUnavailable) as raised:
        pg.start()

    message = str(raised.value)
    assert str(private) in message
    assert "CODEFORGE_DATABASE__URL" in message
    assert "CODEFORGE_DATABASE__EMBEDDED__DIR" in message
    assert "\n" not in message
    assert private.stat().st_mode & 0o777 == 0o700
