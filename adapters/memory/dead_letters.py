"""Dead letters in a dict, for tests and the single-process default without a database.

Implements `codeforge.ports.dead_letters.DeadLetterStore` (its module docstring is the
contract) with the PostgreSQL adapter's behaviour: the same order, the same cursor rules,
the same escaping. No method awaits before it is done, so on one event loop each is atomic.
Not thread-safe.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from codeforge.domain.errors import NotFound
from codeforge.ports.dead_letters import (
    StoredDeadLetter,
    check_limit,
    check_subject_filter,
    check_time,
    stored_from,
    unknown_cursor,
)
from codeforge.ports.queue import DeadLetter, matches
from codeforge.ports.stores import Page


class MemoryDeadLetterStore:
    """`DeadLetterStore` in memory."""

    def __init__(self) -> None:
        self._letters: dict[uuid.UUID, StoredDeadLetter] = {}

    async def record(self, letter: DeadLetter, *, at: datetime) -> bool:
        stored = stored_from(letter, at)
        if stored.id in self._letters:
            return False
        self._letters[stored.id] = stored
        return True

    async def get(self, letter_id: uuid.UUID) -> StoredDeadLetter:
        try:
            return self._letters[letter_id]
        except KeyError:
            raise NotFound(f"dead letter {letter_id} not found") from None

    async def list(
        self,
        *,
        limit: int = 50,
        after: uuid.UUID | None = None,
        subject: str | None = None,
    ) -> Page[StoredDeadLetter]:
        check_limit(limit)
        if subject is not None:
            check_subject_filter(subject)
        chosen = [
            letter
            for letter in self._letters.values()
            if subject is None or matches(subject, letter.subject)
        ]
        chosen.sort(key=_position, reverse=True)
        if after is not None:
            if after not in self._letters:
                raise unknown_cursor(after)
            cursor = _position(self._letters[after])
            chosen = [letter for letter in chosen if _position(letter) < cursor]
        items = chosen[:limit]
        more = len(chosen) > limit
        return Page(items, str(items[-1].id) if more else None)

    async def mark_replayed(self, letter_id: uuid.UUID, *, at: datetime) -> StoredDeadLetter:
        check_time("at", at)
        current = await self.get(letter_id)
        updated = msgspec.structs.replace(
            current, replayed_at=at, replay_count=current.replay_count + 1
        )
        self._letters[letter_id] = updated
        return updated


def _position(letter: StoredDeadLetter) -> tuple[datetime, uuid.UUID]:
    # Python orders UUIDs by their 128-bit value, as PostgreSQL does (byte by byte).
    return (letter.failed_at, letter.id)
