"""What only the docker sandbox does: the warm pool, the scratch size cap, the storage
quota (enforced or refused), a writable root, and llm mode with an image lacking python3.

The compliance suite (`test_sandbox_compliance.py`) checks the port's guarantees on docker
as on every adapter; these cases run on the same test engine and image
(`tests/support/docker_engine.py`) and skip, saying why, only when no engine can start.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from adapters.sandbox import mounts
from adapters.sandbox.docker import LABEL, DockerSandbox, DockerSandboxFactory
from adapters.sandbox.docker_pool import Template, WarmPool
from codeforge.container import resolved_sandbox
from codeforge.domain.runs import SandboxMode
from codeforge.ports.sandbox import (
    NetworkMode,
    ReadOnlyMount,
    SandboxLimits,
    SandboxSpec,
    SandboxUnavailable,
    SandboxUnsupported,
)
from codeforge.settings import SandboxSettings, Settings
from tests.support.docker_engine import docker_factory, engine

pytestmark = pytest.mark.contract

DEFAULT = Template.of(SandboxSpec(workspace="/"))
# Runs a command as root without CAP_SYS_ADMIN (util-linux).
WITHOUT_SYS_ADMIN = ["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin"]


@pytest.fixture(scope="session")
def engine_host() -> str:
    """The test engine's URL; skips (printing why) when there is none."""
    try:
        return engine()
    except SandboxUnavailable as e:
        pytest.skip(f"no docker engine: {e}")


@pytest.fixture
async def make_factory(
    engine_host: str,
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Any]]:
    """Build docker factories on the test engine (checked, pools in tmp_path); all closed."""
    made: list[DockerSandboxFactory] = []

    async def make(**options: Any) -> DockerSandboxFactory:
        options.setdefault("pool_directory", str(tmp_path / "pool"))
        factory = docker_factory(**options)
        assert isinstance(factory, DockerSandboxFactory)
        await factory.check()
        made.append(factory)
        return factory

    yield make
    for factory in made:
        await factory.close()


