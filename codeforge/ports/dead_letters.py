"""Dead letters, kept: what the queue gave up on, for operators to read and replay.

The queue publishes a `DeadLetter` to "{subject}.dlq" when a handler failed on every retry
or a body did not decode (`codeforge.ports.queue`); the `DeadLetters` service records each
one here. Operators list them, read them and replay them through `/api/v1/admin/dlq`.

DeadLetterStore contract (one contract suite checks every adapter):

- The store is one for the whole installation, like the queue: nothing is scoped by tenant
  (a message's tenant, if any, is inside its payload). Who may look is the service's rule.
- `record(letter, at=)` stores the letter with `recorded_at = at` and returns True; a letter
  whose id is already stored changes nothing and returns False (the DLQ delivers at least
  once, so the same letter may come twice). The payload is kept byte for byte.
- `get(id)` returns the stored letter, or raises `NotFound`.
- `list(limit=, after=, subject=)` returns letters newest first: by `failed_at` descending,
  then `id` descending (a total order, so pages never skip nor repeat a letter). At most
  `limit` (1..MAX_PAGE) letters; `next_cursor` is the last letter's id as text when more
  remain, else None. `after` is such a cursor: the page continues after that letter, which
  must be stored (else `ValidationFailed` on field "cursor"). `subject` keeps only the
  letters of that original subject; it may be a pattern where "*" stands for exactly one
  token ("runs.control.*"). A malformed subject raises `ValidationFailed` on "subject".
- `mark_replayed(id, at=)` sets `replayed_at = at`, adds one to `replay_count` (atomically:
  N concurrent marks add N) and returns the letter as now stored; `NotFound` when unknown.
- Text the database cannot store (NUL characters, lone surrogates) in the subject, `error`,
  `consumer` and the headers is stored as `storable_error` escapes it, by every adapter
  alike. A reason other than the two known ones, or `attempts` outside 0..2**31-1, raises
  `ValidationFailed` naming the field, and nothing is stored.
- Every `datetime` passed in must be timezone-aware, else `ValidationFailed` naming it.
- Errors: `DependencyUnavailable` when the storage is out of reach, `PortError` for any
  other storage failure.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Literal, Protocol

from msgspec import Struct

from codeforge.domain.errors import ValidationFailed
from codeforge.ports.outbox import check_time, storable_error
from codeforge.ports.queue import DeadLetter
from codeforge.ports.stores import MAX_PAGE, Page

__all__ = [
    "DeadLetterStore",
    "StoredDeadLetter",
    "check_limit",
    "check_subject_filter",
    "check_time",
    "stored_from",
    "unknown_cursor",
]

_TOKEN = re.compile(r"\*|[A-Za-z0-9_-]+")
_INT32_MAX = 2**31 - 1


class StoredDeadLetter(Struct, frozen=True, kw_only=True):
    """A `DeadLetter` as the store keeps it, with what happened to it since."""

    id: uuid.UUID
    subject: str
    payload: bytes
    headers: dict[str, str]
    reason: Literal["handler_failed", "invalid_payload"]
    error: str
    attempts: int
    consumer: str
    failed_at: datetime
    recorded_at: datetime
    replayed_at: datetime | None = None
    replay_count: int = 0

    @property
    def letter(self) -> DeadLetter:
        """The dead letter as the queue published it (minus what could not be stored)."""
        return DeadLetter(
            id=self.id,
            subject=self.subject,
            payload=self.payload,
            headers=dict(self.headers),
            reason=self.reason,
            error=self.error,
            attempts=self.attempts,
            consumer=self.consumer,
            failed_at=self.failed_at,
        )


class DeadLetterStore(Protocol):
    async def record(self, letter: DeadLetter, *, at: datetime) -> bool: ...

    async def get(self, letter_id: uuid.UUID) -> StoredDeadLetter: ...

    async def list(
        self,
        *,
        limit: int = 50,
        after: uuid.UUID | None = None,
        subject: str | None = None,
    ) -> Page[StoredDeadLetter]: ...

    async def mark_replayed(self, letter_id: uuid.UUID, *, at: datetime) -> StoredDeadLetter: ...


def stored_from(letter: DeadLetter, at: datetime) -> StoredDeadLetter:
    """What `record` stores for `letter`: checked, with unstorable text escaped."""
    check_time("at", at)
    check_time("failed_at", letter.failed_at)
    if letter.reason not in ("handler_failed", "invalid_payload"):
        raise ValidationFailed(f"unknown reason {letter.reason!r}", field="reason")
    if not 0 <= letter.attempts <= _INT32_MAX:
        raise ValidationFailed(
            f"attempts must be between 0 and {_INT32_MAX}, not {letter.attempts}",
            field="attempts",
        )
    return StoredDeadLetter(
        id=letter.id,
        subject=storable_error(letter.subject),
        payload=bytes(letter.payload),
        headers={storable_error(k): storable_error(v) for k, v in letter.headers.items()},
        reason=letter.reason,
        error=storable_error(letter.error),
        attempts=letter.attempts,
        consumer=storable_error(letter.consumer),
        failed_at=letter.failed_at,
        recorded_at=at,
    )


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    return limit


def check_subject_filter(subject: str) -> list[str]:
    """The tokens of a subject filter ("*" for any one token), or `ValidationFailed`."""
    tokens = subject.split(".")
    if not all(_TOKEN.fullmatch(t) for t in tokens):
        raise ValidationFailed(
            f"invalid subject {subject!r}: dot-separated tokens of letters, digits, '_', '-' "
            "or '*'",
            field="subject",
        )
    return tokens


def unknown_cursor(after: uuid.UUID) -> ValidationFailed:
    return ValidationFailed(
        f"cursor {after} is not a dead letter this listing returned", field="cursor"
    )
