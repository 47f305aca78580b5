"""The live run event feed across processes, over PostgreSQL LISTEN/NOTIFY.

Every process that serves subscribers runs one `PostgresEventFeed`: one
dedicated connection LISTENs on `codeforge_events` and hands each notice to the
in-process fan-out (`adapters.memory.event_feed.FanOut`, which also documents
how a slow subscriber is treated: coalescing per run, never blocking, a resync
notice when it overflows). `publish` NOTIFYs through the pool; the event store
NOTIFYs inside its own transaction, so a notice is delivered only if the write
committed. A notice comes back to this process's own listener like any other.

NOTIFY payload (compact JSON, always far below PostgreSQL's 8,000-byte cap):

    {"t": tenant id, "k": "run_event" | "status",
     "r": run id, "s": seq,                            (when set)
     "e": "run" | "task" | "agent", "i": entity id, "st": status}   (when set)

When the listening connection dies, the feed reconnects with exponential
backoff; notices sent meanwhile are lost, so once it listens again every
subscriber gets a resync notice (`FeedNotice(kind="run_event", run_id=None)`)
and re-reads what it follows from the store. Watchers (the run cache) are told
the connection is lost as soon as the listener sees it break, and restored once it
LISTENs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

import msgspec
import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from adapters.feed_wire import decode_notice, encode
from adapters.memory.event_feed import DEFAULT_MAX_PENDING, FanOut, Subscription
from adapters.postgres.errors import describe
from adapters.postgres.urls import libpq_url
from codeforge.ports.errors import DependencyUnavailable, PortError
from codeforge.ports.events import FeedNotice, FeedWatcher

CHANNEL = "codeforge_events"
# PostgreSQL refuses NOTIFY payloads of 8,000 bytes or more.
MAX_PAYLOAD_BYTES = 7999

log = structlog.get_logger("codeforge.events.feed")


def encode_notice(notice: FeedNotice) -> str:
    """The NOTIFY payload for `notice` (see the module docstring)."""
    payload = encode(notice)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PortError(f"a feed notice of {len(payload)} bytes is over the NOTIFY limit")
    return payload.decode()


ConnInfo = str | Callable[[], str] | Callable[[], Awaitable[str]]


class PostgresEventFeed:
    """`RunEventFeed` over LISTEN/NOTIFY; `start()` (or `async with`) before use.

    `source` is the application's pool (publishing borrows from it; the listener
    opens its own connection to the same database) or a URL (the feed then opens
    a small pool of its own and closes it on `close()`). `start()` returns once
    the listener is LISTENing, so a notice sent after it returns is received;
    it raises `DependencyUnavailable` when the database cannot be reached.
    Later connection losses are retried for ever, waiting `reconnect_delay`
    doubled up to `max_reconnect_delay`. `keepalive` seconds of silence make the
    listener check its connection, so a half-open socket is noticed.
    After `close()`, `publish` does nothing and new subscriptions end at once.
    """

    def __init__(
        self,
        source: str | AsyncConnectionPool,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 5.0,
        keepalive: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self._conninfo: ConnInfo
        if isinstance(source, str):
            self._conninfo = libpq_url(source)
            self._pool: AsyncConnectionPool | None = None
        else:
            self._conninfo = source.conninfo
            self._pool = source
        self._owns_pool = self._pool is None
        self._fan_out = FanOut(max_pending, receiving=False)
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._keepalive = keepalive
        self._connect_timeout = connect_timeout
        self._listener: asyncio.Task[None] | None = None
        self._listener_pid: int | None = None
        self._closed = False
        self.reconnects = 0

    @property
    def listener_pid(self) -> int | None:
        """The backend pid of the listening connection (None while disconnected)."""
        return self._listener_pid

    async def start(self) -> None:
        if self._listener is not None or self._closed:
            return
        if self._pool is None:
            self._pool = AsyncConnectionPool(
                self._conninfo,
                min_size=1,
                max_size=2,
                open=False,
                name="codeforge-feed",
                kwargs={"autocommit": True, "application_name": "codeforge-feed"},
            )
            try:
                await self._pool.open(wait=True, timeout=self._connect_timeout)
            except (PoolTimeout, psycopg.Error) as e:
                await self._pool.close()
                raise DependencyUnavailable(f"the event feed cannot publish: {describe(e)}") from e
        try:
            first = await self._listen()
        except psycopg.Error as e:
            raise DependencyUnavailable(f"the event feed cannot listen: {describe(e)}") from e
        self._listener = asyncio.create_task(self._listen_forever(first), name="event-feed")
        self._fan_out.restored()

    async def __aenter__(self) -> PostgresEventFeed:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def publish(self, notice: FeedNotice) -> None:
        if self._closed:
            return
        if self._pool is None:
            raise PortError("the event feed was not started")
        payload = encode_notice(notice)
        try:
            async with self._pool.connection() as conn:
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
        except (PoolTimeout, psycopg.OperationalError) as e:
            raise DependencyUnavailable(f"cannot publish a feed notice: {describe(e)}") from e
        except psycopg.Error as e:
            raise PortError(f"cannot publish a feed notice: {describe(e)}") from e

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
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._owns_pool and self._pool is not None:
            await self._pool.close()

    # -- the listener ----------------------------------------------------------------

    async def _listen(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        conninfo = self._conninfo
        # A pool may compute its conninfo per connection (rotating credentials).
        if callable(conninfo):
            produced = conninfo()
            conninfo = produced if isinstance(produced, str) else await produced
        conn = await psycopg.AsyncConnection.connect(
            conninfo,
            autocommit=True,
            connect_timeout=max(1, round(self._connect_timeout)),
            application_name="codeforge-feed-listener",
        )
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            await conn.close()
            raise
        self._listener_pid = conn.info.backend_pid
        return conn

    async def _listen_forever(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        delay = self._reconnect_delay
        while True:
            try:
                await self._relay(conn)
            # Whatever broke, the feed must outlive it: reconnect rather than fall silent.
            except Exception as e:
                log.warning("event feed lost its connection; reconnecting", error=describe(e))
            finally:
                # Before anything else: a cache fed by these notices must stop trusting them.
                self._fan_out.lost()
                self._listener_pid = None
                await conn.close()
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_reconnect_delay)
                try:
                    conn = await self._listen()
                    break
                except Exception as e:
                    log.warning("event feed cannot reconnect yet", error=describe(e))
            delay = self._reconnect_delay
            self.reconnects += 1
            log.info("event feed listening again; subscribers resync")
            # Whatever was sent while nobody listened is lost: make every reader re-read.
            self._fan_out.resync_all()
            self._fan_out.restored()

    async def _relay(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        while True:
            async for notify in conn.notifies(timeout=self._keepalive):
                try:
                    notice = decode_notice(notify.payload)
                except msgspec.DecodeError:  # includes ValidationError
                    log.warning("ignoring a malformed feed notice", payload=notify.payload[:200])
                    continue
                self._fan_out.deliver(notice)
            # Silence for `keepalive` seconds: make sure the connection still answers.
            await conn.execute("SELECT 1")
