"""The queue: typed messages between processes, delivered at least once.

Two adapters implement it — in-process asyncio (`adapters/memory/queue.py`, the default) and
NATS JetStream (`adapters/nats/queue.py`) — and one contract suite
(`tests/contract/test_queue_contract.py`) checks both. Live run events do not travel here:
they have the `RunEventFeed` port.

Subjects and schemas
- A subject is dot-separated tokens of letters, digits, "_" and "-" ("runs.start",
  "runs.control.0190a…"). A `SubjectRegistry` gives each subject exactly one payload type (a
  msgspec Struct) and one delivery mode. A registered pattern may use "*" for exactly one
  token ("runs.control.*"); patterns may not overlap, so no subject ever has two types.
- "{subject}.dlq" is reserved: it carries the subject's dead letters as `DeadLetter`s, in
  work-queue mode. A subject whose last token is "dlq" is always a dead-letter subject.
- `publish` encodes the payload as JSON. A payload that is not an instance of the subject's
  type raises `InvalidPayload`, an unregistered subject `UnknownSubject`: nothing is published.
- A received message whose body does not decode to the subject's type (a publisher running
  another schema, a hand-made message) never reaches the handler: it goes straight to the
  dead-letter subject with reason "invalid_payload" and is acknowledged. No retries.

Modes (declared per subject in the registry; `subscribe` must ask for the same one)
- "work_queue": messages are kept until a consumer takes them, including those published
  while nobody is subscribed. A consumer is named by `durable` (default: a name derived from
  the subscribed subject, `default_consumer_name`); every subscription to one consumer, in this
  process or another, shares its messages: each message goes to one subscription at a time.
  A work-queue subject has ONE consumer: subscribing under another name to a subject that
  overlaps an existing consumer's raises `SubscriptionConflict`.
- "fan_out": every consumer gets every message published after the consumer was created.
  `durable=None` makes a consumer that lives as long as its subscription; a named consumer
  outlives its subscriptions and delivers, when subscribed again, what was published in
  between (as long as the adapter keeps it: NATS `fan_out_max_age`, memory `fan_out_backlog`).
  Subscriptions that share a named fan-out consumer share its messages, as in a work queue.
- In both modes a consumer takes the one subject (or pattern) it was created for: reusing its
  name for another subject raises `SubscriptionConflict`.

Delivery
- At least once. A message is acknowledged only after its handler returns. A handler that
  raises, a process that dies or a lost connection means the message comes again, so handlers
  must be idempotent (or guard themselves, as runs do with their lease).
- Retries (`RetryPolicy`): after a handler error the message is redelivered no sooner than
  `delay` seconds later (default 2). A message goes to the handler at most `1 + max_retries`
  times (default 4) because of handler errors: when the delivery after the last retry fails
  too, a `DeadLetter` holding the original bytes, headers, error and attempt count is
  published to "{subject}.dlq", and only then is the original acknowledged. When the dead
  letter cannot be published, the original is redelivered instead: nothing is dropped.
  A failing handler of a dead-letter subject is retried without limit (a dead letter is the
  last copy of its message).
- `Message.attempt` counts deliveries from 1 and the `Retry-Count` header is `attempt - 1`.
  Every redelivery counts, including one after a consumer died holding the message.
- Ordering. Each subscription runs its handler on one message at a time. Messages published
  to one subject one after the other (each `publish` awaited before the next) are handed out
  by each consumer in publish order, so a consumer with a single subscription handles them in
  that order — except redeliveries: a retried message comes back after its delay, behind
  messages published after it. When several subscriptions share a consumer, each starts its
  messages in publish order but they run side by side: no order of completion is promised.
  Nothing is promised across subjects.
- Request ids. `publish` sends `X-Request-ID`: the one in `headers`, else the `request_id`
  bound to the caller's log context, if any. While a handler runs, the consumer binds that
  value as `request_id` into the structlog context (`structlog.contextvars`), and unbinds it
  afterwards; handlers start from an empty log context, never the subscriber's.
- Headers are str -> str. `Retry-Count` is the queue's own (a publisher's value is replaced);
  names starting with "Nats-" are reserved and never reach a handler.
- De-duplication: publishes that carry the same `message_id` within `DEDUPE_WINDOW_S` store
  the message once (an outbox relay re-publishing after a crash does no harm).

Lifecycle
- `subscribe` returns once the consumer exists: a fan-out subscription receives everything
  published after it returns.
- `Subscription.stop()` takes no new messages, lets the handler in progress finish (its
  message is acknowledged or retried as usual), then detaches. An unnamed fan-out consumer is
  deleted with it; a work queue's messages stay for the other subscriptions or the next one.
  (A message in transit to a subscription at the instant it stops may be held back until the
  adapter's acknowledgement timeout — NATS `ack_wait` — before it comes again.)
- `drain(grace)` stops every subscription that way; handlers still running after `grace`
  seconds are cancelled and their messages redelivered. Then it flushes what was published and
  closes the connection. Afterwards `publish` and `subscribe` raise `QueueClosed` and
  `is_connected()` is False. Draining twice is harmless.
- `is_connected()` answers whether a publish can reach the broker now. It is cheap and never
  blocks, so readiness probes may call it.

Errors, all `PortError`s (nothing above adapters/ sees a driver exception)::

    QueueError
    +-- InvalidSubject        a malformed subject, pattern or consumer name; overlapping patterns
    +-- UnknownSubject        no registered pattern covers the subject
    +-- InvalidPayload        the payload is not the subject's type, or does not decode to it
    +-- SubscriptionConflict  a second consumer on a work queue, or the wrong mode
    +-- QueueClosed           used after drain()
    +-- QueueUnavailable      the broker cannot be reached (also a DependencyUnavailable)
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Final, Generic, Literal, Protocol, TypeVar

import msgspec
from msgspec import Struct

from codeforge.ports.errors import DependencyUnavailable, PortError

__all__ = [
    "DEAD_LETTER_SUFFIX",
    "DEDUPE_WINDOW_S",
    "REQUEST_ID_HEADER",
    "RETRY_COUNT_HEADER",
    "DeadLetter",
    "Handler",
    "InvalidPayload",
    "InvalidSubject",
    "Message",
    "Mode",
    "Queue",
    "QueueClosed",
    "QueueError",
    "QueueUnavailable",
    "RetryPolicy",
    "SubjectRegistry",
    "SubjectSpec",
    "Subscription",
    "SubscriptionConflict",
    "UnknownSubject",
    "covers",
    "default_consumer_name",
    "matches",
    "overlaps",
]

Mode = Literal["work_queue", "fan_out"]

REQUEST_ID_HEADER: Final = "X-Request-ID"
RETRY_COUNT_HEADER: Final = "Retry-Count"
RESERVED_HEADER_PREFIX: Final = "Nats-"
DEAD_LETTER_SUFFIX: Final = "dlq"
DEDUPE_WINDOW_S: Final = 120.0

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_CONSUMER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


# -- errors -------------------------------------------------------------------------------


class QueueError(PortError):
    """The queue could not do what was asked; str() says what."""


class InvalidSubject(QueueError, ValueError):
    """A subject, pattern or consumer name is malformed, or patterns overlap."""


class UnknownSubject(QueueError):
    """No registered pattern covers the subject."""


class InvalidPayload(QueueError, ValueError):
    """A payload is not the subject's type, or its bytes do not decode to it."""


