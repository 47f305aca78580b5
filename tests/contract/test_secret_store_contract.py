"""The SecretStore contract, run against every adapter, plus what only the file store does.

`SecretStoreContract` holds the tests every adapter must pass; each adapter subclasses it
once and says how to build a store over given secrets and how to change the source behind
a store's back (which only `reload()` may pick up).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters.secrets.env import EnvSecretStore
from adapters.secrets.file import FileSecretStore
from codeforge.ports.errors import PortError
from codeforge.ports.secrets import (
    InvalidSecretName,
    SecretStore,
    WritableSecretStore,
)

pytestmark = pytest.mark.contract

ROOT = Path(__file__).resolve().parents[2]

INVALID_NAMES = [
    "",
    "1KEY",  # must start with a letter
    "_KEY",
    "MY-KEY",
    "MY KEY",
    "MY.KEY",
    " KEY",
    "KEY\n",  # "$" would have matched before the newline
    "A" * 65,
    "\u017fECRET",  # long s: upper() turns it into "SECRET"; non-ASCII is refused before that
    "KÉY",
]


class SecretStoreContract:
    """The tests every SecretStore adapter must pass. Not collected itself (no Test prefix)."""

    tmp_path: Path

    @pytest.fixture(autouse=True)
    def _workdir(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def build(self, secrets: dict[str, str]) -> SecretStore:
        """A new store holding ``secrets``, with names spelt as given."""
        raise NotImplementedError

    def change_source(self, name: str, value: str | None) -> None:
        """Set (or, with None, remove) ``name`` in the source the last built store reads,
        without going through that store."""
        raise NotImplementedError

    # -- the contract ----------------------------------------------------------------------

    def test_it_is_a_secret_store(self) -> None:
        assert isinstance(self.build({}), SecretStore)

    def test_get_returns_the_value_exactly(self) -> None:
        value = '  p@ss="wörd" = 1;\tline2\n '
        store = self.build({"API_KEY": value, "OTHER": "other-value"})
        assert store.get("API_KEY") == value
        assert store.get("OTHER") == "other-value"

    def test_get_returns_none_for_a_name_it_does_not_hold(self) -> None:
        store = self.build({"API_KEY": "value-1"})
        assert store.get("MISSING") is None

    def test_an_empty_store_holds_nothing(self) -> None:
        store = self.build({})
        assert store.names() == []
        assert store.get("ANYTHING") is None

    def test_names_are_canonical_and_sorted(self) -> None:
        store = self.build({"b_key": "v-b", "A_KEY": "v-a", "Zeta9": "v-z", "c": "v-c"})
        assert store.names() == ["A_KEY", "B_KEY", "C", "ZETA9"]

    def test_names_are_case_insensitive(self) -> None:
        store = self.build({"openai_api_key": "sk-lower", "ANTHROPIC_KEY": "sk-upper"})
        for spelling in ("openai_api_key", "OPENAI_API_KEY", "OpenAI_Api_Key"):
            assert store.get(spelling) == "sk-lower"
        assert store.get("anthropic_key") == "sk-upper"

    @pytest.mark.parametrize("name", INVALID_NAMES)
    def test_an_invalid_name_raises_instead_of_reading_as_missing(self, name: str) -> None:
        store = self.build({"KEY": "value-1"})
        with pytest.raises(InvalidSecretName) as caught:
            store.get(name)
        # Callers may catch it as either.
        assert isinstance(caught.value, PortError)
        assert isinstance(caught.value, ValueError)

    def test_an_overlong_name_is_not_echoed_in_the_error(self) -> None:
        # A value pasted where a name belongs must not end up in a log.
        pasted = "sk-" + "x" * 100
        with pytest.raises(InvalidSecretName) as caught:
            self.build({}).get(pasted)
        assert pasted not in str(caught.value)
        assert "103 characters" in str(caught.value)

    def test_the_shortest_and_longest_names_are_valid(self) -> None:
        longest = "K" + "_9" * 31 + "Z"
        assert len(longest) == 64
        store = self.build({"a": "value-a", longest: "value-long"})
        assert store.get("A") == "value-a"
        assert store.get(longest.lower()) == "value-long"

    def test_reload_sees_added_changed_and_removed_secrets(self) -> None:
        store = self.build({"KEEP": "keep-1", "ROTATE": "old-value", "DROP": "drop-1"})
        self.change_source("ROTATE", "new-value")
        self.change_source("DROP", None)
        self.change_source("ADDED", "added-1")
        # Lookups serve a snapshot: nothing changes until reload().
        assert store.get("ROTATE") == "old-value"
        assert store.get("ADDED") is None
        assert store.names() == ["DROP", "KEEP", "ROTATE"]

        store.reload()

        assert store.get("ROTATE") == "new-value"
        assert store.get("DROP") is None
        assert store.get("ADDED") == "added-1"
        assert store.get("KEEP") == "keep-1"
        assert store.names() == ["ADDED", "KEEP", "ROTATE"]

    def test_reload_with_no_change_keeps_everything(self) -> None:
        store = self.build({"A": "value-a", "B": "value-b"})
        store.reload()
        store.reload()
        assert [store.get(n) for n in store.names()] == ["value-a", "value-b"]


# --------------------------------------------------------------------------------------------
# Environment


class TestEnvSecretStore(SecretStoreContract):
    environ: dict[str, str]

    def build(self, secrets: dict[str, str]) -> SecretStore:
        # Unrelated variables around the secrets, as in a real environment.
        self.environ = {"PATH": "/usr/bin", "CODEFORGE_HTTP__PORT": "8080"}
        self.environ.update({f"CODEFORGE_SECRET_{k}": v for k, v in secrets.items()})
        return EnvSecretStore(self.environ)

    def change_source(self, name: str, value: str | None) -> None:
        if value is None:
            del self.environ[f"CODEFORGE_SECRET_{name}"]
        else:
            self.environ[f"CODEFORGE_SECRET_{name}"] = value

    def test_an_empty_variable_counts_as_unset(self) -> None:
        store = EnvSecretStore({"CODEFORGE_SECRET_EMPTY": "", "CODEFORGE_SECRET_SET": "value-1"})
        assert store.get("EMPTY") is None
        assert store.names() == ["SET"]

    def test_only_the_exact_prefix_counts(self) -> None:
        store = EnvSecretStore(
            {
                "codeforge_secret_LOWER_PREFIX": "v1",
                "CODEFORGE_SECRETS_PLURAL": "v2",
                "CODEFORGE_SECRET": "v3",
                "CODEFORGE_LLM__API_KEY_SECRET": "NAME",
                "CODEFORGE_SECRET_REAL": "v4",
            }
        )
        assert store.names() == ["REAL"]

    def test_invalid_variable_names_are_skipped_and_listed(self) -> None:
        store = EnvSecretStore(
            {
                "CODEFORGE_SECRET_": "v1",
                "CODEFORGE_SECRET_1BAD": "v2",
                "CODEFORGE_SECRET_BAD-NAME": "v3",
                "CODEFORGE_SECRET_GOOD": "v4",
            }
        )
        assert store.names() == ["GOOD"]
        assert store.invalid_variables == [
            "CODEFORGE_SECRET_",
            "CODEFORGE_SECRET_1BAD",
            "CODEFORGE_SECRET_BAD-NAME",
        ]

    @pytest.mark.parametrize("upper_first", [True, False])
    def test_the_upper_case_spelling_wins_whatever_the_order(self, upper_first: bool) -> None:
        pairs = [("CODEFORGE_SECRET_TOKEN", "from-upper"), ("CODEFORGE_SECRET_token", "from-lower")]
        store = EnvSecretStore(dict(pairs if upper_first else reversed(pairs)))
        assert store.get("token") == "from-upper"
        assert store.names() == ["TOKEN"]

    def test_it_reads_the_process_environment_by_default(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("CODEFORGE_SECRET_CF_TEST_ENV_DEFAULT", "from-os-environ")
        store = EnvSecretStore()
        assert store.get("cf_test_env_default") == "from-os-environ"
        monkeypatch.setenv("CODEFORGE_SECRET_CF_TEST_ENV_DEFAULT", "changed-in-process")
        assert store.get("CF_TEST_ENV_DEFAULT") == "from-os-environ"
        store.reload()
        assert store.get("CF_TEST_ENV_DEFAULT") == "changed-in-process"

    def test_it_is_not_writable(self) -> None:
        assert not isinstance(EnvSecretStore({}), WritableSecretStore)


# --------------------------------------------------------------------------------------------
# File

_SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

# Waits for a go file so that the writers start together, then sets <count> keys.
_WRITER = """
import sys, time
from pathlib import Path
from adapters.secrets.file import FileSecretStore

