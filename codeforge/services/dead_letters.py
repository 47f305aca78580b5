"""Dead letters: recorded as the queue gives up on messages, listed and replayed by operators.

The queue publishes a `DeadLetter` to "{subject}.dlq" when a handler failed on every retry
or a body did not decode. `DeadLetters.start` takes every dead-letter subject of the
registry and stores what arrives, so nothing given up on is lost from sight; `replay` sends
a letter's original message again, once whatever made it fail is fixed.

Who may look: dead letters are not tenant-scoped. The queue is one for the installation,
and a dead letter holds a message of any tenant (or of none: a body that did not decode has
no readable tenant at all), so filtering by tenant could not be done reliably. Operating the
queue is the installation operator's job, and the operators are the admins of the default
tenant: everyone else gets `Forbidden`, admins of other tenants included.
"""

from __future__ import annotations

import hashlib
import uuid

import structlog

from codeforge.domain.errors import Forbidden, ValidationFailed
from codeforge.domain.ids import DEFAULT_TENANT_ID
from codeforge.domain.keys import Principal
from codeforge.ports.dead_letters import DeadLetterStore, StoredDeadLetter
from codeforge.ports.queue import (
    RETRY_COUNT_HEADER,
    DeadLetter,
    InvalidPayload,
    InvalidSubject,
    Message,
    Queue,
    SubjectRegistry,
    Subscription,
    UnknownSubject,
)
from codeforge.ports.stores import Page
from codeforge.services.clock import Clock, utc_now

log = structlog.get_logger("codeforge.dead_letters")


def recorder_name(pattern: str) -> str:
    """The consumer that records the dead letters of `pattern` (a ".dlq" subject).

    Dead-letter subjects are work queues, and a work-queue consumer takes one subject: one
    name per pattern, the same in every process, so all recorders share each DLQ and every
    letter is recorded by one of them (and idempotently, should it come twice).
    """
    readable = pattern.replace(".", "_").replace("*", "any")[:36]
    return f"dlq-recorder-{readable}-{hashlib.sha256(pattern.encode()).hexdigest()[:10]}"


class DeadLetters:
    def __init__(
        self,
        store: DeadLetterStore,
        queue: Queue,
        registry: SubjectRegistry,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._queue = queue
        self._registry = registry
        self._clock = clock
        self._subscriptions: list[Subscription] = []

    async def start(self) -> None:
        """Record every dead letter from now on (and those already waiting in the DLQs).

        A letter that cannot be recorded (the database is down) stays in its DLQ: a failing
        dead-letter handler is retried without limit. Starting twice is harmless.
        """
        if self._subscriptions:
            return
        try:
            for pattern in self._registry.dead_letter_patterns():
                self._subscriptions.append(
                    await self._queue.subscribe(
                        pattern, self._record, durable=recorder_name(pattern), mode="work_queue"
                    )
                )
        except BaseException:
            await self.stop()
            raise

    async def stop(self, grace: float | None = None) -> None:
        """Stop recording; a letter being recorded is finished (or comes back later)."""
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            await subscription.stop(grace)

    async def _record(self, message: Message[DeadLetter]) -> None:
        letter = message.payload
        if await self._store.record(letter, at=self._clock()):
            log.warning(
                "dead letter recorded",
                dead_letter_id=str(letter.id),
                subject=letter.subject,
                reason=letter.reason,
                attempts=letter.attempts,
                error=letter.error,
            )

    async def list(
        self,
        principal: Principal,
        *,
        limit: int = 50,
        after: uuid.UUID | None = None,
        subject: str | None = None,
    ) -> Page[StoredDeadLetter]:
        """Newest failure first; `subject` may be a pattern ("runs.control.*")."""
        _require_operator(principal)
        return await self._store.list(limit=limit, after=after, subject=subject)

    async def get(self, principal: Principal, letter_id: uuid.UUID) -> StoredDeadLetter:
        _require_operator(principal)
        return await self._store.get(letter_id)

    async def replay(self, principal: Principal, letter_id: uuid.UUID) -> StoredDeadLetter:
        """Publish the letter's original message to its original subject, and note it.

        The payload goes out as it was first sent, with its headers (its request id among
        them) minus `Retry-Count`, which the queue starts afresh. A payload that does not
        decode to the subject's type, or a subject no longer registered, could never be
        delivered: `ValidationFailed`, and nothing is published. A replay may be repeated;
        each one is a new message, counted in `replay_count`.
        """
        _require_operator(principal)
        stored = await self._store.get(letter_id)
        try:
            payload = self._registry.decode(stored.subject, stored.payload)
        except (InvalidPayload, InvalidSubject, UnknownSubject) as e:
            raise ValidationFailed(
                f"dead letter {letter_id} can never be delivered, so it is not replayed: {e}",
                field="id",
            ) from e
        headers = {k: v for k, v in stored.headers.items() if k != RETRY_COUNT_HEADER}
        await self._queue.publish(stored.subject, payload, headers)
        replayed = await self._store.mark_replayed(letter_id, at=self._clock())
        log.info(
            "dead letter replayed",
            dead_letter_id=str(letter_id),
            subject=stored.subject,
            replay_count=replayed.replay_count,
        )
        return replayed


def _require_operator(principal: Principal) -> None:
    principal.require_admin()
    if principal.tenant_id != DEFAULT_TENANT_ID:
        raise Forbidden(
            "dead letters hold messages of every tenant: only admins of the default tenant "
            "may see or replay them"
        )
