"""The queue on NATS JetStream: how CodeForge shares work between processes and hosts.

Two streams hold the registry's subjects, because JetStream stores the two modes differently:

- `{stream_name}_WORK` (work-queue retention): the work-queue subjects and every dead-letter
  subject. A message stays until a consumer acknowledges it, so jobs published while no
  worker runs wait for one; JetStream itself refuses a second consumer on a subject.
  Full (`work_max_bytes`), it refuses new messages rather than dropping jobs.
- `{stream_name}_FANOUT` (limits retention): the fan-out subjects, kept `fan_out_max_age`
  seconds. Each subscription creates its consumer delivering only what is new; a named
  consumer resumes where it stopped.

Every consumer is a pull consumer with explicit acks, fetched one message at a time so
subscriptions sharing a work queue split it (no worker hoards messages while busy). A
handler's failure is a NAK with delay (the retry policy's), the delivery count in the
message's metadata is `attempt` (`Retry-Count` = attempt - 1), and a handler that runs
longer than `ack_wait` is kept alive by progress acks. Unacknowledged messages of a dead
process come again after `ack_wait`.

Connection loss: `is_connected()` turns False, nats-py reconnects on its own (forever, every
`reconnect_wait` seconds), publishes fail with `QueueUnavailable` meanwhile, and
subscriptions resume fetching when the connection is back.

Shutdown: pull subscriptions are unsubscribed before the connection drains — draining with
them still subscribed can hang in nats-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import nats.errors
import structlog
from msgspec import Struct
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, BadRequestError, NotFoundError

from adapters.memory.queue import Dispatcher, Verdict, consumer_name, outgoing_headers
from codeforge.ports.queue import (
    DEDUPE_WINDOW_S,
    REQUEST_ID_HEADER,
    DeadLetter,
    Handler,
    Mode,
    QueueClosed,
    QueueError,
    QueueUnavailable,
    RetryPolicy,
    SubjectRegistry,
    SubscriptionConflict,
    dead_letter_subject,
)

__all__ = ["NatsQueue"]

log = structlog.get_logger("codeforge.queue")

MSG_ID_HEADER = "Nats-Msg-Id"
# JetStream API error codes this adapter tells apart.
_STREAM_NAME_IN_USE = 10058
_CONSUMER_NOT_UNIQUE_ON_WORK_QUEUE = 10100

_UNREACHABLE = (
    TimeoutError,
    OSError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.NoServersError,
)


def _describe(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _safe_url(url: str) -> str:
    """The URL without credentials, fit for a log line or an error message."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


