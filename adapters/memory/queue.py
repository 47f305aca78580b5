"""The queue inside one process: asyncio, with the contract NATS JetStream keeps.

`MemoryBroker` plays the server: it stores work-queue messages until a consumer takes them,
keeps consumers (named ones outlive their subscriptions), redelivers after a delay and
de-duplicates message ids. `MemoryQueue` is one client of it, as a NATS connection is one
client of a server: several clients on one broker behave like several processes on one NATS.

`Dispatcher` and `outgoing_headers` are what every adapter does with a delivery and a
publish — decode, bind the request id, run the handler, decide between ack, retry and dead
letter — so the NATS adapter uses them too (as the PostgreSQL feed uses the memory FanOut).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Literal

import structlog
from msgspec import Struct

from codeforge.ports.queue import (
    DEDUPE_WINDOW_S,
    REQUEST_ID_HEADER,
    RESERVED_HEADER_PREFIX,
    RETRY_COUNT_HEADER,
    DeadLetter,
    Handler,
    InvalidPayload,
    Message,
    Mode,
    QueueClosed,
    RetryPolicy,
    SubjectRegistry,
    SubscriptionConflict,
    check_consumer_name,
    dead_letter_subject,
    default_consumer_name,
    matches,
    overlaps,
)

__all__ = [
    "DEFAULT_FAN_OUT_BACKLOG",
    "Dispatcher",
    "MemoryBroker",
    "MemoryQueue",
    "Verdict",
    "consumer_name",
    "outgoing_headers",
]

log = structlog.get_logger("codeforge.queue")

DEFAULT_FAN_OUT_BACKLOG = 10_000


# -- what every adapter shares ------------------------------------------------------------


def outgoing_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The headers to publish: the caller's, less the queue's own, plus `X-Request-ID`."""
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidPayload(f"headers map str to str, not {name!r}: {value!r}")
        if name != RETRY_COUNT_HEADER and not name.startswith(RESERVED_HEADER_PREFIX):
            out[name] = value
    if REQUEST_ID_HEADER not in out:
        bound = structlog.contextvars.get_contextvars().get("request_id")
        if bound:
            out[REQUEST_ID_HEADER] = str(bound)
    return out


def incoming_headers(headers: Mapping[str, str] | None, attempt: int) -> dict[str, str]:
    visible = {k: v for k, v in (headers or {}).items() if not k.startswith(RESERVED_HEADER_PREFIX)}
    visible[RETRY_COUNT_HEADER] = str(attempt - 1)
    return visible


def consumer_name(subject: str, durable: str | None, mode: Mode) -> tuple[str, bool]:
    """The consumer a subscription uses, and whether it outlives the subscription."""
    if durable is not None:
        return check_consumer_name(durable), True
    if mode == "work_queue":
        return default_consumer_name(subject), True
    return f"fan-out-{uuid.uuid4().hex}", False


class Verdict(Struct, frozen=True):
    action: Literal["ack", "retry", "dead_letter"]
    delay: float = 0.0
    dead_letter: DeadLetter | None = None


ACK = Verdict("ack")


