"""Secrets, the service: the store chain, redaction of every value, require(), rotation.

Real stores throughout: the environment store over a dict, the file store in tmp_path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.secrets.env import EnvSecretStore
from adapters.secrets.file import FileSecretStore
from codeforge.ports.errors import PortError
from codeforge.ports.secrets import InvalidSecretName, SecretNotFound
from codeforge.services.secrets import Secrets

pytestmark = pytest.mark.unit


class Chain:
    """An environment dict, a file store and the service over both, in the container's
    order; ``redacted`` receives what the service passes to its redact callback."""

    def __init__(self, tmp_path: Path, env: dict[str, str], file: dict[str, str]) -> None:
        self.environ = {f"CODEFORGE_SECRET_{k}": v for k, v in env.items()}
        self.path = tmp_path / "secrets" / "secrets.json"
        seeder = FileSecretStore(self.path)
        for name, value in file.items():
            seeder.set(name, value)
        self.env_store = EnvSecretStore(self.environ)
        self.file_store = FileSecretStore(self.path)
        self.redacted: list[str] = []
        self.secrets = Secrets([self.env_store, self.file_store], self.redacted.append)


def _discard(value: str) -> None:
    """A redact callback for tests that do not look at redaction."""


@pytest.fixture
def chain(tmp_path: Path) -> Chain:
    return Chain(
        tmp_path,
        env={"OPENAI_API_KEY": "sk-env-openai", "SHARED": "shared-from-env"},
        file={"ANTHROPIC_KEY": "sk-file-anthropic", "SHARED": "shared-from-file"},
    )


# -- the chain ---------------------------------------------------------------------------------


def test_the_first_store_that_holds_a_name_wins(chain: Chain) -> None:
    assert chain.secrets.get("SHARED") == "shared-from-env"
    assert chain.secrets.get("OPENAI_API_KEY") == "sk-env-openai"
    assert chain.secrets.get("ANTHROPIC_KEY") == "sk-file-anthropic"
    assert chain.secrets.get("NOWHERE") is None


def test_names_are_case_insensitive_through_the_chain(chain: Chain) -> None:
    assert chain.secrets.get("anthropic_key") == "sk-file-anthropic"
    assert chain.secrets.require("Openai_Api_Key") == "sk-env-openai"


def test_names_lists_every_store_once_and_sorted(chain: Chain) -> None:
    assert chain.secrets.names() == ["ANTHROPIC_KEY", "OPENAI_API_KEY", "SHARED"]


def test_an_invalid_name_raises(chain: Chain) -> None:
    with pytest.raises(InvalidSecretName):
        chain.secrets.get("not-a-name")
    with pytest.raises(InvalidSecretName):
        chain.secrets.require("")


def test_an_empty_chain_holds_nothing() -> None:
    secrets = Secrets([], _discard)
    assert secrets.get("ANY") is None
    assert secrets.names() == []


# -- require -----------------------------------------------------------------------------------


def test_require_names_the_secret_and_both_ways_to_provide_it(chain: Chain) -> None:
    with pytest.raises(SecretNotFound) as caught:
        chain.secrets.require("github_token")
    message = str(caught.value)
    assert caught.value.name == "GITHUB_TOKEN"
    assert isinstance(caught.value, PortError)
    assert "secret GITHUB_TOKEN is not set" in message
    assert "CODEFORGE_SECRET_GITHUB_TOKEN" in message
    assert "`codeforge secrets set GITHUB_TOKEN`" in message
    assert f"the file store at {chain.path}" in message


def test_require_without_a_file_store_still_gives_both_ways() -> None:
    secrets = Secrets([EnvSecretStore({})], _discard)
    with pytest.raises(SecretNotFound) as caught:
        secrets.require("GITHUB_TOKEN")
    message = str(caught.value)
    assert "CODEFORGE_SECRET_GITHUB_TOKEN" in message
    assert "`codeforge secrets set GITHUB_TOKEN`" in message
    assert "the file store" in message


# -- redaction ---------------------------------------------------------------------------------


def test_every_value_is_registered_before_anyone_asks(chain: Chain) -> None:
    # Shadowed values too: "shared-from-file" is never handed out, but it is a secret.
    assert sorted(chain.redacted) == sorted(
        ["sk-env-openai", "shared-from-env", "sk-file-anthropic", "shared-from-file"]
    )


def test_a_value_handed_out_has_been_registered_exactly_once(chain: Chain) -> None:
    for _ in range(3):
        value = chain.secrets.require("OPENAI_API_KEY")
        assert value in chain.redacted
        chain.secrets.get("anthropic_key")
    assert len(chain.redacted) == len(set(chain.redacted))


def test_a_value_that_appeared_without_a_service_reload_is_registered_when_handed_out(
    chain: Chain,
) -> None:
    # The store was reloaded directly, bypassing the service; get() must still register.
    chain.environ["CODEFORGE_SECRET_LATE"] = "late-arrival-value"
    chain.env_store.reload()
    assert "late-arrival-value" not in chain.redacted
    assert chain.secrets.get("LATE") == "late-arrival-value"
    assert "late-arrival-value" in chain.redacted


def test_a_value_set_through_the_service_is_registered(chain: Chain) -> None:
    chain.secrets.set("NEW_TOKEN", "brand-new-token")
    assert "brand-new-token" in chain.redacted
    assert "brand-new-token" in chain.secrets.known_values()


def test_known_values_lists_every_registered_value_longest_first(chain: Chain) -> None:
    known = chain.secrets.known_values()
    assert sorted(known) == sorted(chain.redacted)
    assert [len(v) for v in known] == sorted((len(v) for v in known), reverse=True)
    # A copy: the caller cannot change what the service knows.
    known.clear()
    assert chain.secrets.known_values() != []


# -- rotation ----------------------------------------------------------------------------------


def test_reload_picks_up_a_rotated_value_and_keeps_the_old_one_known(chain: Chain) -> None:
    FileSecretStore(chain.path).set("ANTHROPIC_KEY", "sk-file-rotated")
    assert chain.secrets.get("ANTHROPIC_KEY") == "sk-file-anthropic"

    chain.secrets.reload()

    assert chain.secrets.get("ANTHROPIC_KEY") == "sk-file-rotated"
    assert "sk-file-rotated" in chain.redacted
    # Events of runs that started before the rotation may still carry the old value.
    assert "sk-file-anthropic" in chain.secrets.known_values()


def test_reload_reloads_the_other_stores_when_one_fails(chain: Chain) -> None:
    chain.environ["CODEFORGE_SECRET_OPENAI_API_KEY"] = "sk-env-rotated"
    chain.path.chmod(0o644)

    with pytest.raises(PortError, match="chmod 600") as caught:
        chain.secrets.reload()

    assert "secrets reload failed" in str(caught.value)
    assert chain.secrets.get("OPENAI_API_KEY") == "sk-env-rotated"
    assert "sk-env-rotated" in chain.redacted
    # The failing store keeps what it had.
    assert chain.secrets.get("ANTHROPIC_KEY") == "sk-file-anthropic"


# -- writing -----------------------------------------------------------------------------------


def test_set_and_delete_go_to_the_first_writable_store(chain: Chain) -> None:
    chain.secrets.set("github_token", "ghp-written-value")
    assert FileSecretStore(chain.path).get("GITHUB_TOKEN") == "ghp-written-value"
    assert chain.secrets.get("GITHUB_TOKEN") == "ghp-written-value"
    assert "CODEFORGE_SECRET_GITHUB_TOKEN" not in chain.environ

    assert chain.secrets.delete("GITHUB_TOKEN") is True
    assert chain.secrets.delete("GITHUB_TOKEN") is False
    assert chain.secrets.get("GITHUB_TOKEN") is None


def test_the_environment_still_wins_after_the_file_store_changes(chain: Chain) -> None:
    chain.secrets.set("SHARED", "shared-rewritten")
    assert chain.secrets.get("SHARED") == "shared-from-env"
    assert chain.secrets.delete("SHARED") is True
    assert chain.secrets.get("SHARED") == "shared-from-env"


def test_writing_without_a_writable_store_is_refused() -> None:
    secrets = Secrets([EnvSecretStore({})], _discard)
    with pytest.raises(PortError, match="no writable secret store"):
        secrets.set("KEY", "value-1")
    with pytest.raises(PortError, match="no writable secret store"):
        secrets.delete("KEY")
