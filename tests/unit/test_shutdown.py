"""The shutdown sequence: phases in order, bounded, and never stopping half-way."""

from __future__ import annotations

import asyncio

from codeforge.services.shutdown import PHASE_ORDER, Phase, ShutdownSequence

TIMEOUTS = dict.fromkeys(PHASE_ORDER, 0.2)


async def test_phases_run_in_the_contracted_order_whatever_the_registration_order() -> None:
    sequence = ShutdownSequence(TIMEOUTS)
    ran: list[str] = []

    def action(name: str):
        async def run() -> None:
            ran.append(name)

        return run

    sequence.register(Phase.CLOSE_POOL, "pool", action("pool"))
    sequence.register(Phase.DRAIN_QUEUE, "queue", action("queue"))
    sequence.register(Phase.SUSPEND_WORK, "runs", action("runs"))
    sequence.register(Phase.STOP_ACCEPTING_HTTP, "http", action("http"))
    sequence.register(Phase.SUSPEND_WORK, "subscribers", action("subscribers"))

    outcomes = await sequence.run()
    assert ran == ["http", "runs", "subscribers", "queue", "pool"]
    assert [o.phase for o in outcomes] == list(PHASE_ORDER)


async def test_a_failing_or_hanging_action_is_reported_and_later_phases_still_run() -> None:
    sequence = ShutdownSequence(TIMEOUTS)
    closed: list[bool] = []

    async def hang() -> None:
        await asyncio.sleep(10)

    async def fail() -> None:
        raise RuntimeError("worker gone")

    async def close() -> None:
        closed.append(True)

    sequence.register(Phase.STOP_ACCEPTING_HTTP, "http", hang)
    sequence.register(Phase.SUSPEND_WORK, "runs", fail)
    sequence.register(Phase.CLOSE_POOL, "pool", close)
    outcomes = await sequence.run()

    assert closed == [True]
    assert outcomes[0].failures == ["http: exceeded 0.2s"]
    assert outcomes[1].failures == ["runs: RuntimeError: worker gone"]
    assert outcomes[3].failures == []


async def test_running_twice_runs_the_actions_once() -> None:
    sequence = ShutdownSequence(TIMEOUTS)
    count: list[int] = []

    async def once() -> None:
        count.append(1)

    sequence.register(Phase.CLOSE_POOL, "pool", once)
    first, second = await asyncio.gather(sequence.run("SIGTERM"), sequence.run("SIGINT"))
    assert first == second
    assert count == [1]
    assert sequence.done