class SubscriptionConflict(QueueError):
    """The subscription contradicts an existing consumer or the subject's mode."""


class QueueClosed(QueueError):
    """The queue was drained: it publishes and subscribes no more."""


class QueueUnavailable(QueueError, DependencyUnavailable):
    """The broker cannot be reached (or did not answer in time)."""


# -- subjects -----------------------------------------------------------------------------


def _tokens(subject: str, *, wildcards: bool, what: str = "subject") -> list[str]:
    if not isinstance(subject, str) or not subject:
        raise InvalidSubject(f"a {what} must be a non-empty string, not {subject!r}")
    tokens = subject.split(".")
    for part in tokens:
        if part == "*" and wildcards:
            continue
        if not _TOKEN.fullmatch(part):
            allowed = 'letters, digits, "_", "-"' + (' or "*"' if wildcards else "")
            raise InvalidSubject(
                f"invalid {what} {subject!r}: tokens are separated by single dots and made of "
                f"{allowed}"
            )
    return tokens


def matches(pattern: str, subject: str) -> bool:
    """True when the concrete `subject` is one of those `pattern` stands for."""
    return covers(pattern, subject)


def covers(pattern: str, other: str) -> bool:
    """True when every subject `other` (itself possibly a pattern) stands for matches `pattern`."""
    p, o = pattern.split("."), other.split(".")
    return len(p) == len(o) and all(a in ("*", b) for a, b in zip(p, o, strict=True))


def overlaps(a: str, b: str) -> bool:
    """True when some subject matches both patterns."""
    x, y = a.split("."), b.split(".")
    return len(x) == len(y) and all(s == t or "*" in (s, t) for s, t in zip(x, y, strict=True))


def is_dead_letter_subject(subject: str) -> bool:
    return subject.rsplit(".", 1)[-1] == DEAD_LETTER_SUFFIX and "." in subject


