"""`codeforge worker`, with the scripted agent as its executor, as a process of its own.

The agent runtime is not built yet, so the product installs no executor; this
launcher runs the real worker code path (configuration from the environment,
container, runtime, queue, leases, heartbeats, signals) with the executor
overridden, as the in-process tests do. The agent works for
$CODEFORGE_TEST_AGENT_SECONDS, or until the run is cancelled.
"""

from __future__ import annotations

import asyncio
import os
import signal

from dependency_injector import providers

from codeforge.config import load_config
from codeforge.container import Container
from codeforge.domain.runs import Run
from codeforge.log import configure_logging
from codeforge.ports.executor import CancelSignal, Journal, Outcome
from codeforge.runtime import Runtime


class SleepyAgent:
    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    async def execute(self, run: Run, cancel: CancelSignal, journal: Journal) -> Outcome:
        try:
            await asyncio.wait_for(cancel.wait(), self._seconds)
        except TimeoutError:
            return Outcome(status="succeeded", summary=f"worked {self._seconds:g}s")
        return Outcome(status="cancelled")


async def main() -> int:
    settings = load_config().settings
    writer = configure_logging(level=settings.log.level, fmt="json")
    container = Container(settings=settings)
    seconds = float(os.environ.get("CODEFORGE_TEST_AGENT_SECONDS", "0.2"))
    container.run_executor.override(providers.Object(SleepyAgent(seconds)))
    runtime = Runtime(container)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runtime.start(issue_first_admin_key=False, with_worker=True)
        worker = await container.run_worker()
        print(f'{{"msg": "worker ready", "worker": "{worker.worker_id}"}}', flush=True)
        await stop.wait()
    finally:
        await runtime.stop("signal")
        writer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
