"""Per-exec overhead of each sandbox adapter, against a bare `subprocess.run` in the same run.

`make bench` runs them; each prints its figures and asserts its goal:

- mount: median exec of a command <= the bare `subprocess.run` median + 5 ms.
- bwrap: median exec of a command <= the bare `subprocess.run` median + 30 ms.

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

GOALS_MS = {"mount": 5.0, "bwrap": 30.0}
BUILDERS: dict[str, Callable[[], SandboxFactory]] = {
    "mount": MountSandboxFactory,
    "bwrap": BwrapSandboxFactory,
}
WARMUP = 20
ROUNDS = 300
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
    bare_argv, how = COMMANDS[command]
    sandbox_command: list[str] | str = bare_argv if how == "argv" else how
    with tempfile.TemporaryDirectory(prefix="cf-bench-") as workspace:
        opened = time.perf_counter()
        sandbox = await factory.open(SandboxSpec(workspace=workspace))
        open_ms = (time.perf_counter() - opened) * 1000
        try:
            for _ in range(WARMUP):
                bare_run(bare_argv)
                await sandbox.exec(sandbox_command)
            bare: list[float] = []
            wrapped: list[float] = []
            for _ in range(ROUNDS):
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
        rounds=ROUNDS,
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