class Dispatcher:
    """Runs one subscription's handler on one delivery and says what to do with the message.

    Never raises for a handler's error (that is a verdict); a CancelledError passes through,
    and the adapter then puts the message back.
    """

    def __init__(
        self,
        registry: SubjectRegistry,
        handler: Handler,
        *,
        subject: str,
        consumer: str,
        retry: RetryPolicy,
    ) -> None:
        self._registry = registry
        self._handler = handler
        self._consumer = consumer
        self._retry = retry
        self._is_dead_letter = registry.spec_for_filter(subject).is_dead_letter

    async def dispatch(
        self,
        subject: str,
        data: bytes,
        headers: Mapping[str, str] | None,
        *,
        attempt: int,
        sequence: int,
    ) -> Verdict:
        visible = incoming_headers(headers, attempt)
        request_id = visible.get(REQUEST_ID_HEADER)
        bound = (
            structlog.contextvars.bound_contextvars(request_id=request_id)
            if request_id
            else contextlib.nullcontext()
        )
        with bound:
            try:
                payload = self._registry.decode(subject, data)
            except InvalidPayload as e:
                log.error(
                    "queue message has an invalid payload; dead-lettered without retries",
                    subject=subject,
                    consumer=self._consumer,
                    error=str(e),
                )
                return self._dead(subject, data, visible, "invalid_payload", str(e), attempt)
            message = Message(
                subject=subject,
                payload=payload,
                headers=visible,
                attempt=attempt,
                sequence=sequence,
            )
            try:
                await self._handler(message)
            except Exception as e:
                error = f"{type(e).__name__}: {e}".rstrip(": ")
                if self._is_dead_letter or not self._retry.gives_up(attempt):
                    log.warning(
                        "queue handler failed; the message will be redelivered",
                        subject=subject,
                        consumer=self._consumer,
                        attempt=attempt,
                        retry_in_s=self._retry.delay,
                        error=error,
                    )
                    return Verdict("retry", delay=self._retry.delay)
                log.error(
                    "queue handler failed on the last retry; dead-lettered",
                    subject=subject,
                    consumer=self._consumer,
                    attempt=attempt,
                    dead_letter_subject=dead_letter_subject(subject),
                    exc_info=e,
                )
                return self._dead(subject, data, visible, "handler_failed", error, attempt)
        return ACK

    def _dead(
        self,
        subject: str,
        data: bytes,
        headers: dict[str, str],
        reason: Literal["handler_failed", "invalid_payload"],
        error: str,
        attempt: int,
    ) -> Verdict:
        record = DeadLetter(
            id=uuid.uuid4(),
            subject=subject,
            payload=data,
            headers={k: v for k, v in headers.items() if k != RETRY_COUNT_HEADER},
            reason=reason,
            error=error,
            attempts=attempt,
            consumer=self._consumer,
            failed_at=datetime.now(UTC),
        )
        return Verdict("dead_letter", dead_letter=record)


# -- the broker ---------------------------------------------------------------------------


class _Stored:
    __slots__ = ("data", "headers", "sequence", "subject")

    def __init__(self, subject: str, data: bytes, headers: dict[str, str], sequence: int):
        self.subject = subject
        self.data = data
        self.headers = headers
        self.sequence = sequence


class _Pending:
    """A stored message as one consumer sees it: fan-out consumers count deliveries apart."""

    __slots__ = ("deliveries", "stored")

    def __init__(self, stored: _Stored) -> None:
        self.stored = stored
        self.deliveries = 0


class _Consumer:
    def __init__(self, name: str, subject: str, mode: Mode, durable: bool, backlog: int) -> None:
        self.name = name
        self.subject = subject
        self.mode = mode
        self.durable = durable
        self.subscriptions = 0
        self.dropped = 0
        self._backlog = backlog
        self._ready: deque[_Pending] = deque()
        self._waiters: deque[asyncio.Future[_Pending]] = deque()
        self._timers: set[asyncio.TimerHandle] = set()

    def offer(self, pending: _Pending, *, front: bool = False) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(pending)
                return
        if front:
            self._ready.appendleft(pending)
        else:
            self._ready.append(pending)
        if self.mode == "fan_out" and len(self._ready) > self._backlog:
            # Past the backlog an absent fan-out consumer loses its oldest messages, as a
            # NATS consumer loses what the stream's limits discarded.
            self._ready.popleft()
            self.dropped += 1

    async def take(self) -> _Pending:
        if self._ready:
            return self._ready.popleft()
        waiter: asyncio.Future[_Pending] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Handed over just before the taker was cancelled: it goes back, first in line.
                self.offer(waiter.result(), front=True)
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def offer_later(self, pending: _Pending, delay: float) -> None:
        def due() -> None:
            self._timers.discard(handle)
            self.offer(pending)

        handle = asyncio.get_running_loop().call_later(delay, due)
        self._timers.add(handle)

    def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._ready.clear()


