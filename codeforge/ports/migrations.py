"""Schema migrations of the database CodeForge keeps its state in."""

from __future__ import annotations

from typing import Protocol

from msgspec import Struct

from codeforge.ports.errors import PortError


class MigrationState(Struct, frozen=True):
    id: str
    applied: bool


class Migrator(Protocol):
    """Applies and rolls back the SQL migrations under `migrations/`.

    Contract: every call is synchronous and safe to run from several processes at
    once (the adapter takes a database lock). `apply()` applies every pending
    migration in order and returns their ids; `rollback(count)` rolls back the
    `count` most recent (all when None) and returns their ids, newest first.
    Failures raise `MigrationFailed` with the migration id; a failed migration
    leaves no partial changes behind.
    """

    def status(self) -> list[MigrationState]: ...

    def apply(self) -> list[str]: ...

    def rollback(self, count: int | None = None) -> list[str]: ...


class MigrationFailed(PortError):
    """A migration could not be applied or rolled back; str() names it and why."""
