"""Shared fixtures: real PostgreSQL for every test run, in a database of its own.

Which server: $CODEFORGE_TEST_DATABASE_URL when set; else the local server at
127.0.0.1:5432 when it answers; else an embedded cluster started for the run.
Each run creates its own databases (cf_test_<run>_<n>) and drops them at the
end, so runs never see each other's rows.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

# The scripted OpenAI-compatible server (`scripted_llm` fixture) for every test that needs a
# model; aider's venv (`aider_env`, made once per checkout) for the aider backend's tests.
pytest_plugins = ["tests.support.scripted_llm", "tests.support.aider"]

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The folder a test lives in is its kind: tests/unit -> @unit, and so on.
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        kind = {"benchmarks": "benchmark"}.get(parts[0], parts[0]) if len(parts) > 1 else None
        if kind in {"unit", "contract", "integration", "e2e", "benchmark"}:
            item.add_marker(getattr(pytest.mark, kind))


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A URL to a database on a server where the tests may create databases."""
    configured = os.environ.get("CODEFORGE_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    if _answers(LOCAL_SERVER):
        yield LOCAL_SERVER
        return
    from adapters.postgres.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="cf-test-pg-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "cluster")
        url = server.start()
        try:
            yield url
        finally:
            server.stop()


@pytest.fixture(scope="session")
def make_database(postgres_admin_url: str) -> Iterator[Callable[[], str]]:
    """Create a fresh, empty database and return its URL; all are dropped at the end."""
    run = uuid.uuid4().hex[:8]
    counter = itertools.count(1)
    created: list[str] = []

    def create() -> str:
        name = f"cf_test_{run}_{next(counter)}"
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return _with_database(postgres_admin_url, name)

    yield create
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        for name in created:
            with contextlib.suppress(psycopg.Error):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(make_database: Callable[[], str]) -> str:
    """The test run's own database, shared by the tests that do not need a fresh one."""
    return make_database()


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{base}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def migrated_database_url(make_database: Callable[[], str]) -> str:
    """A database of this run with every migration applied."""
    from adapters.postgres.migrations import YoyoMigrator

    url = make_database()
    YoyoMigrator(url).apply()
    return url


@pytest.fixture(scope="session")
async def pg_pool(migrated_database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    """An open pool on the migrated database, shared by the run's tests.

    Tests that share it must not depend on the table being empty: they create
    their own tenant (see `tenant_id`) and look only at its rows.
    """
    from adapters.postgres.pool import open_pool
    from codeforge.settings import PoolSettings

    async for pool in open_pool(migrated_database_url, PoolSettings(min_size=1, max_size=10)):
        yield pool


@pytest.fixture
def tenant_id() -> uuid.UUID:
    """A fresh tenant id per test: rows of other tests are invisible to it."""
    return uuid.uuid4()
