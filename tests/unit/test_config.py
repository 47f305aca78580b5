"""Configuration layering, validation and display."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import yaml

from codeforge.config import ConfigError, default_config_path, effective_items, load_config
from codeforge.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_built_in_defaults_file_matches_the_typed_defaults() -> None:
    assert load_config(env={}).settings == Settings()


def test_the_example_config_documents_every_setting_with_its_default() -> None:
    example = load_config(env={}, config_file=ROOT / "config" / "codeforge.example.yaml")
    assert example.settings == Settings()
    documented = yaml.safe_load((ROOT / "config" / "codeforge.example.yaml").read_text())
    defaults = yaml.safe_load(default_config_path().read_text())

    def keys(tree: dict, prefix: str = "") -> set[str]:
        out: set[str] = set()
        for k, v in tree.items():
            out |= keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
        return out

    every_field = keys(msgspec.to_builtins(Settings()))
    assert keys(documented) == every_field
    assert keys(defaults) == every_field


def test_layers_apply_in_order_defaults_file_env_flags(tmp_path: Path) -> None:
    config = write(
        tmp_path / "cf.yaml", "http:\n  port: 9001\n  host: 0.0.0.0\nlog:\n  level: debug\n"
    )
    loaded = load_config(
        config_file=config,
        env={"CODEFORGE_HTTP__PORT": "9002", "CODEFORGE_DATA_DIR": "/srv/cf"},
        flags={"http.port": 9003, "http.host": None},
    )
    s = loaded.settings
    assert (s.http.port, s.http.host, s.log.level, s.data_dir) == (
        9003,
        "0.0.0.0",
        "debug",
        "/srv/cf",
    )
    assert loaded.source_of("http.port") == "flag --port"
    assert loaded.source_of("http.host") == f"{config}:3"
    assert loaded.source_of("log.level") == f"{config}:5"
    assert loaded.source_of("data_dir") == "env CODEFORGE_DATA_DIR"
    assert loaded.source_of("queue.kind").startswith("config/codeforge.yaml:")


def test_the_config_file_can_come_from_CODEFORGE_CONFIG(tmp_path: Path) -> None:
    config = write(tmp_path / "cf.yaml", "queue:\n  kind: nats\n")
    loaded = load_config(env={"CODEFORGE_CONFIG": str(config)})
    assert loaded.settings.queue.kind == "nats"
    assert loaded.config_file == str(config)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CODEFORGE_HTTP__PORT": "eighty"},
            "invalid setting http.port = 'eighty' (from env CODEFORGE_HTTP__PORT): "
            "expected an integer",
        ),
        (
            {"CODEFORGE_HTTP__PORT": "70000"},
            "invalid setting http.port = '70000' (from env CODEFORGE_HTTP__PORT): "
            "expected an integer <= 65535",
        ),
        (
            {"CODEFORGE_QUEUE__KIND": "kafka"},
            "invalid setting queue.kind = 'kafka' (from env CODEFORGE_QUEUE__KIND): "
            "expected one of memory, nats",
        ),
        (
            {"CODEFORGE_HTTP_PORT": "80"},
            "unknown setting http_port (from env CODEFORGE_HTTP_PORT)",
        ),
        (
            {"CODEFORGE_DATABASE__POOL__MIN_SIZE": "50"},
            "invalid setting database.pool.min_size = '50' "
            "(from env CODEFORGE_DATABASE__POOL__MIN_SIZE): expected at most "
            "database.pool.max_size (15)",
        ),
        (
            {"CODEFORGE_DATABASE__URL": "mysql://db/x"},
            "invalid setting database.url = 'mysql://db/x' (from env CODEFORGE_DATABASE__URL): "
            "expected a PostgreSQL URL",
        ),
    ],
)
def test_a_bad_environment_value_fails_with_one_line_naming_key_source_and_expectation(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env=env)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_bad_file_value_names_the_file_and_line(tmp_path: Path) -> None:
    config = write(tmp_path / "cf.yaml", "# comment\nlog:\n  level: loud\n")
    with pytest.raises(ConfigError, match=rf"log.level = 'loud' \(from {config}:3\).*one of debug"):
        load_config(config_file=config, env={})


def test_an_unknown_key_in_a_file_lists_the_known_ones(tmp_path: Path) -> None:
    config = write(tmp_path / "cf.yaml", "http:\n  prot: 1\n")
    with pytest.raises(ConfigError, match=rf"unknown setting http.prot \(from {config}:2\); known"):
        load_config(config_file=config, env={})


def test_broken_yaml_and_missing_files_are_reported_plainly(tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.yaml", "http:\n  port: [1\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(config_file=broken, env={})
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_config(config_file=tmp_path / "absent.yaml", env={})
    with pytest.raises(ConfigError, match=r"\(from CODEFORGE_CONFIG\) does not exist"):
        load_config(env={"CODEFORGE_CONFIG": str(tmp_path / "absent.yaml")})
    top = write(tmp_path / "list.yaml", "- 1\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(config_file=top, env={})


def test_secrets_are_redacted_when_the_config_is_shown() -> None:
    loaded = load_config(
        env={
            "CODEFORGE_DATABASE__URL": "postgresql://cf:hunter2@db:5432/cf",
            "CODEFORGE_LLM__API_KEY_SECRET": "OPENAI_KEY",
        }
    )
    shown = {key: (value, source) for key, value, source in effective_items(loaded)}
    assert shown["database.url"] == (
        "postgresql://cf:***@db:5432/cf",
        "env CODEFORGE_DATABASE__URL",
    )
    # The name of a secret is not the secret.
    assert shown["llm.api_key_secret"][0] == "OPENAI_KEY"
    assert "hunter2" not in repr(shown)


def test_reserved_environment_variables_are_not_settings() -> None:
    loaded = load_config(
        env={"CODEFORGE_SECRET_OPENAI": "sk-x", "CODEFORGE_TEST_DATABASE_URL": "postgresql://x"}
    )
    assert loaded.settings == Settings()
