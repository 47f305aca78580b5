"""Secrets: the one place the application gets secret values from."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from codeforge.ports.errors import PortError
from codeforge.ports.secrets import (
    SecretNotFound,
    SecretStore,
    WritableSecretStore,
    normalize_secret_name,
)

__all__ = ["Secrets"]


class Secrets:
    """An ordered chain of SecretStores (the container passes: environment, then file).

    Contract:

    * ``get(name)`` returns the value from the first store that holds ``name``, or None;
      ``require(name)`` returns it or raises SecretNotFound, whose message tells the
      operator both ways to provide it. So an environment variable overrides the file
      store, and deleting a name from the file store does not unset it while the
      environment still provides it. Names are case-insensitive; an invalid one raises
      InvalidSecretName.
    * Every value this service can hand out is passed to ``redact`` (the container gives
      ``codeforge.log.register_secret``) before any caller sees it: all values of all
      stores at construction and after each ``reload()`` (shadowed ones too: they are
      secrets all the same), and a value stored with ``set``. Each distinct value is passed
      once. ``known_values()`` lists them for scrubbing events.
    * Old values stay known after a rotation: logs and events of work that started before
      it can still carry them.
    * ``reload()`` reloads every store, even when one fails; a store that fails keeps its
      previous values, and the failures are raised together afterwards as one PortError.
    * ``set``/``delete`` go to the first store that is a WritableSecretStore; with none
      configured they raise PortError.
    * Thread-safe: lookups may run in any thread while a reload (SIGHUP) runs in another.
    """

    def __init__(self, stores: Sequence[SecretStore], redact: Callable[[str], None]) -> None:
        self._stores = tuple(stores)
        self._redact = redact
        # Insertion-ordered set of every value passed to redact.
        self._known: dict[str, None] = {}
        self._known_lock = threading.Lock()
        self._register_all()

    # -- lookups -----------------------------------------------------------------------

    def get(self, name: str) -> str | None:
        """The value of ``name`` from the first store that holds it, or None."""
        key = normalize_secret_name(name)
        for store in self._stores:
            value = store.get(key)
            if value is not None:
                # Normally already registered by _register_all; repeated here so that no
                # path (a store that changed without a reload) hands out an unregistered
                # value.
                self._register(value)
                return value
        return None

    def require(self, name: str) -> str:
        """The value of ``name``; SecretNotFound if no store holds it."""
        value = self.get(name)
        if value is None:
            writable = self._writable()
            raise SecretNotFound(
                normalize_secret_name(name),
                file_store=writable.location if writable is not None else None,
            )
        return value

    def names(self) -> list[str]:
        """Every name any store holds, sorted, without duplicates."""
        return sorted({name for store in self._stores for name in store.names()})

    def known_values(self) -> list[str]:
        """Every value ever passed to ``redact``, longest first, so that a scrubber
        replacing them in this order removes a secret that contains another as a whole."""
        with self._known_lock:
            values = list(self._known)
        return sorted(values, key=len, reverse=True)

    # -- changes -----------------------------------------------------------------------

    def reload(self) -> None:
        """Reload every store (rotation), then register the values now held."""
        failures: list[str] = []
        for store in self._stores:
            try:
                store.reload()
            except PortError as e:
                # One bad store must not keep the others from rotating.
                failures.append(str(e))
        self._register_all()
        if failures:
            raise PortError("secrets reload failed: " + "; ".join(failures))

    def set(self, name: str, value: str) -> None:
        """Store ``value`` in the first writable store. Registered for redaction first,
        so it is covered even if the write fails after echoing it somewhere."""
        store = self._require_writable()
        if value:
            self._register(value)
        store.set(name, value)

    def delete(self, name: str) -> bool:
        """Remove ``name`` from the first writable store; True if it was there."""
        return self._require_writable().delete(name)

    # -- internals ---------------------------------------------------------------------

    def _writable(self) -> WritableSecretStore | None:
        for store in self._stores:
            if isinstance(store, WritableSecretStore):
                return store
        return None

    def _require_writable(self) -> WritableSecretStore:
        store = self._writable()
        if store is None:
            raise PortError(
                "no writable secret store is configured; provide secrets through "
                "CODEFORGE_SECRET_<NAME> environment variables"
            )
        return store

    def _register_all(self) -> None:
        for store in self._stores:
            for name in store.names():
                value = store.get(name)
                if value is not None:
                    self._register(value)

    def _register(self, value: str) -> None:
        # Lock-free fast path: a dict membership test is atomic, and get() calls this on
        # every lookup.
        if value in self._known:
            return
        with self._known_lock:
            if value in self._known:
                return
            self._redact(value)
            self._known[value] = None