def workspace_with(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    (path / f"{name}.txt").write_text(name)
    return path


async def wait_ready(pool: WarmPool, template: Template, count: int, within: float = 60) -> None:
    await asyncio.wait_for(pool.wait_ready(template, count), within)
    assert pool.problem is None, pool.problem
    assert pool.ready(template) >= count


def exists(path: str | Path) -> bool:
    return os.path.exists(path)


def real_path(path: str | Path) -> str:
    return os.path.realpath(path)


def mount_points_under(path: Path) -> list[str]:
    return mounts.mounts_under(real_path(path))


# -- the warm pool ------------------------------------------------------------------------


async def test_a_warm_open_binds_the_workspace_into_a_started_container(
    make_factory: Callable[..., Any], tmp_path: Path
) -> None:
    factory = await make_factory(warm_pool=1)
    await factory.start()
    assert factory.pool is not None
    await wait_ready(factory.pool, DEFAULT, 1)
    workspace = workspace_with(tmp_path, "one")
    sandbox = await factory.open(SandboxSpec(workspace=str(workspace)))
    try:
        assert isinstance(sandbox, DockerSandbox)
        assert sandbox.warm
        listed = await sandbox.exec(["ls", "/workspace"])
        assert listed.stdout == "one.txt\n"
        await sandbox.exec("echo from-container > made.txt")
        assert (workspace / "made.txt").read_text() == "from-container\n"
        # The pool starts a fresh container for the next open.
        await wait_ready(factory.pool, DEFAULT, 1)
    finally:
        await sandbox.close()
    assert mount_points_under(tmp_path / "pool") == [real_path(factory.pool.directory)]
    assert (workspace / "one.txt").read_text() == "one"


async def test_warm_containers_never_see_another_runs_workspace(
    make_factory: Callable[..., Any], tmp_path: Path
) -> None:
    factory = await make_factory(warm_pool=2)
    await factory.start()
    await wait_ready(factory.pool, DEFAULT, 2)
    first = await factory.open(SandboxSpec(workspace=str(workspace_with(tmp_path, "first"))))
    second = await factory.open(SandboxSpec(workspace=str(workspace_with(tmp_path, "second"))))
    try:
        assert first.warm
        assert second.warm
        assert (await first.exec(["ls", "/workspace"])).stdout == "first.txt\n"
        assert (await second.exec(["ls", "/workspace"])).stdout == "second.txt\n"
        # Nothing of the pool's directory (other slots) is visible inside.
        found = await first.exec("ls / /workspace/.. 2>&1; cat /proc/mounts")
        assert "slot-" not in found.stdout
        assert "second" not in found.stdout
    finally:
        await first.close()
        await second.close()


async def test_a_template_not_in_the_pool_opens_cold_then_warm(
    make_factory: Callable[..., Any], tmp_path: Path
) -> None:
    factory = await make_factory(warm_pool=1)
    await factory.start()
    spec = SandboxSpec(workspace=str(workspace_with(tmp_path, "ws")), limits=SandboxLimits(pids=50))
    cold = await factory.open(spec)
    assert not cold.warm
    await cold.close()
    await wait_ready(factory.pool, Template.of(spec), 1)
    warm = await factory.open(spec)
    try:
        assert warm.warm
        # The template's limit is the container's: 60 forks cannot all succeed under 50.
        flood = await warm.exec("i=0; while [ $i -lt 60 ]; do sleep 5 & i=$((i+1)); done")
        assert "fork" in flood.stderr.lower()
    finally:
        await warm.close()


async def test_closing_the_factory_removes_the_pool(
    make_factory: Callable[..., Any],
    engine_host: str,
    tmp_path: Path,
) -> None:
    factory = await make_factory(warm_pool=2)
    await factory.start()
    await wait_ready(factory.pool, DEFAULT, 2)
    directory = factory.pool.directory
    client = docker.DockerClient(base_url=engine_host)
    before = {c.id for c in client.containers.list(all=True, filters={"label": LABEL})}
    await factory.close()
    after = {c.id for c in client.containers.list(all=True, filters={"label": LABEL})}
    assert len(before - after) == 2
    assert not exists(directory)
    assert mount_points_under(tmp_path / "pool") == []


async def test_a_crashed_processs_pool_is_unmounted_and_removed_without_touching_workspaces(
    engine_host: str,
    tmp_path: Path,
) -> None:
    base = tmp_path / "pool"
    workspace = workspace_with(tmp_path, "precious")
    slot = base / "999999999-0" / "slot-left-behind"
    slot.mkdir(parents=True)
    mounts.bind(str(workspace), str(slot))
    assert (slot / "precious.txt").exists()
    factory = docker_factory(pool_directory=str(base))
    await factory.check()
    assert not (base / "999999999-0").exists()
    assert mount_points_under(base) == []
    assert (workspace / "precious.txt").read_text() == "precious"


def test_cleaning_up_never_reaches_into_a_workspace_still_mounted(tmp_path: Path) -> None:
    workspace = workspace_with(tmp_path, "ws")
    (workspace / "empty-but-mine").mkdir()
    slot = tmp_path / "pool" / "slot"
    slot.mkdir(parents=True)
    try:
        mounts.bind(str(workspace), str(slot))
    except PermissionError as e:
        pytest.skip(f"binds need CAP_SYS_ADMIN: {e}")
    try:
        mounts.remove_empty_directories(str(slot))
        mounts.remove_empty_directories(str(tmp_path / "pool"))
        assert (workspace / "empty-but-mine").is_dir()
        assert slot.is_dir()
    finally:
        mounts.unmount_all_under(real_path(slot))
    mounts.remove_empty_directories(str(tmp_path / "pool"))
    assert not (tmp_path / "pool").exists()
    assert (workspace / "empty-but-mine").is_dir()


def test_without_cap_sys_admin_the_pool_says_why_and_opens_are_cold(
    engine_host: str,
    tmp_path: Path,
) -> None:
    workspace = workspace_with(tmp_path, "ws")
    script = f"""
import asyncio
from tests.support.docker_engine import docker_factory
from codeforge.ports.sandbox import SandboxSpec

async def main():
    factory = docker_factory(warm_pool=1, pool_directory={str(tmp_path / "pool")!r})
    await factory.start()
    print("problem:", factory.pool.problem)
    sandbox = await factory.open(SandboxSpec(workspace={str(workspace)!r}))
    print("warm:", sandbox.warm)
    print("ls:", (await sandbox.exec(["ls", "/workspace"])).stdout.strip())
    await sandbox.close()
    await factory.close()

asyncio.run(main())
"""
    result = subprocess.run(
        [*WITHOUT_SYS_ADMIN, sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DOCKER_HOST": engine_host},
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "docker warm pool disabled" in output  # the log line an operator sees
    problem, warm, listed = (
        line for line in result.stdout.splitlines() if line.startswith(("problem:", "warm:", "ls:"))
    )
    assert "CAP_SYS_ADMIN" in problem
    assert warm == "warm: False"
    assert listed == "ls: ws.txt"


# -- scratch, quota, root ---------------------------------------------------------------


async def test_tmp_and_home_are_capped_at_the_scratch_size(
    make_factory: Callable[..., Any], tmp_path: Path
) -> None:
    factory = await make_factory(scratch_bytes=2 * 2**20)
    sandbox = await factory.open(SandboxSpec(workspace=str(workspace_with(tmp_path, "ws"))))
    try:
        for where in ("/tmp", "$HOME"):
            small = await sandbox.exec(f"head -c 1000000 /dev/zero > {where}/small && echo ok")
            assert small.stdout == "ok\n", small
            big = await sandbox.exec(f"head -c 4000000 /dev/zero > {where}/big")
            assert big.exit_code != 0
            assert "No space left on device" in big.stderr
    finally:
        await sandbox.close()


async def test_a_storage_quota_the_driver_cannot_enforce_is_refused(
    make_factory: Callable[..., Any],
    engine_host: str,
    tmp_path: Path,
) -> None:
    factory = await make_factory()
    driver = docker.DockerClient(base_url=engine_host).info()
    spec = SandboxSpec(
        workspace=str(workspace_with(tmp_path, "ws")), limits=SandboxLimits(disk_bytes=2**30)
    )
    if factory.capabilities.enforces_disk_limit:
        # overlay2 on xfs with pquota (not on this machine's ext4): the quota binds.
        sandbox = await factory.open(spec)
        await sandbox.close()
        return
    assert factory.quota_problem is not None
    assert driver["Driver"] in factory.quota_problem
    with pytest.raises(SandboxUnsupported, match="disk_bytes"):
        await factory.open(spec)
    configured = docker_factory(storage_quota=2**30)
    with pytest.raises(SandboxUnavailable, match="docker_storage_quota"):
        await configured.check()


async def test_the_root_is_read_only_unless_configured_writable(
    make_factory: Callable[..., Any], tmp_path: Path
) -> None:
    workspace = str(workspace_with(tmp_path, "ws"))
    for writable in (False, True):
        factory = await make_factory(writable_root=writable)
        sandbox = await factory.open(SandboxSpec(workspace=workspace))
        try:
            result = await sandbox.exec("mkdir -p /opt/tool && echo x > /opt/tool/f && echo ok")
            assert (result.stdout == "ok\n") is writable, result
            # /usr is the host's, bound read-only: never writable.
            usr = await sandbox.exec("touch /usr/codeforge-probe 2>/dev/null || echo refused")
            assert usr.stdout == "refused\n"
        finally:
            await sandbox.close()


# -- llm mode needs python3 in the image ------------------------------------------------------


async def test_llm_mode_without_python3_in_the_image_is_refused_saying_so(
    make_factory: Callable[..., Any], tmp_path: Path
) -> None:
    import socket

    proxy = tmp_path / "proxy.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(proxy))
    server.listen()
    broken = tmp_path / "not-python"
    broken.write_text("")
    factory = await make_factory()
    # The test image's python3 is the host's; an empty file over it plays an image
    # without one (the mount is part of the spec, so this stays a cold open).
    spec = SandboxSpec(
        workspace=str(workspace_with(tmp_path, "ws")),
        network=NetworkMode.LLM,
        llm_socket=str(proxy),
        read_only_mounts=(ReadOnlyMount(source=str(broken), target=real_path("/usr/bin/python3")),),
    )
    try:
        with pytest.raises(SandboxUnsupported, match="needs python3 in the image"):
            await factory.open(spec)
    finally:
        server.close()


# -- with the process ---------------------------------------------------------------------


async def test_the_chosen_docker_sandbox_keeps_its_pool_for_the_life_of_the_process(
    engine_host: str, tmp_path: Path
) -> None:
    factory = docker_factory(warm_pool=1, pool_directory=str(tmp_path / "pool"))
    assert isinstance(factory, DockerSandboxFactory)
    settings = Settings(sandbox=SandboxSettings(kind="docker", docker_warm_pool=1))
    # The container's resource: started at start, closed at shutdown (Phase.CLOSE_POOL).
    resource = resolved_sandbox(settings, {SandboxMode.DOCKER: factory})
    choice = await anext(resource)
    assert choice.kind is SandboxMode.DOCKER
    assert factory.pool is not None
    await wait_ready(factory.pool, DEFAULT, 1)
    directory = factory.pool.directory
    await resource.aclose()
    assert not factory.pool.active
    assert not exists(directory)
    assert mount_points_under(tmp_path / "pool") == []
