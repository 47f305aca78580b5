"""Recently authenticated API keys, so a request costs no key lookup.

Every API request authenticates; reading the key row and writing its
`last_used_at` each time would double the database work of a simple GET. A
successful lookup is remembered for `ttl` seconds (by the key's hash, never the
key), and `last_used_at` is written at most once per `touch_interval`.

Revocation: the process that revokes a key forgets it at once; other processes
stop accepting it within `ttl` seconds.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

from codeforge.domain.keys import Principal


class KeyCache:
    def __init__(
        self,
        *,
        ttl: float = 5.0,
        touch_interval: float = 60.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._touch_interval = touch_interval
        self._max = max_entries
        self._clock = clock
        self._principals: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._touched: dict[uuid.UUID, float] = {}

    def get(self, key_hash: str) -> Principal | None:
        entry = self._principals.get(key_hash)
        if entry is None:
            return None
        principal, valid_until = entry
        if valid_until <= self._clock():
            del self._principals[key_hash]
            return None
        self._principals.move_to_end(key_hash)
        return principal

    def remember(self, key_hash: str, principal: Principal) -> None:
        if self._ttl <= 0:
            return
        self._principals[key_hash] = (principal, self._clock() + self._ttl)
        self._principals.move_to_end(key_hash)
        while len(self._principals) > self._max:
            self._principals.popitem(last=False)

    def forget(self, key_id: uuid.UUID) -> None:
        for key_hash in [h for h, (p, _) in self._principals.items() if p.key_id == key_id]:
            del self._principals[key_hash]
        self._touched.pop(key_id, None)

    def due_for_touch(self, key_id: uuid.UUID) -> bool:
        """True at most once per touch_interval per key (and the first time)."""
        now = self._clock()
        last = self._touched.get(key_id)
        if last is not None and now - last < self._touch_interval:
            return False
        self._touched[key_id] = now
        if len(self._touched) > self._max:
            self._touched.pop(next(iter(self._touched)))
        return True
