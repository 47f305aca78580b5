"""Decisions for a running run travel to the worker that holds its lease.

Published on the run's fan-out control subject (`runs.control.<id>`), through the
publish circuit breaker: any API process can reach whichever worker, on whichever
host, holds the lease; the worker acts within a second.
"""

from __future__ import annotations

from codeforge.domain.commands import ControlRun
from codeforge.ports.queue import Queue
from codeforge.services.circuit_breaker import CircuitBreaker
from codeforge.services.subjects import control_subject


class RunControl:
    def __init__(self, queue: Queue, breaker: CircuitBreaker) -> None:
        self._queue = queue
        self._breaker = breaker

    async def send(self, command: ControlRun) -> None:
        await self._breaker.call(
            self._queue.publish, control_subject(command.run_id), command, None
        )
