"""Every migration applies, rolls back, and applies again on real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from adapters.postgres.migrations import YoyoMigrator, migrations_dir
from codeforge.ports.migrations import MigrationFailed
from tests.support.processes import codeforge_env, run_codeforge


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename NOT LIKE '\\_yoyo%' AND tablename <> 'yoyo_lock'"
        ).fetchall()
    return {r[0] for r in rows}


def test_every_migration_has_a_rollback() -> None:
    forward = sorted(
        p for p in migrations_dir().glob("*.sql") if not p.name.endswith(".rollback.sql")
    )
    assert forward, "no migrations found"
    missing = [p.name for p in forward if not p.with_suffix(".rollback.sql").exists()]
    assert missing == []


def test_migrations_apply_roll_back_completely_and_apply_again(
    make_database: Callable[[], str],
) -> None:
    url = make_database()
    migrator = YoyoMigrator(url)
    all_ids = [m.id for m in migrator.status()]

    assert migrator.apply() == all_ids
    created = tables(url)
    assert "tenants" in created
    assert all(state.applied for state in migrator.status())
    assert migrator.apply() == []

    assert migrator.rollback() == list(reversed(all_ids))
    assert tables(url) == set()
    assert not any(state.applied for state in migrator.status())

    assert migrator.apply() == all_ids
    assert tables(url) == created


def test_the_default_tenant_exists_after_migrating(make_database: Callable[[], str]) -> None:
    url = make_database()
    YoyoMigrator(url).apply()
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT id::text, name, version FROM tenants").fetchone()
    assert row == ("00000000-0000-0000-0000-000000000000", "default", 1)


def test_a_failing_migration_names_itself_and_leaves_nothing_behind(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (tmp_path / "0001_good.rollback.sql").write_text("DROP TABLE good;")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE bad (id int);\nSELECT no_such_column;")
    (tmp_path / "0002_bad.rollback.sql").write_text("DROP TABLE bad;")
    migrator = YoyoMigrator(url, directory=tmp_path)
    with pytest.raises(MigrationFailed, match="no_such_column"):
        migrator.apply()
    assert "bad" not in tables(url)
    assert {s.id: s.applied for s in migrator.status()} == {"0001_good": True, "0002_bad": False}


def test_an_unreachable_database_is_a_clear_error() -> None:
    migrator = YoyoMigrator("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(MigrationFailed, match="cannot connect to the database"):
        migrator.status()


def test_the_migrate_command_reports_status_up_and_down(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    env = codeforge_env(CODEFORGE_DATABASE__URL=make_database(), CODEFORGE_DATA_DIR=str(tmp_path))

    status = run_codeforge(["migrate", "status"], env)
    assert status.returncode == 0, status.stderr
    assert "pending  0001_tenants" in status.stdout

    up = run_codeforge(["migrate", "up"], env)
    assert up.returncode == 0, up.stderr
    assert "applied  0001_tenants" in up.stdout
    assert "applied  0001_tenants" in run_codeforge(["migrate", "status"], env).stdout

    down = run_codeforge(["migrate", "down", "--steps", "1"], env)
    assert down.returncode == 0, down.stderr
    assert down.stdout.splitlines()[0].startswith("rolled back ")


def test_the_migrate_command_fails_cleanly_without_a_database(tmp_path: Path) -> None:
    env = codeforge_env(
        CODEFORGE_DATABASE__URL="postgresql://nobody@127.0.0.1:1/none",
        CODEFORGE_DATA_DIR=str(tmp_path),
    )
    result = run_codeforge(["migrate", "status"], env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("codeforge: ")
