"""Concurrent identical questions share one query; a cancelled caller does not cancel it."""

from __future__ import annotations

import asyncio

import pytest

from codeforge.services.event_streams import SingleFlight


async def test_concurrent_callers_share_one_query() -> None:
    shared = SingleFlight()
    calls = 0

    async def query() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return 42

    results = await asyncio.gather(*(shared.run("k", query) for _ in range(100)))
    assert results == [42] * 100
    assert calls == 1
    # Once answered, the next question runs again (nothing is cached).
    assert await shared.run("k", query) == 42
    assert calls == 2


async def test_different_keys_run_separately_and_errors_reach_every_caller() -> None:
    shared = SingleFlight()

    async def fail() -> int:
        await asyncio.sleep(0.01)
        raise LookupError("gone")

    async def ok() -> int:
        return 1

    results = await asyncio.gather(
        shared.run("a", fail), shared.run("a", fail), shared.run("b", ok), return_exceptions=True
    )
    assert [type(r) for r in results[:2]] == [LookupError, LookupError]
    assert results[2] == 1


async def test_a_cancelled_caller_leaves_the_shared_query_running_for_the_others() -> None:
    shared = SingleFlight()

    async def query() -> str:
        await asyncio.sleep(0.05)
        return "done"

    first = asyncio.create_task(shared.run("k", query))
    second = asyncio.create_task(shared.run("k", query))
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "done"
