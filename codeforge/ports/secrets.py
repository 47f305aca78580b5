"""Secrets: API keys, tokens and signing keys, looked up by name.

Configuration and model entries never hold a secret's value, only its NAME (for example
``llm.api_key_secret: OPENAI_API_KEY``); the value comes from a `SecretStore`. Two adapters
exist: the environment (``CODEFORGE_SECRET_<NAME>``) and a 0600 file under the data dir
(written with ``codeforge secrets set NAME``). The application reaches them through
`codeforge.services.secrets.Secrets`, which chains them and registers every value it hands
out for redaction.

Names are case-insensitive: they are upper-cased and must then match
``[A-Z][A-Z0-9_]{0,63}`` (see `normalize_secret_name`). Values are non-empty strings.
"""

from __future__ import annotations

import re
from typing import Final, Protocol, runtime_checkable

from codeforge.ports.errors import PortError

__all__ = [
    "SECRET_ENV_PREFIX",
    "InvalidSecretName",
    "SecretNotFound",
    "SecretStore",
    "WritableSecretStore",
    "normalize_secret_name",
    "secret_env_var",
]

SECRET_ENV_PREFIX: Final = "CODEFORGE_SECRET_"  # noqa: S105 - a variable-name prefix, not a secret
"""An environment variable ``CODEFORGE_SECRET_<NAME>`` provides the secret ``<NAME>``."""

SECRET_NAME_PATTERN: Final = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
"""What a name must match, in full, once upper-cased."""

# Past this length a "name" is more likely a value pasted in the wrong place than a typo of
# a name, so error messages describe it instead of echoing it into a log.
_ECHO_LIMIT: Final = 64


class InvalidSecretName(PortError, ValueError):
    """A secret name does not match ``[A-Z][A-Z0-9_]{0,63}`` after upper-casing.

    Also a ValueError, so callers validating user input can treat it like any bad value.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        shown = repr(name) if len(name) <= _ECHO_LIMIT else f"of {len(name)} characters"
        super().__init__(
            f"invalid secret name {shown}: a name starts with a letter, continues with "
            "letters, digits or underscores, is at most 64 characters long, and is not "
            "case-sensitive (OPENAI_API_KEY and openai_api_key are the same secret)"
        )


class SecretNotFound(PortError):
    """No store holds the secret ``name``.

    The message names the secret and both ways to provide it: the environment variable
    ``CODEFORGE_SECRET_<NAME>``, or ``codeforge secrets set <NAME>``, which keeps it in the
    file store; ``file_store`` says which file, when the caller knows it.
    """

    def __init__(self, name: str, *, file_store: str | None = None) -> None:
        # Built without validation: an exception's constructor must not raise.
        self.name = name.upper()
        self.file_store = file_store
        where = f"the file store at {file_store}" if file_store else "the file store"
        super().__init__(
            f"secret {self.name} is not set: set the environment variable "
            f"{SECRET_ENV_PREFIX}{self.name} (read at start), or run "
            f"`codeforge secrets set {self.name}` to keep it in {where} "
            "(a running service picks it up on SIGHUP)"
        )


def normalize_secret_name(name: str) -> str:
    """Return the canonical (upper-case) form of ``name``; raise InvalidSecretName if the
    upper-cased name does not match ``[A-Z][A-Z0-9_]{0,63}``."""
    # ASCII is checked before upper-casing: str.upper() maps some non-ASCII letters onto
    # ASCII ones (U+017F long s -> "S", U+0131 dotless i -> "I"), which would let
    # spellings that look unrelated name the same secret.
    if not isinstance(name, str) or not name.isascii():
        raise InvalidSecretName(str(name))
    upper = name.upper()
    # fullmatch, not match with "$": "$" also matches before a trailing newline.
    if SECRET_NAME_PATTERN.fullmatch(upper) is None:
        raise InvalidSecretName(name)
    return upper


def secret_env_var(name: str) -> str:
    """The environment variable that provides the secret ``name``."""
    return SECRET_ENV_PREFIX + normalize_secret_name(name)


@runtime_checkable
class SecretStore(Protocol):
    """A source of secret values, looked up by name.

    Contract:

    * ``get(name)`` returns the value, or None when this store does not hold ``name``.
      ``name`` is case-insensitive; an invalid one raises InvalidSecretName (never None,
      so a typo cannot pass for "not configured"). A returned value is never empty.
    * ``names()`` returns the canonical (upper-case) names this store holds, sorted.
      It never returns values, so it is safe to show.
    * ``reload()`` re-reads the underlying source so that a rotated value is seen (SIGHUP
      calls it). If the source cannot be read, it raises PortError and the values loaded
      before stay in effect: a broken rotation never takes secrets away from a running
      service.
    * ``get`` and ``names`` serve a snapshot in memory and never touch the disk or the
      environment, so they are cheap and safe on the event loop; they may run in any
      thread, concurrently with ``reload``.
    * The store itself never logs values and never puts them in exception messages.
    """

    def get(self, name: str) -> str | None:
        """The value of ``name``, or None if this store does not hold it."""
        ...

    def names(self) -> list[str]:
        """The canonical names this store holds, sorted."""
        ...

    def reload(self) -> None:
        """Re-read the source; on failure raise PortError and keep the previous values."""
        ...


@runtime_checkable
class WritableSecretStore(SecretStore, Protocol):
    """A store that can also keep values (``codeforge secrets set/delete``).

    Contract, in addition to SecretStore's:

    * ``set(name, value)`` stores ``value`` (a non-empty string; an empty one raises
      ValueError) under the canonical form of ``name``, durably: once it returns, the
      value survives a crash and is what ``get`` returns in this process. Other processes
      see it after their ``reload()``.
    * ``delete(name)`` removes ``name`` and returns True, or returns False if it was not
      there.
    * Writers in different threads or processes never lose each other's updates: each
      write applies its one change to the current content of the store.
    * ``location`` says where values are kept, for messages (for the file store, its path).
    """

    @property
    def location(self) -> str:
        """Where this store keeps values, as shown to an operator."""
        ...

    def set(self, name: str, value: str) -> None:
        """Store ``value`` under ``name``, durably."""
        ...

    def delete(self, name: str) -> bool:
        """Remove ``name``; True if it was there."""
        ...
