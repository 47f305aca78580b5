"""SQL migrations with yoyo: every migration has a `.rollback.sql` twin."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from yoyo import get_backend, read_migrations
from yoyo.exceptions import LockTimeout

from adapters.postgres.errors import describe
from adapters.postgres.urls import yoyo_url
from codeforge.ports.migrations import MigrationFailed, MigrationState


def migrations_dir() -> Path:
    """The top-level `migrations/` of a checkout, or the copy bundled into a wheel."""
    package_root = Path(__file__).resolve().parents[2]
    for candidate in (
        package_root / "migrations",
        package_root / "codeforge" / "_bundled" / "migrations",
    ):
        if candidate.is_dir():
            return candidate
    raise MigrationFailed("the migrations folder is missing from this install")


class YoyoMigrator:
    """Implements `codeforge.ports.migrations.Migrator` with yoyo-migrations."""

    def __init__(self, url: str, directory: Path | None = None, lock_timeout: float = 60) -> None:
        self._url = yoyo_url(url)
        self._directory = directory or migrations_dir()
        self._lock_timeout = lock_timeout

    def status(self) -> list[MigrationState]:
        with self._backend() as backend:
            migrations = read_migrations(str(self._directory))
            return [MigrationState(id=m.id, applied=backend.is_applied(m)) for m in migrations]

    def apply(self) -> list[str]:
        with self._backend() as backend, self._locked(backend):
            pending = backend.to_apply(read_migrations(str(self._directory)))
            ids = [m.id for m in pending]
            self._run(backend.apply_migrations, pending, "apply")
            return ids

    def rollback(self, count: int | None = None) -> list[str]:
        with self._backend() as backend, self._locked(backend):
            applied = backend.to_rollback(read_migrations(str(self._directory)))
            chosen = applied if count is None else applied[:count]
            ids = [m.id for m in chosen]
            self._run(backend.rollback_migrations, chosen, "roll back")
            return ids

    @contextmanager
    def _backend(self) -> Iterator[Any]:
        try:
            backend = get_backend(self._url)
        except Exception as e:
            raise MigrationFailed(
                f"cannot connect to the database for migrations: {describe(e)}"
            ) from e
        try:
            yield backend
        finally:
            backend.connection.close()

    @contextmanager
    def _locked(self, backend: Any) -> Iterator[None]:
        try:
            with backend.lock(timeout=self._lock_timeout):
                yield
        except LockTimeout as e:
            raise MigrationFailed(
                f"another process held the migration lock for {self._lock_timeout:g}s"
            ) from e

    @staticmethod
    def _run(operation: Any, migrations: Any, verb: str) -> None:
        # yoyo runs each migration in its own transaction and raises from the one
        # that failed; name it so the operator knows where to look.
        try:
            operation(migrations)
        except Exception as e:
            raise MigrationFailed(f"could not {verb} migrations: {describe(e)}") from e
