"""Watching a run's calls through the worker's LLM proxy socket.

A backend that runs a coding agent in the sandbox (aider) cannot see inside it, but
it can see where its turns begin and end: every model call goes through the proxy
socket this process serves. The backend registers a `CallWatcher` under the run's
token for as long as the agent runs; the socket server then calls

- `before_call()` before a call is forwarded: the previous turn's edits are on disk
  by now (the agent waits for this answer), so the backend checks and checkpoints
  them here. Raising `CallRefused` answers the call with that error instead of
  forwarding it (a denied path, max steps reached);
- `after_call(outcome)` once the answer went out, with its status and, for an error
  (a status of 400 or more, or an error event inside a stream), the proxy's error
  code and message: how the backend learns that a budget ran out (402) before the
  agent retries in a loop.

Only calls on this process's socket are watched; tokens are compared exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

from msgspec import Struct


class CallRefused(Exception):
    """Answer the call with this error instead of forwarding it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class CallOutcome(Struct, frozen=True, kw_only=True):
    status: int
    # For an error answer: the proxy's error code ("budget_exceeded", ...) and message.
    error_code: str | None = None
    error_message: str = ""

    @property
    def failed(self) -> bool:
        return self.status >= 400 or self.error_code is not None or bool(self.error_message)


class CallWatcher(Protocol):
    async def before_call(self) -> None: ...

    async def after_call(self, outcome: CallOutcome) -> None: ...


class ProxyWatch:
    """The watchers of this process's runs, by run token."""

    def __init__(self) -> None:
        self._watchers: dict[str, CallWatcher] = {}

    @contextlib.contextmanager
    def watching(self, token: str, watcher: CallWatcher) -> Iterator[None]:
        self._watchers[token] = watcher
        try:
            yield
        finally:
            if self._watchers.get(token) is watcher:
                del self._watchers[token]

    def watcher(self, token: str) -> CallWatcher | None:
        return self._watchers.get(token)