class MemoryBroker:
    """Streams and consumers of one process, shared by every `MemoryQueue` built on it."""

    def __init__(
        self,
        *,
        fan_out_backlog: int = DEFAULT_FAN_OUT_BACKLOG,
        dedupe_window: float = DEDUPE_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fan_out_backlog = fan_out_backlog
        self._dedupe_window = dedupe_window
        self._clock = clock
        self._sequence = itertools.count(1)
        # Work-queue messages no consumer's subject matches yet, in publish order.
        self._unclaimed: deque[_Stored] = deque()
        self._consumers: dict[tuple[Mode, str], _Consumer] = {}
        self._seen: OrderedDict[str, float] = OrderedDict()

    def publish(
        self,
        subject: str,
        data: bytes,
        headers: dict[str, str],
        mode: Mode,
        message_id: str | None = None,
    ) -> None:
        if message_id is not None and self._duplicate(message_id):
            return
        stored = _Stored(subject, data, headers, next(self._sequence))
        if mode == "work_queue":
            for consumer in self._of_mode("work_queue"):
                if matches(consumer.subject, subject):
                    consumer.offer(_Pending(stored))
                    return
            self._unclaimed.append(stored)
            return
        for consumer in self._of_mode("fan_out"):
            if matches(consumer.subject, subject):
                consumer.offer(_Pending(stored))

    def _duplicate(self, message_id: str) -> bool:
        now = self._clock()
        while self._seen:
            oldest, seen_at = next(iter(self._seen.items()))
            if now - seen_at < self._dedupe_window:
                break
            del self._seen[oldest]
        if message_id in self._seen:
            return True
        self._seen[message_id] = now
        return False

    def _of_mode(self, mode: Mode) -> list[_Consumer]:
        return [c for (m, _), c in self._consumers.items() if m == mode]

    def attach(self, name: str, subject: str, mode: Mode, durable: bool) -> _Consumer:
        """The consumer `name` (created if new) with one more subscription."""
        consumer = self._consumers.get((mode, name))
        if consumer is not None:
            if consumer.subject != subject:
                raise SubscriptionConflict(
                    f"consumer {name!r} takes {consumer.subject!r}, not {subject!r}"
                )
        else:
            if mode == "work_queue":
                for other in self._of_mode("work_queue"):
                    if overlaps(other.subject, subject):
                        raise SubscriptionConflict(
                            f"work queue {subject!r} overlaps {other.subject!r}, which consumer "
                            f"{other.name!r} takes: a work-queue subject has one consumer "
                            f"(subscribe with durable={other.name!r} to share it)"
                        )
            consumer = _Consumer(name, subject, mode, durable, self._fan_out_backlog)
            self._consumers[(mode, name)] = consumer
            if mode == "work_queue":
                self._claim(consumer)
        consumer.subscriptions += 1
        return consumer

    def _claim(self, consumer: _Consumer) -> None:
        keep: deque[_Stored] = deque()
        for stored in self._unclaimed:
            if matches(consumer.subject, stored.subject):
                consumer.offer(_Pending(stored))
            else:
                keep.append(stored)
        self._unclaimed = keep

    def detach(self, consumer: _Consumer) -> None:
        consumer.subscriptions -= 1
        if consumer.subscriptions == 0 and not consumer.durable:
            self._consumers.pop((consumer.mode, consumer.name), None)
            consumer.close()


# -- the client ---------------------------------------------------------------------------


class MemoryQueue:
    """The in-process queue; see `codeforge.ports.queue` for the contract it keeps."""

    def __init__(
        self,
        registry: SubjectRegistry,
        *,
        broker: MemoryBroker | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.registry = registry
        self.broker = broker if broker is not None else MemoryBroker()
        self._retry = retry if retry is not None else RetryPolicy()
        self._subscriptions: set[_MemorySubscription] = set()
        self._closed = False

    async def start(self) -> None:
        """Nothing to connect to; here so both adapters start the same way."""

    async def publish(
        self,
        subject: str,
        payload: Struct,
        headers: Mapping[str, str] | None = None,
        *,
        message_id: str | None = None,
    ) -> None:
        if self._closed:
            raise QueueClosed("the queue was drained: it publishes no more")
        data = self.registry.encode(subject, payload)
        mode = self.registry.spec(subject).mode
        self.broker.publish(subject, data, outgoing_headers(headers), mode, message_id)

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        durable: str | None = None,
        mode: Mode,
    ) -> _MemorySubscription:
        if self._closed:
            raise QueueClosed("the queue was drained: it takes no new subscriptions")
        spec = self.registry.spec_for_filter(subject)
        if spec.mode != mode:
            raise SubscriptionConflict(f"subject {subject!r} is a {spec.mode}, not a {mode}")
        name, durable_consumer = consumer_name(subject, durable, mode)
        consumer = self.broker.attach(name, subject, mode, durable_consumer)
        dispatcher = Dispatcher(
            self.registry, handler, subject=subject, consumer=name, retry=self._retry
        )
        subscription = _MemorySubscription(self, consumer, dispatcher)
        self._subscriptions.add(subscription)
        return subscription

    async def drain(self, grace: float = 10.0) -> None:
        self._closed = True
        await asyncio.gather(*(s.stop(grace) for s in list(self._subscriptions)))

    def is_connected(self) -> bool:
        return not self._closed

    def _dead_letter(self, subject: str, record: DeadLetter) -> None:
        target = dead_letter_subject(subject)
        headers = (
            {REQUEST_ID_HEADER: record.headers[REQUEST_ID_HEADER]}
            if (REQUEST_ID_HEADER in record.headers)
            else {}
        )
        self.broker.publish(target, self.registry.encode(target, record), headers, "work_queue")

    def _forget(self, subscription: _MemorySubscription) -> None:
        self._subscriptions.discard(subscription)


class _MemorySubscription:
    def __init__(self, queue: MemoryQueue, consumer: _Consumer, dispatcher: Dispatcher) -> None:
        self.subject = consumer.subject
        self.consumer = consumer.name
        self.mode: Mode = consumer.mode
        self._queue = queue
        self._consumer = consumer
        self._dispatcher = dispatcher
        self._stopping = False
        self._handling = False
        # A context of its own: handlers must not inherit the subscriber's log context.
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"queue:{consumer.name}", context=contextvars.Context()
        )

    @property
    def active(self) -> bool:
        return not self._stopping

    async def _run(self) -> None:
        while not self._stopping:
            pending = await self._consumer.take()
            pending.deliveries += 1
            stored = pending.stored
            self._handling = True
            try:
                verdict = await self._dispatcher.dispatch(
                    stored.subject,
                    stored.data,
                    stored.headers,
                    attempt=pending.deliveries,
                    sequence=stored.sequence,
                )
            except asyncio.CancelledError:
                self._consumer.offer(pending, front=True)
                raise
            except Exception:  # a bug of ours must not end the subscription silently
                log.exception("queue delivery failed", subject=stored.subject)
                verdict = Verdict("retry", delay=self._queue._retry.delay)
            finally:
                self._handling = False
            self._settle(pending, verdict)

    def _settle(self, pending: _Pending, verdict: Verdict) -> None:
        if verdict.action == "retry":
            self._consumer.offer_later(pending, verdict.delay)
        elif verdict.action == "dead_letter" and verdict.dead_letter is not None:
            self._queue._dead_letter(pending.stored.subject, verdict.dead_letter)

    async def stop(self, grace: float | None = None) -> None:
        if not self._stopping:
            self._stopping = True
            if not self._handling:
                self._task.cancel()
        done, _ = await asyncio.wait({self._task}, timeout=grace)
        if not done:
            self._task.cancel()
            await asyncio.wait({self._task})
        if not self._task.cancelled() and self._task.exception() is not None:
            log.error("queue subscription ended with an error", exc_info=self._task.exception())
        if self in self._queue._subscriptions:
            self._queue._forget(self)
            self._queue.broker.detach(self._consumer)
