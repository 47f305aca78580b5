"""Per-exec overhead of each sandbox adapter, against a bare `subprocess.run` in the same run.

`make bench` runs them; each prints its figures and asserts its goal:

- mount: median exec of a command <= the bare `subprocess.run` median + 5 ms.
- bwrap: median exec of a command <= the bare `subprocess.run` median + 30 ms.
- docker: median exec of a command <= the bare `subprocess.run` median + 250 ms (one
  `docker exec` per command; fewer rounds, each costs ~70 ms). Its open time (a cold
  container start, no warm pool) is measured on its own and printed.

Both a trivial argv (`true`) and a shell command (`sh -c 'echo hello'`) are measured.
Rounds interleave the baseline and the adapter, so a machine that slows down mid-run
slows both. Opening a sandbox (once per run) is printed, not asserted.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable

import pytest

from adapters.sandbox.bwrap import BwrapSandboxFactory
from adapters.sandbox.mount import MountSandboxFactory
from codeforge.ports.sandbox import SandboxFactory, SandboxSpec, SandboxUnavailable
from tests.benchmarks.conftest import median, percentile, report, require
from tests.support.docker_engine import docker_factory

GOALS_MS = {"mount": 5.0, "bwrap": 30.0, "docker": 250.0}
BUILDERS: dict[str, Callable[[], SandboxFactory]] = {
    "mount": MountSandboxFactory,
    "bwrap": BwrapSandboxFactory,
    "docker": docker_factory,
}
WARMUP = 20
ROUNDS = 300
DOCKER_WARMUP = 5
DOCKER_ROUNDS = 60
OPENS = 5
COMMANDS: dict[str, tuple[list[str], str]] = {
    # name: (the bare argv, the sandbox command: argv or shell string)
    "true": (["true"], "argv"),
    "sh -c 'echo hello'": (["/bin/sh", "-c", "echo hello"], "echo hello"),
}


def bare_run(argv: list[str]) -> float:
    """Seconds for a bare `subprocess.run` of argv, output captured as the sandbox does."""
    started = time.perf_counter()
    subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


@pytest.mark.parametrize("kind", list(BUILDERS))
@pytest.mark.parametrize("command", list(COMMANDS))
async def test_sandbox_exec_overhead_over_a_bare_subprocess_meets_its_goal(
    kind: str, command: str
) -> None:
    factory = BUILDERS[kind]()
    try:
        await factory.check()
    except SandboxUnavailable as e:
        pytest.skip(f"the {kind} sandbox cannot run here: {e}")
    warmup, rounds = (DOCKER_WARMUP, DOCKER_ROUNDS) if kind == "docker" else (WARMUP, ROUNDS)
    bare_argv, how = COMMANDS[command]
    sandbox_command: list[str] | str = bare_argv if how == "argv" else how
    with tempfile.TemporaryDirectory(prefix="cf-bench-") as workspace:
        opened = time.perf_counter()
        sandbox = await factory.open(SandboxSpec(workspace=workspace))
        open_ms = (time.perf_counter() - opened) * 1000
        try:
            for _ in range(warmup):
                bare_run(bare_argv)
                await sandbox.exec(sandbox_command)
            bare: list[float] = []
            wrapped: list[float] = []
            for _ in range(rounds):
                bare.append(bare_run(bare_argv))
                started = time.perf_counter()
                result = await sandbox.exec(sandbox_command)
                wrapped.append(time.perf_counter() - started)
                assert result.ok, result
        finally:
            await sandbox.close()
    bare_ms = median(bare) * 1000
    sandbox_ms = median(wrapped) * 1000
    overhead = sandbox_ms - bare_ms
    report(
        f"sandbox exec overhead: {kind}, {command}",
        rounds=rounds,
        bare_subprocess_run_median_ms=bare_ms,
        sandbox_exec_median_ms=sandbox_ms,
        sandbox_exec_p95_ms=percentile(wrapped, 0.95) * 1000,
        overhead_median_ms=overhead,
        goal_overhead_ms=GOALS_MS[kind],
        sandbox_open_ms=open_ms,
    )
    require(
        overhead <= GOALS_MS[kind],
        f"{kind} adds {overhead:.2f} ms per exec of {command} (goal <= {GOALS_MS[kind]:g} ms)",
    )


@pytest.mark.parametrize("kind", list(BUILDERS))
async def test_sandbox_open_time_is_reported(kind: str) -> None:
    factory = BUILDERS[kind]()
    try:
        await factory.check()
    except SandboxUnavailable as e:
        pytest.skip(f"the {kind} sandbox cannot run here: {e}")
    opens: list[float] = []
    closes: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cf-bench-") as workspace:
        for _ in range(OPENS):
            started = time.perf_counter()
            sandbox = await factory.open(SandboxSpec(workspace=workspace))
            assert (await sandbox.exec(["true"])).ok
            opens.append(time.perf_counter() - started)
            started = time.perf_counter()
            await sandbox.close()
            closes.append(time.perf_counter() - started)
    report(
        f"sandbox open time: {kind} (cold, open + first exec)",
        rounds=OPENS,
        open_and_first_exec_median_ms=median(opens) * 1000,
        open_and_first_exec_max_ms=max(opens) * 1000,
        close_median_ms=median(closes) * 1000,
    )
