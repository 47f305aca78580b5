"""Live output of a run (model tokens, command output): batched onto the event feed.

Deltas are ephemeral (never stored; their content is stored once, complete, in the
event that closes the step). Publishing each token would be one NOTIFY per token, so
text is buffered per (stream, call) and flushed when `interval` seconds have passed
or a piece reaches `MAX_DELTA_CHARS`; `flush()` sends what is left (the runtime calls
it before it stores the event that closes the step, so live text never arrives after
the stored event that contains it). A feed failure is logged and the text dropped:
live output must never fail a run.
"""

from __future__ import annotations

import time
import uuid

import structlog

from codeforge.ports.errors import PortError
from codeforge.ports.events import MAX_DELTA_CHARS, DeltaStream, FeedNotice, RunEventFeed

log = structlog.get_logger("codeforge.agent.deltas")


class DeltaPublisher:
    def __init__(
        self,
        feed: RunEventFeed | None,
        tenant_id: uuid.UUID,
        run_id: uuid.UUID,
        *,
        interval: float = 0.05,
    ) -> None:
        self._feed = feed
        self._tenant = tenant_id
        self._run = run_id
        self._interval = interval
        self._pending: dict[tuple[DeltaStream, str | None], list[str]] = {}
        self._sizes: dict[tuple[DeltaStream, str | None], int] = {}
        self._last_flush = time.monotonic()
        self.published = 0

    async def emit(self, stream: DeltaStream, text: str, call_id: str | None = None) -> None:
        if self._feed is None or not text:
            return
        key = (stream, call_id)
        self._pending.setdefault(key, []).append(text)
        self._sizes[key] = self._sizes.get(key, 0) + len(text)
        if time.monotonic() - self._last_flush >= self._interval:
            await self.flush()
        elif self._sizes[key] >= MAX_DELTA_CHARS:
            # Full pieces go now; the rest waits for more text or the next flush.
            joined = "".join(self._pending[key])
            cut = len(joined) - len(joined) % MAX_DELTA_CHARS
            self._pending[key] = [joined[cut:]] if cut < len(joined) else []
            self._sizes[key] = len(joined) - cut
            for start in range(0, cut, MAX_DELTA_CHARS):
                await self._publish(stream, call_id, joined[start : start + MAX_DELTA_CHARS])

    async def flush(self) -> None:
        if self._feed is None or not self._pending:
            return
        pending, self._pending, self._sizes = self._pending, {}, {}
        self._last_flush = time.monotonic()
        for (stream, call_id), pieces in pending.items():
            text = "".join(pieces)
            if not text:
                continue
            for start in range(0, len(text), MAX_DELTA_CHARS):
                await self._publish(stream, call_id, text[start : start + MAX_DELTA_CHARS])

    async def _publish(self, stream: DeltaStream, call_id: str | None, text: str) -> None:
        assert self._feed is not None
        notice = FeedNotice(
            tenant_id=self._tenant,
            kind="delta",
            run_id=self._run,
            stream=stream,
            call_id=call_id,
            text=text,
        )
        try:
            await self._feed.publish(notice)
            self.published += 1
        except PortError as e:
            log.warning("live output dropped", run_id=str(self._run), error=str(e))
