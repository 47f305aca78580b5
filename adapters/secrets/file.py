"""Secrets in one JSON file, readable by the service's user alone.

Layout (``FileSecretStore.in_data_dir``)::

    <data dir>/secrets/            mode 0700
        secrets.json               mode 0600  {"version": 1, "secrets": {"NAME": "value"}}
        secrets.json.lock          mode 0600  flock()ed by writers; never holds data

The directory is ours alone so that its 0700 mode can be guaranteed without changing the
mode of a data dir other components share.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from codeforge.ports.errors import PortError
from codeforge.ports.secrets import InvalidSecretName, normalize_secret_name

FILE_NAME: Final = "secrets.json"
FORMAT_VERSION: Final = 1
FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700


class FileSecretStore:
    """A WritableSecretStore kept in a single JSON file at ``path``.

    Contract, beyond the port's:

    * Nothing is created until the first ``set``/``delete``; a missing file is an empty
      store. The first write creates the parent directory with mode 0700 (if missing) and
      the file with mode 0600.
    * Loading (at construction, on ``reload()`` and at the start of every write) refuses,
      with a PortError that says how to fix it, a file that is a symbolic link, is not a
      regular file, is accessible to group or others (``chmod 600 <path>``), or is not a
      valid secrets file. Error messages never contain secret values.
    * Writes are atomic: the new content goes to a 0600 temporary file in the same
      directory, is fsynced, and replaces the old file with ``os.replace``; a reader (in any
      process) sees the old file or the new one, never a mix, and a crash leaves one of
      the two.
    * Writers in different processes (the server and ``codeforge secrets set``) are
      serialised by ``flock`` on ``secrets.json.lock``; each write re-reads the file under
      the lock and applies only its own change, so concurrent writers lose nothing.
    * Rotation is live: ``reload()`` re-reads the file, so a value written by another
      process is seen after SIGHUP.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock_path = self._path.with_name(self._path.name + ".lock")
        # flock already serialises writers, threads included (each write opens its own
        # descriptor); this lock keeps the in-memory snapshot in step with the file when
        # a reload and a write race in one process.
        self._mutex = threading.Lock()
        self._values: dict[str, str] = {}
        self.reload()

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> FileSecretStore:
        """The store at ``<data_dir>/secrets/secrets.json``."""
        return cls(Path(data_dir) / "secrets" / FILE_NAME)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def location(self) -> str:
        return str(self._path)

    # -- SecretStore ---------------------------------------------------------------------

    def get(self, name: str) -> str | None:
        return self._values.get(normalize_secret_name(name))

    def names(self) -> list[str]:
        return sorted(self._values)

    def reload(self) -> None:
        with self._mutex:
            # No flock: writers replace the file atomically, so a plain read is consistent.
            # Assigned only after a successful read, so a failure keeps the old values.
            self._values = self._read()

    # -- WritableSecretStore ---------------------------------------------------------------

    def set(self, name: str, value: str) -> None:
        key = normalize_secret_name(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"the value of secret {key} must be a non-empty string")

        def change(values: dict[str, str]) -> bool:
            if values.get(key) == value:
                return False
            values[key] = value
            return True

        self._update(change)

    def delete(self, name: str) -> bool:
        key = normalize_secret_name(name)
        return self._update(lambda values: values.pop(key, None) is not None)

    # -- internals -------------------------------------------------------------------------

    def _update(self, change: Callable[[dict[str, str]], bool]) -> bool:
        """Apply ``change`` to the file's current content under the inter-process lock and
        write the result if ``change`` says it changed anything."""
        with self._mutex, self._locked():
            # Re-read under the lock rather than trusting the snapshot: another process may
            # have written since, and writing our stale copy back would undo its change.
            values = self._read()
            changed = change(values)
            if changed:
                self._write(values)
            self._values = values
        return changed

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._ensure_dir()
        try:
            fd = os.open(
                self._lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE
            )
        except OSError as e:
            raise PortError(
                f"cannot open the secret store's lock file {self._lock_path}: {e.strerror}"
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            # Closing releases the flock.
            os.close(fd)

    def _ensure_dir(self) -> None:
        directory = self._path.parent
        if directory.is_dir():
            # An existing directory is left as it is: changing the mode of a directory we
            # did not create could break whoever did. The file itself is still 0600.
            return
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            try:
                directory.mkdir(mode=DIR_MODE)
            except FileExistsError:
                return  # another process created it first, with the same mode
            # mkdir's mode is filtered by the umask; chmod states it exactly.
            directory.chmod(DIR_MODE)
        except OSError as e:
            raise PortError(f"cannot create the secrets directory {directory}: {e}") from e

    def _read(self) -> dict[str, str]:
        """The file's secrets; {} if it does not exist; PortError if it must not be used."""
        path = self._path
        try:
            # O_NOFOLLOW and fstat on the opened descriptor, rather than lstat then open,
            # so the file cannot be swapped for a link between the check and the read.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return {}
        except OSError as e:
            if path.is_symlink():
                raise PortError(
                    f"the secret file {path} is a symbolic link, which the secret store "
                    f"refuses to follow: replace it with the file itself (mode 600)"
                ) from None
            raise PortError(f"cannot read the secret file {path}: {e.strerror}") from e
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise PortError(f"the secret file {path} is not a regular file")
            if st.st_mode & 0o077:
                raise PortError(
                    f"the secret file {path} is accessible to other users (mode "
                    f"{stat.S_IMODE(st.st_mode):03o}); refusing to use it: run "
                    f"`chmod 600 {path}`, and rotate its secrets if others may have read them"
                )
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read()
        except OSError as e:
            raise PortError(f"cannot read the secret file {path}: {e.strerror}") from e
        finally:
            os.close(fd)
        return self._parse(data)

    def _parse(self, data: bytes) -> dict[str, str]:
        # Messages name keys and positions only: the content is secret.
        bad = f"the secret file {self._path} is damaged"
        try:
            document: Any = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise PortError(f"{bad}: it is not UTF-8") from None
        except json.JSONDecodeError as e:
            raise PortError(f"{bad}: invalid JSON at line {e.lineno} column {e.colno}") from None
        if not isinstance(document, dict) or not isinstance(document.get("secrets"), dict):
            raise PortError(f'{bad}: expected an object with a "secrets" object')
        if document.get("version") != FORMAT_VERSION:
            raise PortError(
                f"{bad}: format version {document.get('version')!r} is not the supported "
                f"version {FORMAT_VERSION}"
            )
        values: dict[str, str] = {}
        for raw_name, value in document["secrets"].items():
            try:
                name = normalize_secret_name(raw_name)
            except InvalidSecretName as e:
                raise PortError(f"{bad}: {e}") from None
            if name in values:
                raise PortError(f"{bad}: secret {name} appears twice, in different cases")
            if not isinstance(value, str) or not value:
                raise PortError(f"{bad}: the value of {name} is not a non-empty string")
            values[name] = value
        return values

    def _write(self, values: dict[str, str]) -> None:
        document = {"version": FORMAT_VERSION, "secrets": dict(sorted(values.items()))}
        payload = (json.dumps(document, indent=2) + "\n").encode("utf-8")
        directory = self._path.parent
        try:
            # mkstemp creates the file with mode 0600 and O_EXCL, in the same directory so
            # that os.replace is a rename within one file system, hence atomic.
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{self._path.name}.", suffix=".tmp", dir=directory
            )
        except OSError as e:
            raise PortError(f"cannot write the secret file {self._path}: {e.strerror}") from e
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), FILE_MODE)
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path)
        except BaseException as e:
            tmp.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise PortError(f"cannot write the secret file {self._path}: {e.strerror}") from e
            raise
        # The rename is durable only once the directory entry is on disk.
        try:
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as e:
            raise PortError(
                f"wrote the secret file {self._path} but could not make it durable: {e.strerror}"
            ) from e