class NatsQueue:
    """The JetStream queue; see `codeforge.ports.queue` for the contract it keeps.

    Call `start()` (connect, create or extend the streams) before use and `drain()` at the end.
    """

    def __init__(
        self,
        url: str,
        registry: SubjectRegistry,
        *,
        stream_name: str = "CODEFORGE",
        retry: RetryPolicy | None = None,
        ack_wait: float = 30.0,
        poll_interval: float = 1.0,
        connect_timeout: float = 5.0,
        request_timeout: float = 5.0,
        reconnect_wait: float = 2.0,
        drain_timeout: float = 5.0,
        fan_out_max_age: float = 3600.0,
        work_max_bytes: int = 1 << 30,
        fan_out_max_bytes: int = 256 << 20,
        max_message_bytes: int = 1 << 20,
        dedupe_window: float = DEDUPE_WINDOW_S,
        ephemeral_ttl: float = 60.0,
        client_name: str = "codeforge",
    ) -> None:
        self.url = url
        self.registry = registry
        self.work_stream = f"{stream_name}_WORK"
        self.fan_out_stream = f"{stream_name}_FANOUT"
        self._retry = retry if retry is not None else RetryPolicy()
        self._ack_wait = ack_wait
        self._poll_interval = poll_interval
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._reconnect_wait = reconnect_wait
        self._drain_timeout = drain_timeout
        self._fan_out_max_age = fan_out_max_age
        self._work_max_bytes = work_max_bytes
        self._fan_out_max_bytes = fan_out_max_bytes
        self._max_message_bytes = max_message_bytes
        self._dedupe_window = dedupe_window
        self._ephemeral_ttl = ephemeral_ttl
        self._client_name = client_name
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._subscriptions: set[_NatsSubscription] = set()
        self._closed = False
        self._last_error: str | None = None
        self._error_reported = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and make sure the streams hold every registered subject.

        Raises QueueUnavailable when NATS cannot be reached within `connect_timeout`, and
        QueueError when a stream cannot be set up (JetStream disabled, a subject already in
        another stream, limits).
        """
        if self._closed:
            raise QueueClosed("the queue was drained: it cannot start again")
        if self._nc is not None:
            return
        nc = Client()
        try:
            await asyncio.wait_for(
                nc.connect(
                    servers=[self.url],
                    name=self._client_name,
                    connect_timeout=max(1, min(2, int(self._connect_timeout))),
                    reconnect_time_wait=self._reconnect_wait,  # type: ignore[arg-type]
                    max_reconnect_attempts=-1,
                    drain_timeout=self._drain_timeout,  # type: ignore[arg-type]
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                ),
                self._connect_timeout,
            )
        except (*_UNREACHABLE, nats.errors.Error) as e:
            with contextlib.suppress(Exception):
                await nc.close()
            reason = self._last_error or _describe(e)
            raise QueueUnavailable(
                f"cannot reach NATS at {_safe_url(self.url)} within "
                f"{self._connect_timeout:g} s: {reason}"
            ) from e
        self._nc = nc
        self._js = nc.jetstream(timeout=self._request_timeout)
        try:
            await self._ensure_streams()
        except BaseException:
            await nc.close()
            self._nc = self._js = None
            raise

    async def drain(self, grace: float = 10.0) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(s.stop(grace) for s in list(self._subscriptions)))
        nc = self._nc
        if nc is not None and not nc.is_closed:
            try:
                await nc.drain()
            except Exception as e:
                log.warning("draining the NATS connection failed", error=_describe(e))
                with contextlib.suppress(Exception):
                    await nc.close()

    def is_connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected and not self._closed

    async def delete_streams(self) -> None:
        """Delete both streams with every message and consumer in them (tests, resets)."""
        js = self._context()
        for name in (self.work_stream, self.fan_out_stream):
            try:
                await js.delete_stream(name)
            except NotFoundError:
                pass
            except Exception as e:
                raise self._translate(e, f"delete stream {name}") from e

    # -- the port -------------------------------------------------------------------------

    async def publish(
        self,
        subject: str,
        payload: Struct,
        headers: Mapping[str, str] | None = None,
        *,
        message_id: str | None = None,
    ) -> None:
        js = self._context()
        data = self.registry.encode(subject, payload)
        stream = self._stream_of(self.registry.spec(subject).mode)
        out = outgoing_headers(headers)
        if message_id is not None:
            out[MSG_ID_HEADER] = message_id
        if not self.is_connected():
            # nats-py would buffer it until reconnected, and the caller would wait for a
            # confirmation that cannot come: say so at once instead.
            raise QueueUnavailable(
                f"cannot publish to {subject!r}: NATS at {_safe_url(self.url)} is not connected"
            )
        try:
            await js.publish(
                subject, data, timeout=self._request_timeout, stream=stream, headers=out or None
            )
        except Exception as e:
            raise self._translate(e, f"publish to {subject!r}") from e

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        durable: str | None = None,
        mode: Mode,
    ) -> _NatsSubscription:
        js = self._context()
        spec = self.registry.spec_for_filter(subject)
        if spec.mode != mode:
            raise SubscriptionConflict(f"subject {subject!r} is a {spec.mode}, not a {mode}")
        name, durable_consumer = consumer_name(subject, durable, mode)
        stream = self._stream_of(mode)
        try:
            await self._ensure_consumer(js, stream, name, subject, mode, durable_consumer)
            pull = await js.pull_subscribe_bind(consumer=name, stream=stream)
        except QueueError:
            raise
        except Exception as e:
            raise self._translate(e, f"subscribe to {subject!r}") from e
        dispatcher = Dispatcher(
            self.registry, handler, subject=subject, consumer=name, retry=self._retry
        )
        subscription = _NatsSubscription(
            self, pull, dispatcher, subject=subject, consumer=name, mode=mode, stream=stream,
            durable=durable_consumer,
        )  # fmt: skip
        self._subscriptions.add(subscription)
        return subscription

    # -- streams and consumers ------------------------------------------------------------

    def _stream_of(self, mode: Mode) -> str:
        return self.work_stream if mode == "work_queue" else self.fan_out_stream

    async def _ensure_streams(self) -> None:
        for mode in ("work_queue", "fan_out"):
            patterns = self.registry.patterns(mode)
            if patterns:
                await self._ensure_stream(self._stream_of(mode), patterns, mode)

    def _stream_config(self, name: str, subjects: list[str], mode: Mode) -> api.StreamConfig:
        work = mode == "work_queue"
        return api.StreamConfig(
            name=name,
            subjects=subjects,
            retention=api.RetentionPolicy.WORK_QUEUE if work else api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            max_bytes=self._work_max_bytes if work else self._fan_out_max_bytes,
            max_age=None if work else self._fan_out_max_age,
            discard=api.DiscardPolicy.NEW if work else api.DiscardPolicy.OLD,
            max_msg_size=self._max_message_bytes,
            duplicate_window=self._dedupe_window,
            num_replicas=1,
        )

    async def _ensure_stream(self, name: str, subjects: list[str], mode: Mode) -> None:
        js = self._context()
        try:
            # Two processes may start at once: whoever loses the race to create reads again.
            for _ in range(3):
                try:
                    info = await js.stream_info(name)
                except NotFoundError:
                    try:
                        await js.add_stream(self._stream_config(name, subjects, mode))
                        return
                    except BadRequestError as e:
                        if e.err_code == _STREAM_NAME_IN_USE:
                            continue
                        raise
                current = list(info.config.subjects or [])
                missing = [s for s in subjects if s not in current]
                if missing:
                    # Subjects are only ever added: other processes may run other versions.
                    info.config.subjects = current + missing
                    await js.update_stream(info.config)
                return
        except nats.errors.NoRespondersError as e:
            raise QueueUnavailable(
                f"JetStream does not answer on the NATS server at {_safe_url(self.url)}: "
                "run nats-server with JetStream enabled (-js)"
            ) from e
        except Exception as e:
            raise self._translate(e, f"set up the JetStream stream {name}") from e
        raise QueueError(f"cannot set up the JetStream stream {name}: it keeps changing")

    async def _ensure_consumer(
        self,
        js: JetStreamContext,
        stream: str,
        name: str,
        subject: str,
        mode: Mode,
        durable: bool,
    ) -> None:
        if durable:
            try:
                info = await js.consumer_info(stream, name)
            except NotFoundError:
                pass
            else:
                if info.config.filter_subject != subject:
                    raise SubscriptionConflict(
                        f"consumer {name!r} takes {info.config.filter_subject!r}, not {subject!r}"
                    )
                return
        config = api.ConsumerConfig(
            name=name,
            durable_name=name if durable else None,
            filter_subject=subject,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self._ack_wait,
            max_deliver=-1,
            deliver_policy=api.DeliverPolicy.ALL if mode == "work_queue" else api.DeliverPolicy.NEW,
            inactive_threshold=None if durable else self._ephemeral_ttl,
        )
        try:
            await js.add_consumer(stream, config)
        except BadRequestError as e:
            if e.err_code == _CONSUMER_NOT_UNIQUE_ON_WORK_QUEUE:
                raise SubscriptionConflict(
                    f"work queue {subject!r} overlaps a subject another consumer takes: a "
                    "work-queue subject has one consumer (subscribe with its durable name to "
                    "share it)"
                ) from e
            raise

    # -- plumbing -------------------------------------------------------------------------

    def _context(self) -> JetStreamContext:
        if self._closed:
            raise QueueClosed("the queue was drained: it publishes and subscribes no more")
        if self._js is None:
            raise QueueUnavailable("the NATS queue is not started: call start() first")
        return self._js

    async def dead_letter(self, subject: str, record: DeadLetter) -> None:
        target = dead_letter_subject(subject)
        headers = (
            {REQUEST_ID_HEADER: record.headers[REQUEST_ID_HEADER]}
            if REQUEST_ID_HEADER in record.headers
            else None
        )
        js = self._js
        if js is None:
            raise QueueUnavailable("the NATS queue is not connected")
        try:
            await js.publish(
                target,
                self.registry.encode(target, record),
                timeout=self._request_timeout,
                stream=self.work_stream,
                headers=headers,
            )
        except Exception as e:
            raise self._translate(e, f"publish a dead letter to {target!r}") from e

    def _translate(self, error: Exception, doing: str) -> QueueError:
        if isinstance(error, QueueError):
            return error
        if isinstance(error, _UNREACHABLE):
            state = "is not connected" if not self.is_connected() else "did not answer in time"
            return QueueUnavailable(
                f"cannot {doing}: NATS at {_safe_url(self.url)} {state} ({_describe(error)})"
            )
        if isinstance(error, APIError):
            return QueueError(f"cannot {doing}: {error.description} (JetStream {error.err_code})")
        return QueueError(f"cannot {doing}: {_describe(error)}")

    def _forget(self, subscription: _NatsSubscription) -> None:
        self._subscriptions.discard(subscription)

    async def _on_error(self, error: Exception) -> None:
        self._last_error = _describe(error)
        # nats-py reports every failed reconnection attempt: one warning per outage is enough.
        if self._nc is not None and not self._closed and not self._error_reported:
            self._error_reported = True
            log.warning("NATS connection error", url=_safe_url(self.url), error=self._last_error)

    async def _on_disconnected(self) -> None:
        if not self._closed:
            log.warning("lost the connection to NATS; reconnecting", url=_safe_url(self.url))

    async def _on_reconnected(self) -> None:
        self._error_reported = False
        log.info("reconnected to NATS", url=_safe_url(self.url))


class _NatsSubscription:
    def __init__(
        self,
        queue: NatsQueue,
        pull: JetStreamContext.PullSubscription,
        dispatcher: Dispatcher,
        *,
        subject: str,
        consumer: str,
        mode: Mode,
        stream: str,
        durable: bool,
    ) -> None:
        self.subject = subject
        self.consumer = consumer
        self.mode: Mode = mode
        self._queue = queue
        self._pull = pull
        self._dispatcher = dispatcher
        self._stream = stream
        self._durable = durable
        self._stopping = False
        self._fetching = False
        self._detached = False
        # A context of its own: handlers must not inherit the subscriber's log context.
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"queue:{consumer}", context=contextvars.Context()
        )

    @property
    def active(self) -> bool:
        return not self._stopping

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._fetching = True
            try:
                messages = await self._pull.fetch(1, timeout=self._queue._poll_interval)
            except TimeoutError:
                continue
            except Exception as e:
                if self._stopping:
                    break
                failures += 1
                # A lost connection or a restarting server: say so once, then keep trying.
                if failures == 1:
                    log.warning(
                        "fetching from NATS failed; retrying",
                        subject=self.subject,
                        consumer=self.consumer,
                        error=_describe(e),
                    )
                await asyncio.sleep(min(2.0, 0.1 * failures))
                continue
            finally:
                self._fetching = False
            failures = 0
            for message in messages:
                await self._handle(message)

    async def _handle(self, msg: Msg) -> None:
        metadata = msg.metadata
        keep_alive = asyncio.create_task(self._keep_alive(msg))
        try:
            verdict = await self._dispatcher.dispatch(
                msg.subject,
                msg.data,
                msg.headers,
                attempt=metadata.num_delivered or 1,
                sequence=metadata.sequence.stream if metadata.sequence else 0,
            )
        except asyncio.CancelledError:
            # Cut short by stop(): let another subscription have it now, not after ack_wait.
            with contextlib.suppress(Exception):
                await msg.nak()
            raise
        except Exception:  # a bug of ours must not end the subscription silently
            log.exception("queue delivery failed", subject=msg.subject)
            verdict = Verdict("retry", delay=self._queue._retry.delay)
        finally:
            keep_alive.cancel()
        await self._settle(msg, verdict)

    async def _keep_alive(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self._queue._ack_wait / 3)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _settle(self, msg: Msg, verdict: Verdict) -> None:
        try:
            if verdict.action == "ack":
                await msg.ack()
            elif verdict.action == "retry":
                await msg.nak(delay=verdict.delay or None)
            elif verdict.dead_letter is not None:
                try:
                    await self._queue.dead_letter(msg.subject, verdict.dead_letter)
                except QueueError as e:
                    log.error(
                        "could not publish a dead letter; the message will be redelivered",
                        subject=msg.subject,
                        error=str(e),
                    )
                    await msg.nak(delay=self._queue._retry.delay)
                    return
                await msg.ack()
        except Exception as e:  # the message comes again: at least once, never lost
            log.warning(
                "acknowledging a message failed; it will be redelivered",
                subject=msg.subject,
                error=_describe(e),
            )

    async def stop(self, grace: float | None = None) -> None:
        if not self._stopping:
            self._stopping = True
            if self._fetching:
                self._task.cancel()
        done, _ = await asyncio.wait({self._task}, timeout=grace)
        if not done:
            self._task.cancel()
            await asyncio.wait({self._task})
        if not self._task.cancelled() and self._task.exception() is not None:
            log.error("queue subscription ended with an error", exc_info=self._task.exception())
        if self._detached:
            return
        self._detached = True
        self._queue._forget(self)
        with contextlib.suppress(Exception):
            await self._pull.unsubscribe()
        if not self._durable and self._queue._js is not None:
            with contextlib.suppress(Exception):
                await self._queue._js.delete_consumer(self._stream, self.consumer)
