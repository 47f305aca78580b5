"""Queue throughput: messages per second published and consumed, for each adapter.

`make bench` runs them with the others; docs/performance.md keeps the figures. For each
adapter, one work-queue subject and one subscription:

- publish: N awaited publishes, one after the other, with nobody subscribed;
- consume: the subscription takes those N (handler: count), from subscribe to the last one;
- end to end: subscribed first, then N published; from the first publish to the last handled.

NatsQueue is measured against nats-py's own loop on the same server in the same run — raw
`js.publish` of the same bytes, and a pull consumer fetching one message at a time and
acking it (what the adapter does beneath its typing, validation, headers and dispatch).
Goal: NatsQueue keeps >= 50 % of the raw end-to-end rate.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import nats
import pytest
from msgspec import Struct
from nats.js import api

from adapters.memory.queue import MemoryQueue
from adapters.nats.queue import NatsQueue
from adapters.nats.server import DEFAULT_URL, find_or_start_nats
from codeforge.ports.queue import Message, Queue, RetryPolicy, SubjectRegistry
from tests.benchmarks.conftest import report, require

N_MEMORY = 20_000
N_NATS = 4_000
RATIO_GOAL = 0.5
TIME_LIMIT = 60.0


class Job(Struct, frozen=True, kw_only=True):
    run_id: uuid.UUID
    tenant_id: uuid.UUID
    attempt: int
    requested_at: datetime


def job(n: int) -> Job:
    return Job(
        run_id=uuid.uuid4(), tenant_id=uuid.uuid4(), attempt=n, requested_at=datetime.now(UTC)
    )


@dataclass
class Rates:
    publish: float
    consume: float
    end_to_end: float


@pytest.fixture(scope="module")
def nats_url() -> Iterator[str]:
    url = os.environ.get("CODEFORGE_TEST_NATS_URL", DEFAULT_URL)
    start = os.environ.get("CODEFORGE_TEST_NATS_START", "") not in ("", "0")
    with find_or_start_nats(url, start=start) as found:
        yield found


async def wait_for_count(counter: list[int], n: int) -> None:
    deadline = time.monotonic() + TIME_LIMIT
    while counter[0] < n:
        assert time.monotonic() < deadline, f"only {counter[0]} of {n} consumed"
        await asyncio.sleep(0.001)


async def measure_adapter(make: Callable[[str], Awaitable[Queue]], n: int) -> Rates:
    """Publish, consume and end-to-end rates of a queue adapter on `n` messages each."""
    prefix = "b" + uuid.uuid4().hex[:10]
    backlog, piped = f"{prefix}.backlog", f"{prefix}.piped"
    queue = await make(prefix)
    payloads = [job(i) for i in range(n)]
    counter = [0]

    async def count(message: Message[Job]) -> None:
        counter[0] += 1

    started = time.perf_counter()
    for payload in payloads:
        await queue.publish(backlog, payload)
    publish = n / (time.perf_counter() - started)

    started = time.perf_counter()
    await queue.subscribe(backlog, count, mode="work_queue")
    await wait_for_count(counter, n)
    consume = n / (time.perf_counter() - started)

    counter[0] = 0
    await queue.subscribe(piped, count, mode="work_queue")
    started = time.perf_counter()
    for payload in payloads:
        await queue.publish(piped, payload)
    await wait_for_count(counter, n)
    end_to_end = n / (time.perf_counter() - started)
    return Rates(publish, consume, end_to_end)


def registry(prefix: str) -> SubjectRegistry:
    subjects = SubjectRegistry()
    subjects.register(f"{prefix}.backlog", Job, mode="work_queue")
    subjects.register(f"{prefix}.piped", Job, mode="work_queue")
    return subjects


async def measure_raw_nats(url: str, n: int) -> Rates:
    """The same three figures with nats-py alone: raw bytes, no validation, no dispatch."""
    prefix = "b" + uuid.uuid4().hex[:10]
    stream = f"BENCH_RAW_{prefix.upper()}"
    backlog, piped = f"{prefix}.backlog", f"{prefix}.piped"
    encoder = msgspec.json.Encoder()
    bodies = [encoder.encode(job(i)) for i in range(n)]
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(
        name=stream,
        subjects=[backlog, piped],
        retention=api.RetentionPolicy.WORK_QUEUE,
        max_bytes=64 << 20,
    )
    config = api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT, ack_wait=30, max_deliver=-1)
    counter = [0]

    async def subscribe(subject: str) -> Any:
        durable = f"raw-{subject.split('.')[1]}"
        return await js.pull_subscribe(subject, durable=durable, stream=stream, config=config)

    async def consume_all(pull: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                messages = await pull.fetch(1, timeout=1)
            except TimeoutError:
                continue
            for message in messages:
                await message.ack()
                counter[0] += 1
        await pull.unsubscribe()

    try:
        started = time.perf_counter()
        for body in bodies:
            await js.publish(backlog, body, stream=stream)
        publish = n / (time.perf_counter() - started)

        stop = asyncio.Event()
        started = time.perf_counter()
        consumer = asyncio.create_task(consume_all(await subscribe(backlog), stop))
        await wait_for_count(counter, n)
        consume = n / (time.perf_counter() - started)
        stop.set()
        await consumer

        counter[0] = 0
        stop = asyncio.Event()
        consumer = asyncio.create_task(consume_all(await subscribe(piped), stop))
        started = time.perf_counter()
        for body in bodies:
            await js.publish(piped, body, stream=stream)
        await wait_for_count(counter, n)
        end_to_end = n / (time.perf_counter() - started)
        stop.set()
        await consumer
    finally:
        await js.delete_stream(stream)
        await nc.drain()
    return Rates(publish, consume, end_to_end)


def figures(rates: Rates) -> dict[str, Any]:
    return {
        "published per s": round(rates.publish),
        "consumed per s": round(rates.consume),
        "end to end per s": round(rates.end_to_end),
    }


async def test_memory_queue_throughput() -> None:
    queues: list[MemoryQueue] = []

    async def make(prefix: str) -> Queue:
        queue = MemoryQueue(registry(prefix), retry=RetryPolicy())
        queues.append(queue)
        return queue

    rates = await measure_adapter(make, N_MEMORY)
    for queue in queues:
        await queue.drain()

    report(f"MemoryQueue, {N_MEMORY:,} messages", **figures(rates))


async def test_nats_queue_keeps_at_least_half_of_raw_nats_py_throughput(nats_url: str) -> None:
    queues: list[NatsQueue] = []

    async def make(prefix: str) -> Queue:
        queue = NatsQueue(
            nats_url, registry(prefix), stream_name=f"BENCH_{prefix.upper()}",
            work_max_bytes=64 << 20, fan_out_max_bytes=16 << 20,
        )  # fmt: skip
        await queue.start()
        queues.append(queue)
        return queue

    raw = await measure_raw_nats(nats_url, N_NATS)
    try:
        adapter = await measure_adapter(make, N_NATS)
    finally:
        for queue in queues:
            await queue.delete_streams()
            await queue.drain()
    ratio = adapter.end_to_end / raw.end_to_end

    report(
        f"NATS JetStream, {N_NATS:,} messages ({nats_url})",
        **{f"NatsQueue {k}": v for k, v in figures(adapter).items()},
        **{f"raw nats-py {k}": v for k, v in figures(raw).items()},
        end_to_end_share_of_raw=ratio,
        goal=f">= {RATIO_GOAL}",
    )
    require(ratio >= RATIO_GOAL, f"NatsQueue end to end is {ratio:.2f} of raw nats-py")
