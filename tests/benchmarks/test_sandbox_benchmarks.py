"""Per-exec overhead of each sandbox adapter, against a bare `subprocess.run` in the same run.

`make bench` runs them; each prints its figures and asserts its goal:

- mount: median exec of a command <= the bare `subprocess.run` median + 5 ms.
- bwrap: median exec of a command <= the bare `subprocess.run` median + 30 ms.
- docker: median exec of a command <= the bare `subprocess.run` median + 250 ms (one
  `docker exec` per command; fewer rounds, each costs ~70 ms).
- hybrid (an overlay layer, bwrap underneath): median exec <= bare + 30 ms, as bwrap.

Also measured: docker's open time cold (create + start a container) against warm (a
pooled container, the workspace bound in), goal: warm <= half of cold; and hybrid's
open, `changes()` and `merge()` on a 2,000-file workspace where the layer edits, adds
and deletes 100 files each (printed, goal: merge <= 1 s).

Both a trivial argv (`true`) and a shell command (`sh -c 'echo hello'`) are measured.
Rounds interleave the baseline and the adapter, so a machine that slows down mid-run
slows both. Opening a sandbox (once per run) is printed, not asserted.
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.sandbox.bwrap import BwrapSandboxFactory
from adapters.sandbox.docker import DockerSandbox, DockerSandboxFactory
from adapters.sandbox.docker_pool import Template
from adapters.sandbox.hybrid import HybridSandbox, HybridSandboxFactory
from adapters.sandbox.mount import MountSandboxFactory
from codeforge.ports.sandbox import SandboxFactory, SandboxSpec, SandboxUnavailable
from tests.benchmarks.conftest import median, percentile, report, require
from tests.support.docker_engine import docker_factory

GOALS_MS = {"mount": 5.0, "bwrap": 30.0, "docker": 250.0, "hybrid": 30.0}
BUILDERS: dict[str, Callable[[], SandboxFactory]] = {
    "mount": MountSandboxFactory,
    "bwrap": BwrapSandboxFactory,
    "docker": docker_factory,
    "hybrid": lambda: HybridSandboxFactory(inner=BwrapSandboxFactory()),
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


async def test_a_warm_docker_open_takes_at_most_half_of_a_cold_one(tmp_path: Path) -> None:
    factory = docker_factory(warm_pool=1, pool_directory=str(tmp_path / "pool"))
    try:
        await factory.check()
    except SandboxUnavailable as e:
        pytest.skip(f"the docker sandbox cannot run here: {e}")
    assert isinstance(factory, DockerSandboxFactory)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    spec = SandboxSpec(workspace=str(workspace))
    template = Template.of(spec)

    async def open_once() -> tuple[float, float, DockerSandbox]:
        started = time.perf_counter()
        sandbox = await factory.open(spec)
        opened = time.perf_counter() - started
        assert (await sandbox.exec(["true"])).ok
        return opened, time.perf_counter() - started, sandbox

    cold_open: list[float] = []
    cold_first: list[float] = []
    for _ in range(OPENS):
        opened, first, sandbox = await open_once()
        assert not sandbox.warm
        cold_open.append(opened)
        cold_first.append(first)
        await sandbox.close()
    await factory.start()
    assert factory.pool is not None
    warm_open: list[float] = []
    warm_first: list[float] = []
    try:
        for _ in range(OPENS):
            # The refill, started after each take.
            await asyncio.wait_for(factory.pool.wait_ready(template), 60)
            opened, first, sandbox = await open_once()
            assert sandbox.warm
            warm_open.append(opened)
            warm_first.append(first)
            await sandbox.close()
    finally:
        await factory.close()
    cold_ms, warm_ms = median(cold_open) * 1000, median(warm_open) * 1000
    report(
        "docker sandbox open: cold (create + start) vs warm (pooled container, bind)",
        rounds=OPENS,
        cold_open_median_ms=cold_ms,
        cold_open_and_first_exec_median_ms=median(cold_first) * 1000,
        warm_open_median_ms=warm_ms,
        warm_open_and_first_exec_median_ms=median(warm_first) * 1000,
        warm_over_cold=warm_ms / cold_ms,
    )
    require(warm_ms <= cold_ms / 2, f"a warm open takes {warm_ms:.0f} ms, cold {cold_ms:.0f} ms")


MERGE_FILES = 2000
MERGE_CHANGED = 100
MERGE_ROUNDS = 3
CHANGE_SCRIPT = """
set -e
i=0
while [ $i -lt {n} ]; do
    echo edited >> d$((i % 20))/f$i.txt
    echo new > d$((i % 20))/new$i.txt
    rm d$((i % 20))/f$((i + {n})).txt
    i=$((i + 1))
done
"""


@pytest.mark.parametrize("layer", ["overlay", "copy"])
async def test_hybrid_open_changes_and_merge_times(layer: str, tmp_path: Path) -> None:
    factory = HybridSandboxFactory(
        inner=BwrapSandboxFactory(), layer=layer, layers_directory=str(tmp_path / "layers")
    )
    try:
        await factory.check()
    except SandboxUnavailable as e:
        pytest.skip(f"hybrid with {layer} layers cannot run here: {e}")
    opens, diffs, merges = [], [], []
    for round_ in range(MERGE_ROUNDS):
        workspace = tmp_path / f"workspace-{round_}"
        for i in range(MERGE_FILES):
            directory = workspace / f"d{i % 20}"
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"f{i}.txt").write_text(f"line one of {i}\nline two\n" * 20)
        started = time.perf_counter()
        sandbox = await factory.open(SandboxSpec(workspace=str(workspace)))
        opens.append(time.perf_counter() - started)
        assert isinstance(sandbox, HybridSandbox)
        try:
            result = await sandbox.exec(CHANGE_SCRIPT.format(n=MERGE_CHANGED), timeout=60)
            assert result.ok, result
            started = time.perf_counter()
            diff = await sandbox.changes()
            diffs.append(time.perf_counter() - started)
            started = time.perf_counter()
            merged = await sandbox.merge()
            merges.append(time.perf_counter() - started)
        finally:
            await sandbox.close()
        assert len(merged.changes) == 3 * MERGE_CHANGED
        assert merged.changes == diff.changes
    merge_ms = median(merges) * 1000
    report(
        f"hybrid layer ({layer}): {MERGE_FILES} files, {MERGE_CHANGED} edited + added + deleted",
        rounds=MERGE_ROUNDS,
        open_median_ms=median(opens) * 1000,
        changes_median_ms=median(diffs) * 1000,
        merge_median_ms=merge_ms,
    )
    require(merge_ms <= 1000, f"merging {3 * MERGE_CHANGED} changes took {merge_ms:.0f} ms")