def dead_letter_subject(subject: str) -> str:
    """Where the dead letters of `subject` (or of a pattern) go."""
    return f"{subject}.{DEAD_LETTER_SUFFIX}"


def default_consumer_name(subject: str) -> str:
    """The consumer a subscription without `durable` uses on a work queue.

    Derived from the subscribed subject, so every process subscribing to it without a name
    shares one consumer; the hash keeps "a.b_c" and "a_b.c" apart.
    """
    readable = subject.replace(".", "_").replace("*", "any")[:40]
    digest = hashlib.sha256(subject.encode()).hexdigest()[:10]
    return f"wq-{readable}-{digest}"


def check_consumer_name(name: str) -> str:
    if not isinstance(name, str) or not _CONSUMER_NAME.fullmatch(name):
        raise InvalidSubject(f"invalid consumer name {name!r}: 1 to 64 letters, digits, '_' or '-'")
    return name


# -- messages -----------------------------------------------------------------------------


P = TypeVar("P", bound=Struct)


class Message(Struct, Generic[P], frozen=True, kw_only=True):
    """One delivery of one message, as a handler receives it."""

    subject: str
    payload: P
    headers: dict[str, str]
    # Deliveries of this message to this consumer so far, this one included (1 = first).
    attempt: int
    # The message's position in its stream: increasing in publish order per adapter stream.
    sequence: int

    @property
    def request_id(self) -> str | None:
        return self.headers.get(REQUEST_ID_HEADER)

    @property
    def retry_count(self) -> int:
        return self.attempt - 1


Handler = Callable[[Message[Any]], Awaitable[None]]


class DeadLetter(Struct, frozen=True, kw_only=True):
    """A message given up on, published to "{subject}.dlq".

    `payload` is the original body, byte for byte (it may not decode: see `reason`), so a
    replay can publish exactly what was sent; `SubjectRegistry.decode` reads it back.
    """

    id: uuid.UUID
    subject: str
    payload: bytes
    headers: dict[str, str]
    reason: Literal["handler_failed", "invalid_payload"]
    error: str
    attempts: int
    consumer: str
    failed_at: datetime


class RetryPolicy(Struct, frozen=True, kw_only=True):
    """How handler failures are retried: `max_retries` redeliveries, `delay` seconds apart."""

    max_retries: int = 3
    delay: float = 2.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.delay < 0:
            raise ValueError("max_retries and delay must not be negative")

    def gives_up(self, attempt: int) -> bool:
        """True when a handler failure on delivery `attempt` sends the message to the DLQ."""
        return attempt > self.max_retries


# -- the registry -------------------------------------------------------------------------


class SubjectSpec(Struct, frozen=True):
    pattern: str
    payload_type: type[Struct]
    mode: Mode

    @property
    def is_dead_letter(self) -> bool:
        return self.payload_type is DeadLetter


class _Codec:
    __slots__ = ("decoder", "encoder")

    def __init__(self, payload_type: type[Struct]) -> None:
        self.encoder = msgspec.json.Encoder()
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(payload_type)


