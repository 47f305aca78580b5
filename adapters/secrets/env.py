"""Secrets from the environment: ``CODEFORGE_SECRET_<NAME>=value``."""

from __future__ import annotations

import os
from collections.abc import Mapping

from codeforge.ports.secrets import (
    SECRET_ENV_PREFIX,
    InvalidSecretName,
    normalize_secret_name,
)


class EnvSecretStore:
    """A read-only SecretStore over ``CODEFORGE_SECRET_<NAME>`` variables.

    ``environ`` defaults to ``os.environ``; it is read at construction and again on
    ``reload()``, and nowhere else, so lookups are dict reads.

    Rotation: a process's environment cannot be changed from outside, so SIGHUP does not
    bring new values in from the shell or the orchestrator. Environment secrets rotate by
    restarting the process; the file store is the one that rotates live.

    Reading rules:

    * The prefix is matched exactly (upper case); the rest is the secret's name and is
      case-insensitive. If two variables spell the same name differently, the one whose
      suffix is already upper case wins, so the result never depends on dict order.
    * An empty variable counts as unset: compose files turn an unset ``${VAR}`` into an
      empty one, and an empty key is never what anybody meant.
    * A variable whose suffix is not a valid name is skipped and listed in
      ``invalid_variables``, so the caller can warn about it without this store logging.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ
        self._values: dict[str, str] = {}
        self.invalid_variables: list[str] = []
        self.reload()

    def get(self, name: str) -> str | None:
        return self._values.get(normalize_secret_name(name))

    def names(self) -> list[str]:
        return sorted(self._values)

    def reload(self) -> None:
        environ = os.environ if self._environ is None else self._environ
        values: dict[str, str] = {}
        exact: set[str] = set()
        invalid: list[str] = []
        # A snapshot first: another thread may modify os.environ while we iterate.
        for key, value in list(environ.items()):
            if not key.startswith(SECRET_ENV_PREFIX):
                continue
            suffix = key[len(SECRET_ENV_PREFIX) :]
            try:
                name = normalize_secret_name(suffix)
            except InvalidSecretName:
                invalid.append(key)
                continue
            if not value or (name in exact and suffix != name):
                continue
            values[name] = value
            if suffix == name:
                exact.add(name)
        # Swapped in whole, so a concurrent get() sees the old snapshot or the new one.
        self._values = values
        self.invalid_variables = sorted(invalid)
