"""`RunEventFeed` over NATS: live notices between processes and hosts that share NATS.

Notices go to `<prefix>.<tenant id>` with core NATS publish (at most once); every
feed instance subscribes to `<prefix>.>` and hands what arrives to the same
fan-out the other feeds use (`adapters.memory.event_feed.FanOut`), so subscribers
behave alike whichever feed is configured. A lost notice costs nothing lasting:
notices only say "look at the store", and after a reconnect every subscriber is
told to resync. Watchers are told of the loss when NATS reports the disconnect, and
of a loss and a restart at once when nats-py drops messages for a slow consumer.
The event store does not publish here; `codeforge.services.event_log.EventLog`
announces each write when this feed is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.subscription import Subscription as NatsSubscription
from nats.errors import Error as NatsError
from nats.errors import SlowConsumerError

from adapters.feed_wire import decode_notice, encode
from adapters.memory.event_feed import DEFAULT_MAX_PENDING, FanOut, Subscription
from codeforge.ports.errors import DependencyUnavailable, PortError
from codeforge.ports.events import FeedNotice, FeedWatcher

log = structlog.get_logger("codeforge.events.feed")

DEFAULT_PREFIX = "codeforge.feed"


class NatsEventFeed:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_pending: int = DEFAULT_MAX_PENDING,
        connect_timeout: float = 5.0,
    ) -> None:
        self._url = url
        self._prefix = prefix
        self._fan_out = FanOut(max_pending, receiving=False)
        self._connect_timeout = connect_timeout
        self._nc: Client | None = None
        self._sub: NatsSubscription | None = None
        self._closed = False

    async def start(self) -> None:
        if self._nc is not None or self._closed:
            return
        nc = Client()
        try:
            # nats-py retries a first connection for ever when reconnects are unlimited;
            # the deadline makes an unreachable server a clear error at start instead.
            await asyncio.wait_for(
                nc.connect(
                    servers=[self._url],
                    connect_timeout=max(1, round(self._connect_timeout)),
                    max_reconnect_attempts=-1,
                    reconnected_cb=self._reconnected,
                    disconnected_cb=self._disconnected,
                    error_cb=self._error,
                ),
                self._connect_timeout,
            )
            self._sub = await nc.subscribe(f"{self._prefix}.>", cb=self._received)
            await nc.flush(timeout=max(1, round(self._connect_timeout)))
        except (NatsError, OSError, TimeoutError) as e:
            with contextlib.suppress(Exception):
                await nc.close()
            raise DependencyUnavailable(
                f"the event feed cannot reach NATS within {self._connect_timeout:g} s"
            ) from e
        self._nc = nc
        self._fan_out.restored()

    async def __aenter__(self) -> NatsEventFeed:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def publish(self, notice: FeedNotice) -> None:
        if self._closed:
            return
        if self._nc is None:
            raise PortError("the event feed was not started")
        try:
            await self._nc.publish(f"{self._prefix}.{notice.tenant_id}", encode(notice))
        except NatsError as e:
            raise DependencyUnavailable(f"cannot publish a feed notice: {e}") from e

    def subscribe(self, tenant_id: uuid.UUID) -> Subscription:
        return self._fan_out.subscribe(tenant_id)

    def watch(self, watcher: FeedWatcher) -> None:
        self._fan_out.watch(watcher)

    def subscriber_count(self) -> int:
        return self._fan_out.subscriber_count()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fan_out.close()
        if self._nc is not None:
            try:
                if self._sub is not None:
                    await self._sub.unsubscribe()
                await self._nc.drain()
            except NatsError as e:
                log.warning("event feed closed uncleanly", error=str(e))

    async def _received(self, message: Any) -> None:
        try:
            notice = decode_notice(message.data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            log.warning("malformed feed notice ignored", subject=message.subject)
            return
        self._fan_out.deliver(notice)

    async def _reconnected(self) -> None:
        # Notices published while we were away are gone: everyone re-reads the store.
        log.info("event feed reconnected; subscribers resync")
        self._fan_out.resync_all()
        self._fan_out.restored()

    async def _disconnected(self) -> None:
        self._fan_out.lost()
        if not self._closed:
            log.warning("event feed lost NATS; reconnecting")

    async def _error(self, error: Exception) -> None:
        log.warning("event feed NATS error", error=str(error))
        if isinstance(error, SlowConsumerError):
            # nats-py dropped notices it could not queue: as good as a reconnect.
            self._fan_out.lost()
            self._fan_out.resync_all()
            self._fan_out.restored()