class SubjectRegistry:
    """Which payload type and mode each subject has: one of each per subject.

    Registration happens at start, before the queue is used; lookups are pure and cheap.
    Every registered pattern brings its dead-letter subject "{pattern}.dlq" (a work queue of
    `DeadLetter`s) along.
    """

    def __init__(self) -> None:
        self._specs: list[SubjectSpec] = []
        self._codecs: dict[type[Struct], _Codec] = {DeadLetter: _Codec(DeadLetter)}

    def register(self, pattern: str, payload_type: type[Struct], *, mode: Mode) -> SubjectSpec:
        """Add `pattern`; raise InvalidSubject if it is malformed or overlaps another."""
        tokens = _tokens(pattern, wildcards=True, what="subject pattern")
        if tokens[-1] == DEAD_LETTER_SUFFIX:
            raise InvalidSubject(f"{pattern!r}: subjects ending in '.dlq' are dead-letter subjects")
        if mode not in ("work_queue", "fan_out"):
            raise InvalidSubject(f"{pattern!r}: mode must be 'work_queue' or 'fan_out'")
        if not (isinstance(payload_type, type) and issubclass(payload_type, Struct)):
            raise InvalidSubject(f"{pattern!r}: the payload type must be a msgspec Struct")
        mine = (pattern, dead_letter_subject(pattern))
        for spec in self._specs:
            theirs = (spec.pattern, dead_letter_subject(spec.pattern))
            if any(overlaps(a, b) for a in mine for b in theirs):
                raise InvalidSubject(
                    f"subject pattern {pattern!r} overlaps {spec.pattern!r}: "
                    "each subject must have exactly one payload type"
                )
        spec = SubjectSpec(pattern, payload_type, mode)
        self._specs.append(spec)
        self._codecs.setdefault(payload_type, _Codec(payload_type))
        return spec

    def __iter__(self) -> Iterator[SubjectSpec]:
        return iter(list(self._specs))

    def patterns(self, mode: Mode) -> list[str]:
        """The patterns a broker must store for `mode`; dead-letter subjects are work queues."""
        found = [s.pattern for s in self._specs if s.mode == mode]
        if mode == "work_queue":
            found += self.dead_letter_patterns()
        return found

    def dead_letter_patterns(self) -> list[str]:
        """The dead-letter subjects of every registered pattern (what a DLQ recorder takes)."""
        return [dead_letter_subject(s.pattern) for s in self._specs]

    def spec(self, subject: str) -> SubjectSpec:
        """The spec of a concrete subject; raise InvalidSubject or UnknownSubject."""
        _tokens(subject, wildcards=False)
        return self._lookup(subject, matches)

    def spec_for_filter(self, subject: str) -> SubjectSpec:
        """The spec of a subject or pattern a subscription asks for; it must lie within one."""
        _tokens(subject, wildcards=True)
        return self._lookup(subject, covers)

    def _lookup(self, subject: str, within: Callable[[str, str], bool]) -> SubjectSpec:
        if is_dead_letter_subject(subject):
            base = subject.rsplit(".", 1)[0]
            for spec in self._specs:
                if within(spec.pattern, base):
                    return SubjectSpec(dead_letter_subject(spec.pattern), DeadLetter, "work_queue")
        else:
            for spec in self._specs:
                if within(spec.pattern, subject):
                    return spec
        raise UnknownSubject(f"no registered subject covers {subject!r}")

    def encode(self, subject: str, payload: Struct) -> bytes:
        """`payload` as JSON; raise InvalidPayload unless it is the subject's type."""
        spec = self.spec(subject)
        if type(payload) is not spec.payload_type:
            raise InvalidPayload(
                f"subject {subject!r} carries {spec.payload_type.__name__}, "
                f"not {type(payload).__name__}"
            )
        try:
            return self._codecs[spec.payload_type].encoder.encode(payload)
        except (UnicodeEncodeError, TypeError, ValueError) as e:
            # e.g. a lone surrogate in a string: JSON (UTF-8) cannot carry it.
            raise InvalidPayload(f"a {spec.payload_type.__name__} cannot be encoded: {e}") from e

    def decode(self, subject: str, data: bytes) -> Struct:
        """The subject's payload from `data`; raise InvalidPayload if it does not decode."""
        spec = self.spec(subject)
        try:
            payload: Struct = self._codecs[spec.payload_type].decoder.decode(data)
        except msgspec.DecodeError as e:
            raise InvalidPayload(
                f"a message on {subject!r} is not a valid {spec.payload_type.__name__}: {e}"
            ) from e
        return payload


# -- the port -----------------------------------------------------------------------------


class Subscription(Protocol):
    subject: str
    consumer: str
    mode: Mode

    @property
    def active(self) -> bool:
        """True until `stop()` (or the queue's drain) has begun."""
        ...

    async def stop(self, grace: float | None = None) -> None:
        """Take no new messages, let the handler in progress finish, detach.

        A handler still running after `grace` seconds (None: no limit) is cancelled and its
        message redelivered. Stopping twice is harmless.
        """
        ...


class Queue(Protocol):
    registry: SubjectRegistry

    async def publish(
        self,
        subject: str,
        payload: Struct,
        headers: Mapping[str, str] | None = None,
        *,
        message_id: str | None = None,
    ) -> None:
        """Store `payload` on the concrete `subject` durably (as the adapter can) and return.

        Raises UnknownSubject, InvalidSubject, InvalidPayload, QueueClosed, and
        QueueUnavailable when the broker is out of reach (at once, while disconnected) or did
        not confirm in time. A confirmation that timed out leaves the outcome unknown: the
        message may have been stored all the same. Publish again with the same `message_id`
        to be sure without doubling it.
        """
        ...

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        durable: str | None = None,
        mode: Mode,
    ) -> Subscription:
        """Run `handler` for each message on `subject` (a subject or a registered pattern's
        subset) until the subscription is stopped. See the module docstring for `durable`
        and `mode`; raises SubscriptionConflict, UnknownSubject, InvalidSubject, QueueClosed,
        QueueUnavailable."""
        ...

    async def drain(self, grace: float = 10.0) -> None:
        """Stop every subscription (waiting up to `grace` seconds for handlers), flush, close."""
        ...

    def is_connected(self) -> bool: ...
