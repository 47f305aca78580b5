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
