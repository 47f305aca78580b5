"""The `codeforge` command line, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.processes import codeforge_env, run_codeforge


def test_help_lists_the_commands() -> None:
    result = run_codeforge(["--help"], codeforge_env())
    assert result.returncode == 0
    for command in ("serve", "migrate", "config"):
        assert command in result.stdout


def test_config_show_prints_every_value_with_its_source_and_hides_secrets(tmp_path: Path) -> None:
    config = tmp_path / "cf.yaml"
    config.write_text("http:\n  port: 9100\n")
    env = codeforge_env(
        CODEFORGE_CONFIG=str(config),
        CODEFORGE_DATABASE__URL="postgresql://cf:s3cret-pw@db.example:5432/cf",
    )
    result = run_codeforge(["config", "show"], env)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "9100" in lines["http.port"]
    assert f"# {config}:2" in lines["http.port"]
    assert "# env CODEFORGE_DATABASE__URL" in lines["database.url"]
    assert "config/codeforge.yaml:" in lines["queue.kind"]
    assert "s3cret-pw" not in result.stdout
    assert "postgresql://cf:***@db.example:5432/cf" in result.stdout

    as_json = json.loads(run_codeforge(["config", "show", "--json"], env).stdout)
    assert as_json["http.port"] == {"value": 9100, "source": f"{config}:2"}


def test_a_missing_config_file_is_reported_plainly(tmp_path: Path) -> None:
    env = codeforge_env(CODEFORGE_HTTP__PORT="9200")
    result = run_codeforge(["config", "show", "--json", "--config", str(tmp_path / "x.yaml")], env)
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_a_bad_setting_stops_the_command_with_one_line_and_exit_code_2() -> None:
    result = run_codeforge(["serve"], codeforge_env(CODEFORGE_HTTP__PORT="http"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "codeforge: invalid setting http.port = 'http' (from env CODEFORGE_HTTP__PORT): "
        "expected an integer"
    )
    assert result.stdout == ""


def test_serve_explains_how_to_configure_a_database_when_none_can_be_embedded(
    tmp_path: Path,
) -> None:
    # A 0700 folder owned by root: the unprivileged PostgreSQL user cannot reach it.
    blocked = tmp_path / "private"
    blocked.mkdir(mode=0o700)
    env = codeforge_env(CODEFORGE_DATA_DIR=str(blocked / "data"))
    import os

    if os.geteuid() != 0:
        import pytest

        pytest.skip("only root runs PostgreSQL as another user")
    result = run_codeforge(["serve", "--port", "1"], env)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("codeforge: ")
    assert "CODEFORGE_DATABASE__URL" in last
    assert "Traceback" not in result.stderr + result.stdout


def test_keys_create_prints_the_key_last_and_stores_only_its_hash(
    migrated_database_url: str, tmp_path: Path
) -> None:
    import hashlib

    import psycopg

    env = codeforge_env(
        CODEFORGE_DATABASE__URL=migrated_database_url, CODEFORGE_DATA_DIR=str(tmp_path)
    )
    tenant = f"cli-{tmp_path.name[-12:]}".lower().replace("_", "-")
    created = run_codeforge(["keys", "create", "--role", "admin", "--tenant", tenant], env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("cf_")
    assert key not in created.stderr
    with psycopg.connect(migrated_database_url) as conn:
        row = conn.execute(
            "SELECT k.role, t.name FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
            " WHERE k.key_hash = %s",
            (hashlib.sha256(key.encode()).hexdigest(),),
        ).fetchone()
    assert row == ("admin", tenant)

    listed = run_codeforge(["keys", "list", "--tenant", tenant], env)
    assert listed.returncode == 0, listed.stderr
    assert "admin" in listed.stdout
    assert key not in listed.stdout

    unknown = run_codeforge(["keys", "list", "--tenant", "no-such-tenant"], env)
    assert unknown.returncode == 1
    assert "no tenant named" in unknown.stderr


def test_secrets_set_list_delete_use_the_private_file_store(tmp_path: Path) -> None:
    import subprocess

    from tests.support.processes import CODEFORGE

    env = codeforge_env(CODEFORGE_DATA_DIR=str(tmp_path))
    stored = subprocess.run(
        [CODEFORGE, "secrets", "set", "openai_api_key", "--value-from-stdin"],
        input="sk-test-123456\n",
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert stored.returncode == 0, stored.stderr
    assert "sk-test-123456" not in stored.stdout + stored.stderr
    assert run_codeforge(["secrets", "list"], env).stdout.split() == ["OPENAI_API_KEY"]
    store = tmp_path / "secrets" / "secrets.json"
    assert store.stat().st_mode & 0o777 == 0o600
    assert "sk-test-123456" in store.read_text()
    removed = run_codeforge(["secrets", "delete", "OPENAI_API_KEY"], env)
    assert removed.returncode == 0
    assert run_codeforge(["secrets", "list"], env).stdout.strip() == ""
    bad = run_codeforge(["secrets", "delete", "not a name"], env)
    assert bad.returncode == 1
    assert bad.stderr.startswith("codeforge: ")