path, prefix, count, ready, go = sys.argv[1:]
store = FileSecretStore(Path(path))
Path(ready).touch()
deadline = time.monotonic() + 15
while not Path(go).exists():
    if time.monotonic() > deadline:
        sys.exit("never told to go")
    time.sleep(0.001)
for i in range(int(count)):
    store.set(f"{prefix}_{i}", f"value-{prefix}-{i}")
"""

# Rewrites one large secret again and again.
_ROTATOR = """
import sys
from pathlib import Path
from adapters.secrets.file import FileSecretStore

path, rounds, size, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
store = FileSecretStore(Path(path))
Path(ready).touch()
for i in range(rounds):
    store.set("BIG", chr(ord("A") + i % 26) * size)
"""

_SET_ONE = """
import sys
from pathlib import Path
from adapters.secrets.file import FileSecretStore

FileSecretStore(Path(sys.argv[1])).set(sys.argv[2], sys.argv[3])
"""


def _python(script: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=_SUBPROCESS_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _finish(proc: subprocess.Popen[bytes]) -> None:
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output.decode()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


class TestFileSecretStore(SecretStoreContract):
    @property
    def path(self) -> Path:
        return self.tmp_path / "data" / "secrets" / "secrets.json"

    def build(self, secrets: dict[str, str]) -> SecretStore:
        seeder = FileSecretStore(self.path)
        for name, value in secrets.items():
            seeder.set(name, value)
        return FileSecretStore(self.path)

    def change_source(self, name: str, value: str | None) -> None:
        # Another instance on the same file stands for another process here; the tests
        # below do it with real processes.
        other = FileSecretStore(self.path)
        if value is None:
            other.delete(name)
        else:
            other.set(name, value)

    def write_raw(self, document: object, mode: int = 0o600) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(document))
        self.path.chmod(mode)

    # -- writing -------------------------------------------------------------------------

    def test_it_is_writable_and_says_where(self) -> None:
        store = FileSecretStore(self.path)
        assert isinstance(store, WritableSecretStore)
        assert store.location == str(self.path)

    def test_in_data_dir_uses_a_secrets_directory_of_its_own(self) -> None:
        store = FileSecretStore.in_data_dir(self.tmp_path / "data")
        assert store.path == self.tmp_path / "data" / "secrets" / "secrets.json"

    def test_nothing_is_created_until_the_first_write(self) -> None:
        store = FileSecretStore(self.path)
        store.reload()
        assert store.get("X") is None
        assert not (self.tmp_path / "data").exists()

    def test_the_file_is_0600_in_a_0700_directory_whatever_the_umask(self) -> None:
        old_umask = os.umask(0)  # the most permissive umask: modes must not depend on it
        try:
            FileSecretStore(self.path).set("API_KEY", "value-1")
        finally:
            os.umask(old_umask)
        assert _mode(self.path) == 0o600
        assert _mode(self.path.parent) == 0o700
        assert _mode(self.path.with_name("secrets.json.lock")) == 0o600

    def test_set_is_seen_at_once_and_persists(self) -> None:
        store = FileSecretStore(self.path)
        store.set("api_key", "value-1")
        assert store.get("API_KEY") == "value-1"
        assert FileSecretStore(self.path).get("api_key") == "value-1"
        assert json.loads(self.path.read_text()) == {
            "version": 1,
            "secrets": {"API_KEY": "value-1"},
        }

    def test_set_overwrites_and_delete_reports_whether_it_removed(self) -> None:
        store = FileSecretStore(self.path)
        store.set("KEY", "value-1")
        store.set("key", "value-2")
        assert store.get("KEY") == "value-2"
        assert store.names() == ["KEY"]
        assert store.delete("Key") is True
        assert store.delete("KEY") is False
        assert store.get("KEY") is None
        assert FileSecretStore(self.path).names() == []

    def test_set_refuses_an_empty_value_and_an_invalid_name(self) -> None:
        store = FileSecretStore(self.path)
        with pytest.raises(ValueError, match="non-empty"):
            store.set("KEY", "")
        with pytest.raises(InvalidSecretName):
            store.set("BAD-NAME", "value-1")
        with pytest.raises(InvalidSecretName):
            store.delete("BAD-NAME")
        assert store.names() == []

    def test_writes_leave_no_temporary_files(self) -> None:
        store = FileSecretStore(self.path)
        for i in range(20):
            store.set(f"KEY_{i % 5}", f"value-{i}")
            if i % 3 == 0:
                store.delete(f"KEY_{i % 5}")
        assert sorted(p.name for p in self.path.parent.iterdir()) == [
            "secrets.json",
            "secrets.json.lock",
        ]

    # -- refusing files that are not safe to use -----------------------------------------

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o620])
    def test_a_file_others_can_access_is_refused_with_the_fix(self, mode: int) -> None:
        self.write_raw({"version": 1, "secrets": {"KEY": "value-1"}}, mode=mode)
        with pytest.raises(PortError) as caught:
            FileSecretStore(self.path)
        assert f"chmod 600 {self.path}" in str(caught.value)
        assert "value-1" not in str(caught.value)

    def test_a_file_others_can_read_is_not_written_to_either(self) -> None:
        self.write_raw({"version": 1, "secrets": {}}, mode=0o600)
        store = FileSecretStore(self.path)
        self.path.chmod(0o644)
        with pytest.raises(PortError, match="chmod 600"):
            store.set("KEY", "value-1")
        assert json.loads(self.path.read_text()) == {"version": 1, "secrets": {}}

    def test_a_symlink_is_refused_and_its_target_left_alone(self) -> None:
        target = self.tmp_path / "elsewhere.json"
        target.write_text(json.dumps({"version": 1, "secrets": {"KEY": "value-1"}}))
        target.chmod(0o600)
        self.path.parent.mkdir(parents=True)
        self.path.symlink_to(target)
        with pytest.raises(PortError, match="symbolic link"):
            FileSecretStore(self.path)

        # A write must not go through the link or quietly replace it either.
        self.path.unlink()
        store = FileSecretStore(self.path)
        self.path.symlink_to(target)
        with pytest.raises(PortError, match="symbolic link"):
            store.set("OTHER", "value-2")
        assert self.path.is_symlink()
        assert json.loads(target.read_text())["secrets"] == {"KEY": "value-1"}

    def test_a_directory_in_place_of_the_file_is_refused(self) -> None:
        self.path.mkdir(parents=True)
        self.path.chmod(0o700)
        with pytest.raises(PortError, match="not a regular file"):
            FileSecretStore(self.path)

    @pytest.mark.parametrize(
        ("content", "problem"),
        [
            ('{"version": 1, "secrets": {"KEY": "sk-leaked-1234"', "invalid JSON"),
            ('["sk-leaked-1234"]', '"secrets" object'),
            ('{"version": 2, "secrets": {"KEY": "sk-leaked-1234"}}', "format version"),
            ('{"version": 1, "secrets": {"BAD-NAME": "sk-leaked-1234"}}', "invalid secret"),
            ('{"version": 1, "secrets": {"KEY": 1234}}', "not a non-empty string"),
            ('{"version": 1, "secrets": {"KEY": ""}}', "not a non-empty string"),
            ('{"version": 1, "secrets": {"key": "sk-leaked-1234", "KEY": "x"}}', "twice"),
        ],
    )
    def test_a_damaged_file_is_refused_without_showing_its_content(
        self, content: str, problem: str
    ) -> None:
        self.path.parent.mkdir(parents=True)
        self.path.write_text(content)
        self.path.chmod(0o600)
        with pytest.raises(PortError, match="is damaged") as caught:
            FileSecretStore(self.path)
        assert problem in str(caught.value)
        assert "sk-leaked-1234" not in str(caught.value)

    def test_a_hand_written_file_may_spell_names_in_any_case(self) -> None:
        self.write_raw({"version": 1, "secrets": {"openai_key": "value-1"}})
        store = FileSecretStore(self.path)
        assert store.names() == ["OPENAI_KEY"]
        assert store.get("OpenAI_Key") == "value-1"

    def test_a_failed_reload_keeps_the_values_loaded_before(self) -> None:
        store = self.build({"KEY": "value-1"})
        self.path.chmod(0o644)
        with pytest.raises(PortError, match="chmod 600"):
            store.reload()
        assert store.get("KEY") == "value-1"
        self.path.chmod(0o600)
        self.path.write_text("{broken")
        with pytest.raises(PortError, match="damaged"):
            store.reload()
        assert store.get("KEY") == "value-1"

    # -- other processes -----------------------------------------------------------------

    def test_reload_sees_a_value_written_by_another_process(self) -> None:
        store = self.build({"API_KEY": "old-value"})
        _finish(_python(_SET_ONE, str(self.path), "api_key", "rotated-value"))
        assert store.get("API_KEY") == "old-value"
        store.reload()
        assert store.get("API_KEY") == "rotated-value"

    def test_concurrent_writers_in_two_processes_lose_nothing(self) -> None:
        count = 40
        control = self.tmp_path / "control"
        control.mkdir()
        go = control / "go"
        writers = [
            _python(_WRITER, str(self.path), prefix, str(count), str(control / prefix), str(go))
            for prefix in ("ALPHA", "BETA")
        ]
        deadline = time.monotonic() + 15
        while not all((control / p).exists() for p in ("ALPHA", "BETA")):
            assert time.monotonic() < deadline, "writers did not start"
            assert all(w.poll() is None for w in writers), "a writer died before starting"
            time.sleep(0.005)
        go.touch()
        for writer in writers:
            _finish(writer)

        store = FileSecretStore(self.path)
        expected = {f"{p}_{i}": f"value-{p}-{i}" for p in ("ALPHA", "BETA") for i in range(count)}
        assert {name: store.get(name) for name in store.names()} == expected

    def test_a_reader_never_sees_a_half_written_file(self) -> None:
        size = 200_000
        self.build({"BIG": "A" * size})
        reader = FileSecretStore(self.path)
        ready = self.tmp_path / "rotator-ready"
        rotator = _python(_ROTATOR, str(self.path), "60", str(size), str(ready))
        deadline = time.monotonic() + 15
        while not ready.exists():
            assert time.monotonic() < deadline, "the rotating process did not start"
            assert rotator.poll() is None, rotator.communicate()[0].decode()
            time.sleep(0.001)
        seen: set[str] = set()
        while rotator.poll() is None:
            # Raises if it ever reads a truncated or partly written file.
            reader.reload()
            value = reader.get("BIG")
            assert value is not None
            assert len(value) == size
            assert value == value[0] * size
            seen.add(value[0])
        _finish(rotator)
        # Proof that the reads overlapped the writes, so the loop above tested something.
        assert len(seen) > 1
        reader.reload()
        assert reader.get("BIG") == chr(ord("A") + 59 % 26) * size
