"""The sandbox compliance suite: one set of tests, run against every sandbox adapter.

`ADAPTERS` is the parametrisation: an adapter joins the suite by adding its name and a
builder there. Every guarantee of `codeforge.ports.sandbox` is
checked on every adapter; where an adapter cannot provide one (mount cannot cut the
network), the test asserts that its `Capabilities` say so — and, where that is safe to
show, that the weakness is real, so a flag cannot lie in either direction. A test never
passes silently for an adapter it did not exercise.

Never run here: a fork bomb or a memory hog under an adapter without a tree-wide pids or
memory limit (mount and bwrap as root: RLIMIT_NPROC does not bind root). Those adapters'
flags are asserted instead; docker's cgroups are shown to stop both.

An adapter is skipped only when it truly cannot run on this machine, with the reason
(run `scripts/install-test-system-deps.sh` to install bubblewrap and docker.io; the docker
engine and its test image are set up by `tests/support/docker_engine.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import docker
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.sandbox.bwrap import BwrapSandboxFactory
from adapters.sandbox.docker import LABEL, OWNER_LABEL, owner_label
from adapters.sandbox.hybrid import HybridSandboxFactory
from adapters.sandbox.mount import MountSandboxFactory
from codeforge.domain.errors import ValidationFailed
from codeforge.domain.runs import SandboxMode
from codeforge.ports.sandbox import (
    BASE_ENV_NAMES,
    ISOLATION,
    InvalidSandboxSpec,
    LayeredSandbox,
    NetworkMode,
    OutputChunk,
    PathEscape,
    ReadOnlyMount,
    Sandbox,
    SandboxClosed,
    SandboxFactory,
    SandboxLimits,
    SandboxPathNotFound,
    SandboxSpec,
    SandboxUnavailable,
    SandboxUnsupported,
    WrongFileType,
)
from codeforge.services.sandbox_choice import SandboxReadiness, choose_sandbox
from tests.support.docker_engine import IMAGE, docker_engine, docker_factory  # noqa: F401

pytestmark = pytest.mark.contract

ADAPTERS: dict[str, Callable[[], SandboxFactory]] = {
    "mount": MountSandboxFactory,
    "bwrap": BwrapSandboxFactory,
    "docker": docker_factory,
    # Overlay layers where this process may mount (root), else copies; bwrap underneath.
    "hybrid": lambda: HybridSandboxFactory(inner=BwrapSandboxFactory()),
    # The fallback where overlays cannot be mounted, checked here as well.
    "hybrid-copy": lambda: HybridSandboxFactory(inner=BwrapSandboxFactory(), layer="copy"),
}

# Variables a test sets in its own environment: a command must never see them.
HOST_SECRETS = {
    "CODEFORGE_SECRET_X": "cf-secret-value-4b1d",
    "OPENAI_API_KEY": "sk-test-9f8e7d6c5b4a",
    "GITHUB_TOKEN": "ghp_testtoken0123456789",
}

OpenSandbox = Callable[..., Awaitable[Sandbox]]


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def usable_factories() -> dict[str, SandboxFactory | str]:
    """Each adapter's factory, probed once per session; a str says why it cannot run."""
    found: dict[str, SandboxFactory | str] = {}
    for name, build in ADAPTERS.items():
        factory = build()
        try:
            await factory.check()
        except SandboxUnavailable as e:
            print(f"\n[sandbox compliance] {name} is unavailable here: {e}")
            found[name] = str(e)
        else:
            found[name] = factory
    return found


@pytest.fixture(params=list(ADAPTERS))
def factory(request: pytest.FixtureRequest, usable_factories: dict[str, Any]) -> SandboxFactory:
    found = usable_factories[request.param]
    if isinstance(found, str):
        pytest.skip(f"the {request.param} sandbox cannot run on this machine: {found}")
    return found  # type: ignore[no-any-return]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the workspace holding a secret: nothing may reach it by path."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret.txt").write_text("outside-secret")
    return path


@pytest.fixture
async def open_sandbox(factory: SandboxFactory, workspace: Path) -> AsyncIterator[OpenSandbox]:
    """Open sandboxes over the workspace (spec fields as keywords); all closed at the end."""
    opened: list[Sandbox] = []

    async def open_(**spec: Any) -> Sandbox:
        sandbox = await factory.open(SandboxSpec(workspace=str(workspace), **spec))
        opened.append(sandbox)
        return sandbox

    yield open_
    for sandbox in opened:
        await sandbox.close()


@pytest.fixture
async def sandbox(open_sandbox: OpenSandbox) -> Sandbox:
    return await open_sandbox(limits=SandboxLimits(timeout=20))


def unique_sleep() -> str:
    """A `sleep` argument no other process on the machine has: its pid can be found."""
    return f"1000.{secrets.randbelow(10**9):09d}"


def pids_running(marker: str) -> set[int]:
    """Host pids of live (not zombie) processes whose command line holds `marker`."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z" and int(entry) != os.getpid():
            found.add(int(entry))
    return found


async def settle(sandbox: Sandbox) -> None:
    """Make the sandbox's writes reach the workspace: at once, or at merge for a layered one."""
    if sandbox.capabilities.layered_writes:
        assert isinstance(sandbox, LayeredSandbox)
        await sandbox.merge()


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def exists(path: str) -> bool:
    return Path(path).exists()


async def gone(marker: str, within: float = 10.0) -> bool:
    """Whether every process with `marker` ends within `within` seconds (SIGKILL is quick
    but not instantaneous, and a pid namespace is torn down after its init dies)."""
    deadline = time.monotonic() + within
    while pids_running(marker):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def wait_until_running(marker: str, within: float = 10.0) -> set[int]:
    deadline = time.monotonic() + within
    while not (pids := pids_running(marker)):
        assert time.monotonic() < deadline, f"no process with {marker} started"
        await asyncio.sleep(0.02)
    return pids


# -- exec: exit codes, output, argv, stdin ------------------------------------------------


async def test_exec_returns_the_commands_exit_code(sandbox: Sandbox) -> None:
    assert (await sandbox.exec(["true"])).exit_code == 0
    assert (await sandbox.exec("exit 3")).exit_code == 3
    assert (await sandbox.exec(["sh", "-c", "exit 255"])).exit_code == 255
    failed = await sandbox.exec(["false"])
    assert failed.exit_code == 1
    assert not failed.ok
    assert not failed.timed_out


async def test_stdout_and_stderr_are_kept_apart(sandbox: Sandbox) -> None:
    result = await sandbox.exec("echo to-out; echo to-err >&2; echo more-out")
    assert result.stdout == "to-out\nmore-out\n"
    assert result.stderr == "to-err\n"
    assert result.ok
    assert not result.truncated
    assert result.duration > 0


async def test_a_command_killed_by_a_signal_reports_128_plus_the_signal(sandbox: Sandbox) -> None:
    result = await sandbox.exec(["sh", "-c", "kill -TERM $$"])
    assert result.exit_code == 128 + 15
    assert not result.timed_out


async def test_a_missing_command_exits_127_like_a_shell(sandbox: Sandbox) -> None:
    result = await sandbox.exec(["no-such-command-cf"])
    assert result.exit_code == 127
    assert "no-such-command-cf: command not found" in result.stderr


async def test_shell_metacharacters_in_argv_are_not_interpreted(sandbox: Sandbox) -> None:
    hostile = "$HOME; touch pwned && echo `id` | cat > pwned2 * ?"
    result = await sandbox.exec(["echo", hostile])
    assert result.stdout == hostile + "\n"
    assert await sandbox.list_dir(".") == []


async def test_a_string_command_runs_through_the_shell(sandbox: Sandbox) -> None:
    result = await sandbox.exec("printf 'a b\\nc\\n' | wc -l && echo $((6 * 7))")
    assert result.stdout.split() == ["2", "42"]


async def test_stdin_is_passed_to_the_command_and_then_closed(sandbox: Sandbox) -> None:
    text = await sandbox.exec(["cat"], stdin="hello\nwörld\n")
    assert text.stdout == "hello\nwörld\n"
    data = bytes(range(256)) * 1024  # larger than a pipe's buffer
    counted = await sandbox.exec(["wc", "-c"], stdin=data)
    assert counted.stdout.strip() == str(len(data))
    # Without stdin the input is empty: a reader sees its end at once instead of waiting.
    empty = await sandbox.exec(["cat"], timeout=5)
    assert empty.ok
    assert empty.stdout == ""


async def test_a_command_may_leave_its_input_unread(sandbox: Sandbox) -> None:
    result = await sandbox.exec(["true"], stdin=b"x" * 1_000_000)
    assert result.ok


async def test_concurrent_execs_run_at_the_same_time(sandbox: Sandbox) -> None:
    started = time.monotonic()
    results = await asyncio.gather(*(sandbox.exec(["sleep", "0.4"]) for _ in range(4)))
    assert all(r.ok for r in results)
    assert time.monotonic() - started < 1.5


async def test_an_empty_argv_or_a_bad_env_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(InvalidSandboxSpec):
        await sandbox.exec([])
    with pytest.raises(InvalidSandboxSpec):
        await sandbox.exec(["true"], env={"BAD=NAME": "x"})
    with pytest.raises(InvalidSandboxSpec):
        await sandbox.exec(["true"], timeout=0)


# -- streaming ------------------------------------------------------------------------


async def test_output_streams_while_the_command_runs(sandbox: Sandbox) -> None:
    received: list[tuple[float, OutputChunk]] = []

    async def collect(chunk: OutputChunk) -> None:
        received.append((time.monotonic(), chunk))

    result = await sandbox.exec(
        "echo first; echo oops >&2; sleep 0.5; echo second", on_output=collect
    )
    finished = time.monotonic()
    stdout = [(t, c.text) for t, c in received if c.stream == "stdout"]
    assert "".join(text for _, text in stdout) == result.stdout == "first\nsecond\n"
    assert [c.text for _, c in received if c.stream == "stderr"] == ["oops\n"]
    first_arrived = next(t for t, text in stdout if "first" in text)
    assert finished - first_arrived >= 0.3, "the first line arrived only when the command ended"


async def test_streamed_chunks_never_split_a_character(sandbox: Sandbox) -> None:
    chunks: list[str] = []

    async def collect(chunk: OutputChunk) -> None:
        chunks.append(chunk.text)

    # 3-byte characters written one byte at a time: every write splits a character.
    script = 'for b in e2 82 ac e2 82 ac; do printf "\\\\x$b"; sleep 0.01; done'
    result = await sandbox.exec(["bash", "-c", script], on_output=collect)
    assert result.stdout == "€€"
    assert "".join(chunks) == "€€"
    assert "\ufffd" not in "".join(chunks)


async def test_an_output_callback_that_fails_stops_the_command(sandbox: Sandbox) -> None:
    marker = unique_sleep()

    async def explode(chunk: OutputChunk) -> None:
        raise RuntimeError("consumer gone")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="consumer gone"):
        await sandbox.exec(f"echo go; sleep {marker}", on_output=explode)
    assert time.monotonic() - started < 5
    assert await gone(marker)


async def test_cancelling_an_exec_kills_its_command(sandbox: Sandbox) -> None:
    marker = unique_sleep()
    task = asyncio.create_task(sandbox.exec(f"sleep {marker}"))
    await wait_until_running(marker)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await gone(marker)


async def test_cancelling_an_exec_while_it_starts_leaves_nothing_behind(sandbox: Sandbox) -> None:
    # A cancel can land before the command runs: for docker, after the CLI asked the
    # engine to start the exec but before it did. The command must not start later,
    # orphaned, with nobody waiting for it.
    markers = []
    for delay in (0.0, 0.005, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3):
        marker = unique_sleep()
        markers.append(marker)
        task = asyncio.create_task(sandbox.exec(f"sleep {marker}"))
        await asyncio.sleep(delay)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for marker in markers:
        assert await gone(marker), f"the command with {marker} outlived its cancelled exec"


# -- output cap -------------------------------------------------------------------------


async def test_large_output_is_truncated_with_a_marker_keeping_head_and_tail(
    open_sandbox: OpenSandbox,
) -> None:
    sandbox = await open_sandbox(limits=SandboxLimits(output_bytes=4000))
    streamed: list[OutputChunk] = []

    async def collect(chunk: OutputChunk) -> None:
        streamed.append(chunk)

    script = "echo HEAD-LINE; seq 1 200000; echo TAIL-LINE"
    result = await sandbox.exec(script, on_output=collect)
    assert result.ok
    assert result.truncated
    assert result.stdout.startswith("HEAD-LINE\n1\n2\n")
    assert result.stdout.endswith("199999\n200000\nTAIL-LINE\n")
    assert "[output truncated:" in result.stdout
    assert len(result.stdout.encode()) <= 4000 + 100
    streamed_text = "".join(c.text for c in streamed)
    assert streamed_text.startswith("HEAD-LINE\n")
    assert "[output truncated" in streamed_text
    assert len(streamed_text.encode()) <= 4000 + 100


async def test_output_at_the_cap_is_not_truncated(open_sandbox: OpenSandbox) -> None:
    sandbox = await open_sandbox(limits=SandboxLimits(output_bytes=1000))
    result = await sandbox.exec("head -c 1000 /dev/zero | tr '\\0' x")
    assert result.stdout == "x" * 1000
    assert not result.truncated


async def test_a_flood_of_output_never_blocks_the_command(open_sandbox: OpenSandbox) -> None:
    sandbox = await open_sandbox(limits=SandboxLimits(output_bytes=1000, timeout=20))
    result = await sandbox.exec("head -c 30000000 /dev/zero; head -c 5000000 /dev/zero >&2")
    assert result.ok
    assert result.truncated
    assert not result.timed_out


# -- timeouts and process trees -----------------------------------------------------------


async def test_a_timeout_kills_the_whole_process_tree(sandbox: Sandbox) -> None:
    marker = unique_sleep()
    seen: set[int] = set()

    async def note(chunk: OutputChunk) -> None:
        if "started" in chunk.text:
            seen.update(await wait_until_running(marker))

    # A shell whose child runs the grandchild `sleep` in the background and waits for it.
    script = f"sh -c 'sleep {marker} & echo started; wait'; echo never"
    started = time.monotonic()
    # 2 s: on a loaded machine the grandchild may take a while to exec `sleep`.
    result = await sandbox.exec(script, timeout=2.0, on_output=note)
    # Generous: a loaded CI machine is slow to start and reap processes.
    assert time.monotonic() - started < 8
    assert result.timed_out
    assert result.exit_code == 137
    assert "never" not in result.stdout
    assert seen, "the grandchild never started"
    assert await gone(marker), "the grandchild sleep survived the timeout"


async def test_what_a_command_leaves_running_dies_when_it_exits(sandbox: Sandbox) -> None:
    marker = unique_sleep()
    started = time.monotonic()
    result = await sandbox.exec(f"sleep {marker} & echo left-behind")
    assert result.ok
    assert result.stdout == "left-behind\n"
    assert time.monotonic() - started < 4, "exec waited for the background process"
    assert await gone(marker)


async def test_a_child_in_a_session_of_its_own_still_dies_on_timeout(sandbox: Sandbox) -> None:
    # `setsid` leaves the process group but stays below the command in the process tree.
    marker = unique_sleep()
    result = await sandbox.exec(f"setsid sleep {marker} & echo started; wait", timeout=1.0)
    assert result.timed_out
    assert result.stdout == "started\n"
    assert await gone(marker), "a setsid child survived the timeout"


async def test_a_daemon_that_left_the_session_dies_only_where_the_adapter_says_so(
    sandbox: Sandbox,
) -> None:
    if not sandbox.capabilities.kills_process_tree:
        # A double-forked `setsid` daemon escapes a process-group kill on the host, and
        # would outlive this test: the adapter says it cannot catch it, which is the
        # guarantee checked here.
        assert sandbox.kind == "mount"
        return
    marker = unique_sleep()
    script = f"setsid sh -c 'sleep {marker} & echo daemon-started' & wait; sleep 30"
    result = await sandbox.exec(script, timeout=1.0)
    assert result.timed_out
    assert "daemon-started" in result.stdout
    assert await gone(marker), "a setsid daemon outlived its exec"


async def test_close_kills_commands_still_running(open_sandbox: OpenSandbox) -> None:
    sandbox = await open_sandbox()
    marker = unique_sleep()
    task = asyncio.create_task(sandbox.exec(f"sh -c 'sleep {marker}'"))
    await wait_until_running(marker)
    await sandbox.close()
    with pytest.raises(SandboxClosed):
        await task
    assert await gone(marker)


async def test_a_closed_sandbox_refuses_everything_and_closes_again_quietly(
    open_sandbox: OpenSandbox,
) -> None:
    sandbox = await open_sandbox()
    await sandbox.close()
    await sandbox.close()
    with pytest.raises(SandboxClosed):
        await sandbox.exec(["true"])
    with pytest.raises(SandboxClosed):
        await sandbox.read_file("x")
    with pytest.raises(SandboxClosed):
        await sandbox.write_file("x", "y")


# -- files ------------------------------------------------------------------------------


async def test_files_written_by_a_command_are_read_by_read_file_and_back(
    sandbox: Sandbox, workspace: Path
) -> None:
    await sandbox.exec("mkdir -p out && printf 'from command' > out/c.txt")
    assert await sandbox.read_file("out/c.txt") == b"from command"
    await sandbox.write_file("deep/er/f.txt", "from write_file ✓")
    result = await sandbox.exec(["cat", "deep/er/f.txt"])
    assert result.stdout == "from write_file ✓"
    await settle(sandbox)
    assert (workspace / "deep/er/f.txt").read_text() == "from write_file ✓"
    assert (workspace / "out/c.txt").read_text() == "from command"


async def test_writes_reach_the_workspace_at_once_or_at_merge_as_the_adapter_says(
    open_sandbox: OpenSandbox, workspace: Path
) -> None:
    (workspace / "kept.txt").write_text("host")
    sandbox = await open_sandbox()
    await sandbox.write_file("new.txt", "new")
    await sandbox.exec("echo edited > kept.txt")
    if not sandbox.capabilities.layered_writes:
        assert (workspace / "new.txt").read_text() == "new"
        assert (workspace / "kept.txt").read_text() == "edited\n"
        return
    assert isinstance(sandbox, LayeredSandbox)
    assert names_in(workspace) == ["kept.txt"]
    assert (workspace / "kept.txt").read_text() == "host"
    assert await sandbox.read_file("kept.txt") == b"edited\n"
    diff = await sandbox.changes()
    assert (diff.added, diff.modified, diff.deleted) == (("new.txt",), ("kept.txt",), ())
    assert "+edited" in diff.patch
    merged = await sandbox.merge()
    assert merged.changes == diff.changes
    assert (workspace / "kept.txt").read_text() == "edited\n"
    assert (workspace / "new.txt").read_text() == "new"
    await sandbox.write_file("dropped.txt", "x")
    await sandbox.discard()
    assert not (workspace / "dropped.txt").exists()
    assert (await sandbox.changes()).empty


async def test_write_file_replaces_content_and_keeps_permissions(sandbox: Sandbox) -> None:
    await sandbox.write_file("run.sh", "#!/bin/sh\necho one\n")
    await sandbox.exec(["chmod", "755", "run.sh"])
    await sandbox.write_file("run.sh", b"#!/bin/sh\necho two\n")
    assert (await sandbox.stat("run.sh")).mode == 0o755
    assert (await sandbox.exec(["./run.sh"])).stdout == "two\n"


async def test_list_dir_stat_and_delete_see_the_workspace(sandbox: Sandbox) -> None:
    await sandbox.write_file("b.txt", "bb")
    await sandbox.write_file("a/inner.txt", "i")
    await sandbox.exec(["ln", "-s", "b.txt", "link"])
    entries = await sandbox.list_dir(".")
    assert [(e.path, e.kind) for e in entries] == [
        ("a", "directory"),
        ("b.txt", "file"),
        ("link", "symlink"),
    ]
    assert [e.path for e in await sandbox.list_dir("a")] == ["a/inner.txt"]
    stat = await sandbox.stat("link")  # followed, inside the workspace
    assert (stat.path, stat.kind, stat.size) == ("b.txt", "file", 2)
    assert (await sandbox.stat(".")).kind == "directory"
    with pytest.raises(WrongFileType):
        await sandbox.delete("a")
    await sandbox.delete("link")
    assert await sandbox.read_file("b.txt") == b"bb"
    await sandbox.delete("a", recursive=True)
    await sandbox.delete("b.txt")
    assert await sandbox.list_dir(".") == []


async def test_file_operations_report_missing_and_mistyped_paths(sandbox: Sandbox) -> None:
    await sandbox.write_file("dir/file", "x")
    with pytest.raises(SandboxPathNotFound):
        await sandbox.read_file("missing.txt")
    with pytest.raises(SandboxPathNotFound):
        await sandbox.stat("dir/missing")
    with pytest.raises(SandboxPathNotFound):
        await sandbox.delete("missing")
    with pytest.raises(WrongFileType):
        await sandbox.read_file("dir")
    with pytest.raises(WrongFileType):
        await sandbox.list_dir("dir/file")
    with pytest.raises(WrongFileType):
        await sandbox.write_file("dir/file/below", "x")
    with pytest.raises(WrongFileType):
        await sandbox.delete(".")
    with pytest.raises(SandboxPathNotFound):
        await sandbox.exec(["true"], cwd="no-such-dir")


async def test_cwd_is_a_directory_of_the_workspace(sandbox: Sandbox) -> None:
    await sandbox.write_file("sub/dir/f", "x")
    result = await sandbox.exec(["pwd"], cwd="sub/dir")
    assert result.stdout.strip() == f"{sandbox.workdir}/sub/dir"
    assert (await sandbox.exec(["pwd"])).stdout.strip() == sandbox.workdir


# -- paths never leave the workspace --------------------------------------------------------

ESCAPES = ["../x", "a/../../x", "..", "/etc/passwd", "a\0b", "", "./../outside/secret.txt"]


@pytest.mark.parametrize("path", ESCAPES)
async def test_paths_outside_the_workspace_are_refused_everywhere(
    sandbox: Sandbox, path: str
) -> None:
    operations = [
        sandbox.read_file(path),
        sandbox.write_file(path, "x"),
        sandbox.list_dir(path),
        sandbox.delete(path, recursive=True),
        sandbox.stat(path),
        sandbox.exec(["true"], cwd=path),
    ]
    for operation in operations:
        with pytest.raises(PathEscape) as raised:
            await operation
        assert isinstance(raised.value, ValidationFailed)


async def test_symlinks_that_lead_outside_are_refused_for_files_and_cwd(
    open_sandbox: OpenSandbox, workspace: Path, outside: Path
) -> None:
    # Made before the sandbox opens: a copy layer shows the workspace as it was then.
    (workspace / "out").symlink_to(outside)
    (workspace / "secret-link").symlink_to(outside / "secret.txt")
    (workspace / "dangling").symlink_to(outside / "new.txt")
    sandbox = await open_sandbox()
    for operation in [
        sandbox.read_file("out/secret.txt"),
        sandbox.read_file("secret-link"),
        sandbox.write_file("out/planted.txt", "x"),
        sandbox.write_file("secret-link", "overwritten"),
        sandbox.write_file("dangling", "created outside"),
        sandbox.list_dir("out"),
        sandbox.stat("secret-link"),
        sandbox.delete("out/secret.txt"),
        sandbox.exec(["true"], cwd="out"),
    ]:
        with pytest.raises(PathEscape):
            await operation
    assert names_in(outside) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "outside-secret"
    # Deleting the link itself is fine: it removes the link, never its target.
    await sandbox.delete("out")
    assert (outside / "secret.txt").exists()


async def test_a_link_made_by_a_command_does_not_open_the_host_to_file_operations(
    sandbox: Sandbox,
) -> None:
    await sandbox.exec(["ln", "-s", "/etc", "etc-link"])
    with pytest.raises(PathEscape):
        await sandbox.read_file("etc-link/passwd")
    with pytest.raises(PathEscape):
        await sandbox.write_file("etc-link/codeforge-planted", "x")
    assert not exists("/etc/codeforge-planted")


async def test_symlinks_that_stay_inside_are_followed(
    open_sandbox: OpenSandbox, workspace: Path
) -> None:
    (workspace / "real").mkdir()
    (workspace / "real/file.txt").write_text("inside")
    (workspace / "alias").symlink_to("real")
    sandbox = await open_sandbox()
    assert await sandbox.read_file("alias/file.txt") == b"inside"
    await sandbox.write_file("alias/new.txt", "via alias")
    await settle(sandbox)
    assert (workspace / "real/new.txt").read_text() == "via alias"
    result = await sandbox.exec(["cat", "file.txt"], cwd="alias")
    assert result.stdout == "inside"


COMPONENTS = st.sampled_from(["..", ".", "", "a", "b", "out", "in", "loop"])


@pytest.fixture
async def sandbox_with_links(open_sandbox: OpenSandbox, workspace: Path, outside: Path) -> Sandbox:
    """A sandbox over a workspace holding links out, in, and to themselves."""
    (workspace / "a").mkdir()
    (workspace / "out").symlink_to(outside)
    (workspace / "in").symlink_to("a")
    (workspace / "loop").symlink_to("loop")
    return await open_sandbox()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(parts=st.lists(COMPONENTS, min_size=1, max_size=6), absolute=st.booleans())
async def test_no_generated_path_writes_outside_the_workspace(
    sandbox_with_links: Sandbox, outside: Path, parts: list[str], absolute: bool
) -> None:
    sandbox = sandbox_with_links
    path = ("/" if absolute else "") + "/".join(parts)
    try:
        await sandbox.write_file(path, "x")
    except (PathEscape, WrongFileType, SandboxPathNotFound):
        pass
    else:
        assert not absolute
        assert ".." not in parts
    assert names_in(outside) == ["secret.txt"]


# -- environment ------------------------------------------------------------------------


def parse_env(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


async def test_host_secrets_never_reach_a_command(
    open_sandbox: OpenSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in HOST_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SAFE_TOOL_OPTION", "visible")
    monkeypatch.setenv("LC_CODEFORGE_TEST", "prefix-visible")
    sandbox = await open_sandbox(
        env_whitelist=("SAFE_TOOL_OPTION", "LC_*"), env={"FROM_SPEC": "spec"}
    )
    result = await sandbox.exec(["env"], env={"FROM_CALL": "call", "FROM_SPEC": "overridden"})
    env = parse_env(result.stdout)
    for name, value in HOST_SECRETS.items():
        assert name not in env
        assert value not in result.stdout
    assert env["SAFE_TOOL_OPTION"] == "visible"
    assert env["LC_CODEFORGE_TEST"] == "prefix-visible"
    assert env["FROM_CALL"] == "call"
    assert env["FROM_SPEC"] == "overridden"
    assert set(BASE_ENV_NAMES) <= set(env)
    explicit = {"SAFE_TOOL_OPTION", "LC_CODEFORGE_TEST", "FROM_CALL", "FROM_SPEC"}
    # TMPDIR: where an adapter gives the sandbox a private temporary directory;
    # PWD: set by bwrap's --chdir, as a shell would.
    assert set(env) - explicit - set(BASE_ENV_NAMES) <= {"TMPDIR", "PWD"}
    assert env["HOME"] != os.environ.get("HOME")


async def test_home_and_tmp_are_private_and_last_across_execs(sandbox: Sandbox) -> None:
    await sandbox.exec('echo kept > "$HOME/note" && echo tmp > "${TMPDIR:-/tmp}/t"')
    result = await sandbox.exec('cat "$HOME/note" "${TMPDIR:-/tmp}/t"')
    assert result.stdout == "kept\ntmp\n"


def test_a_bare_star_cannot_whitelist_every_variable() -> None:
    with pytest.raises(InvalidSandboxSpec):
        SandboxSpec(workspace="/w", env_whitelist=("*",))


@pytest.mark.parametrize(
    "spec",
    [
        {"workspace": "relative/dir"},
        {"workspace": "/w", "limits": {"timeout": 0}},
        {"workspace": "/w", "limits": {"output_bytes": 0}},
        {"workspace": "/w", "limits": {"pids": 0}},
        {"workspace": "/w", "env": {"NOT-A-NAME": "x"}},
        {"workspace": "/w", "read_only_mounts": [{"source": "opt"}]},
        {"workspace": "/w", "shell": []},
        {"workspace": "/w", "network": "internet"},
        {"workspace": "/w", "unknown": 1},
    ],
)
def test_a_spec_from_config_that_breaks_a_rule_is_refused_naming_it(spec: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(spec, SandboxSpec)


# -- network ----------------------------------------------------------------------------


@pytest.fixture
async def loopback_port() -> AsyncIterator[int]:
    """A TCP server on the host's 127.0.0.1 that answers "hello"."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


def connect_script(port: int) -> list[str]:
    return ["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port} && head -n1 <&3"]


async def test_network_none_blocks_the_hosts_loopback_where_the_adapter_isolates(
    open_sandbox: OpenSandbox, loopback_port: int
) -> None:
    sandbox = await open_sandbox(network=NetworkMode.NONE)
    result = await sandbox.exec(connect_script(loopback_port), timeout=10)
    if sandbox.capabilities.isolates_network:
        assert result.exit_code != 0
        assert "hello" not in result.stdout
    else:
        # The adapter says it cannot block the network, and indeed it does not: a policy
        # that needs `network: none` enforced must not choose it.
        assert sandbox.kind == "mount"
        assert result.stdout == "hello\n"


async def test_network_full_reaches_the_host_where_it_is_accepted(
    factory: SandboxFactory, open_sandbox: OpenSandbox, loopback_port: int
) -> None:
    assert NetworkMode.FULL in factory.capabilities.network_modes
    sandbox = await open_sandbox(network=NetworkMode.FULL)
    result = await sandbox.exec(connect_script(loopback_port), timeout=10)
    assert result.stdout == "hello\n"


async def test_network_modes_an_adapter_cannot_provide_are_refused_at_open(
    factory: SandboxFactory, open_sandbox: OpenSandbox, llm_proxy: str
) -> None:
    for mode in NetworkMode:
        if mode in factory.capabilities.network_modes:
            await open_sandbox(network=mode, llm_socket=llm_proxy)
        else:
            with pytest.raises(SandboxUnsupported, match=mode.value):
                await open_sandbox(network=mode, llm_socket=llm_proxy)


# -- network mode llm: the proxy and nothing else ---------------------------------------------

# Run by the sandbox's python3: a 1 MiB POST whose digest the proxy echoes, then a streamed
# GET whose second line the proxy sends only 0.6 s after the first.
LLM_CLIENT = """
import hashlib, http.client, os, time, urllib.parse
url = urllib.parse.urlsplit(os.environ["CODEFORGE_LLM_URL"])
body = bytes(range(256)) * 4096
connection = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
connection.request("POST", "/echo", body=body)
response = connection.getresponse()
print(response.status, response.read().decode())
print("sent", len(body), hashlib.sha256(body).hexdigest())
connection.request("GET", "/stream")
response = connection.getresponse()
first = response.readline().decode().strip()
arrived = time.monotonic()
second = response.readline().decode().strip()
print("stream", first, second, round(time.monotonic() - arrived, 3))
"""


@pytest.fixture
async def llm_proxy(tmp_path: Path) -> AsyncIterator[str]:
    """An HTTP server on a unix socket standing in for CodeForge's LLM proxy; its path."""
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        digest = hashlib.sha256(body).hexdigest()
        return web.Response(text=f"received {len(body)} {digest}")

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first\n")
        await asyncio.sleep(0.6)
        await response.write(b"second\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_get("/stream", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    path = str(tmp_path / "llm-proxy.sock")
    site = web.UnixSite(runner, path)
    await site.start()
    yield path
    await runner.cleanup()


def test_network_llm_without_the_proxy_socket_is_an_invalid_spec() -> None:
    with pytest.raises(InvalidSandboxSpec, match="llm_socket"):
        SandboxSpec(workspace="/w", network=NetworkMode.LLM)
    with pytest.raises(InvalidSandboxSpec, match="llm_socket"):
        SandboxSpec(workspace="/w", network=NetworkMode.LLM, llm_socket="relative.sock")


async def test_network_llm_reaches_the_proxy_whole_and_streaming(
    factory: SandboxFactory, open_sandbox: OpenSandbox, llm_proxy: str
) -> None:
    if NetworkMode.LLM not in factory.capabilities.network_modes:
        with pytest.raises(SandboxUnsupported, match="llm"):
            await open_sandbox(network=NetworkMode.LLM, llm_socket=llm_proxy)
        return
    sandbox = await open_sandbox(network=NetworkMode.LLM, llm_socket=llm_proxy)
    result = await sandbox.exec(["python3", "-c", LLM_CLIENT], timeout=30)
    assert result.ok, result
    received, sent, streamed = result.stdout.splitlines()
    assert received.removeprefix("200 received ") == sent.removeprefix("sent ")
    label, first, second, gap = streamed.split()
    assert (label, first, second) == ("stream", "first", "second")
    assert float(gap) >= 0.4, "the first line was held back until the stream ended"


async def test_network_llm_reaches_nothing_else_where_the_adapter_isolates(
    factory: SandboxFactory, open_sandbox: OpenSandbox, llm_proxy: str, loopback_port: int
) -> None:
    if NetworkMode.LLM not in factory.capabilities.network_modes:
        return  # refused at open: shown by the test above
    sandbox = await open_sandbox(network=NetworkMode.LLM, llm_socket=llm_proxy)
    result = await sandbox.exec(connect_script(loopback_port), timeout=10)
    if sandbox.capabilities.isolates_network:
        assert result.exit_code != 0
        assert "hello" not in result.stdout
    else:
        assert sandbox.kind == "mount"
        assert result.stdout == "hello\n"


async def test_network_llm_refuses_a_proxy_socket_that_is_not_there(
    factory: SandboxFactory, open_sandbox: OpenSandbox, tmp_path: Path
) -> None:
    if NetworkMode.LLM not in factory.capabilities.network_modes:
        return
    with pytest.raises(SandboxPathNotFound, match="LLM proxy socket"):
        await open_sandbox(network=NetworkMode.LLM, llm_socket=str(tmp_path / "no.sock"))
    (tmp_path / "plain-file").write_text("x")
    with pytest.raises(WrongFileType, match="not a unix socket"):
        await open_sandbox(network=NetworkMode.LLM, llm_socket=str(tmp_path / "plain-file"))


async def test_network_none_and_full_do_not_announce_a_proxy(sandbox: Sandbox) -> None:
    result = await sandbox.exec(["env"])
    assert "CODEFORGE_LLM_URL" not in result.stdout


# -- isolation and limits: enforced, or said not to be --------------------------------------


async def test_host_files_outside_the_workspace_are_invisible_where_isolated(
    sandbox: Sandbox, outside: Path
) -> None:
    result = await sandbox.exec(["cat", str(outside / "secret.txt")])
    if sandbox.capabilities.isolates_filesystem:
        assert result.exit_code != 0
        assert "outside-secret" not in result.stdout
    else:
        assert sandbox.kind == "mount"
        assert result.stdout == "outside-secret"


async def test_the_system_is_read_only_where_the_adapter_says_so(sandbox: Sandbox) -> None:
    if not sandbox.capabilities.enforces_read_only:
        # Root on the host could write /usr: the adapter says so; nothing is tried.
        assert sandbox.kind == "mount"
        return
    result = await sandbox.exec("touch /usr/codeforge-probe || echo refused")
    assert "refused" in result.stdout
    assert not exists("/usr/codeforge-probe")
    remount = await sandbox.exec("mount -o remount,rw /usr 2>&1 || echo refused")
    assert "refused" in remount.stdout


async def test_host_processes_are_invisible_where_isolated(sandbox: Sandbox) -> None:
    result = await sandbox.exec(["sh", "-c", f"kill -0 {os.getpid()} && echo visible"])
    if sandbox.capabilities.isolates_processes:
        assert "visible" not in result.stdout
    else:
        assert sandbox.kind == "mount"
        assert result.stdout == "visible\n"


async def test_read_only_mounts_are_readable_and_not_writable_where_enforced(
    factory: SandboxFactory, open_sandbox: OpenSandbox, tmp_path: Path
) -> None:
    tool = tmp_path / "tool-venv"
    tool.mkdir()
    (tool / "VERSION").write_text("1.2.3")
    target = "/opt/codeforge-tool" if factory.capabilities.remaps_mounts else str(tool)
    if not factory.capabilities.remaps_mounts:
        with pytest.raises(SandboxUnsupported):
            await open_sandbox(read_only_mounts=(ReadOnlyMount(source=str(tool), target="/x"),))
    sandbox = await open_sandbox(read_only_mounts=(ReadOnlyMount(source=str(tool), target=target),))
    assert (await sandbox.exec(["cat", f"{target}/VERSION"])).stdout == "1.2.3"
    await sandbox.exec(f"echo changed > {target}/VERSION")
    if factory.capabilities.enforces_read_only:
        assert (tool / "VERSION").read_text() == "1.2.3"
    else:
        assert factory.kind == "mount"  # a host path, writable as the host allows


async def test_limits_an_adapter_cannot_enforce_are_refused_at_open(
    factory: SandboxFactory, open_sandbox: OpenSandbox
) -> None:
    caps = factory.capabilities
    cases = [
        (caps.enforces_memory_limit, SandboxLimits(memory_bytes=256 * 2**20)),
        (caps.enforces_pids_limit, SandboxLimits(pids=64)),
        (caps.enforces_rlimits, SandboxLimits(file_size_bytes=4096)),
    ]
    for enforced, limits in cases:
        if enforced:
            await open_sandbox(limits=limits)
        else:
            with pytest.raises(SandboxUnsupported):
                await open_sandbox(limits=limits)


async def test_memory_and_pids_limits_are_not_claimed_without_cgroups(
    factory: SandboxFactory,
) -> None:
    # A memory hog or a fork bomb is run only under adapters that enforce tree-wide
    # limits (docker's cgroups); mount and bwrap run as root here, where RLIMIT_NPROC
    # does not bind, so they must not claim either.
    if factory.kind in {"mount", "bwrap", "hybrid"}:
        assert not factory.capabilities.enforces_memory_limit
        assert not factory.capabilities.enforces_pids_limit
    elif factory.kind == "docker":
        # Enforced by cgroups, and shown by the two containment tests below.
        assert factory.capabilities.enforces_memory_limit
        assert factory.capabilities.enforces_pids_limit
    else:
        pytest.fail(f"{factory.kind}: add its memory-hog and fork-bomb containment tests")


async def test_a_pids_limit_stops_a_flood_of_processes_where_enforced(
    factory: SandboxFactory, open_sandbox: OpenSandbox
) -> None:
    if not factory.capabilities.enforces_pids_limit:
        return  # asserted by the test above; a flood is never started without a limit
    sandbox = await open_sandbox(limits=SandboxLimits(pids=20, timeout=20))
    marker = unique_sleep()
    # 50 background sleeps, each announced before its fork: past the limit the fork
    # fails and the shell gives up, so the lines count the forks tried.
    script = f"i=0; while [ $i -lt 50 ]; do echo $i; sleep {marker} & i=$((i+1)); done"
    result = await sandbox.exec(script)
    tried = len(result.stdout.split())
    assert result.exit_code != 0
    assert "fork" in result.stderr.lower()
    assert 5 <= tried <= 20
    assert await gone(marker)
    assert (await sandbox.exec(["true"])).ok


async def test_a_memory_limit_stops_a_memory_hog_where_enforced(
    factory: SandboxFactory, open_sandbox: OpenSandbox
) -> None:
    if not factory.capabilities.enforces_memory_limit:
        return  # asserted above; a hog is never started without a limit
    sandbox = await open_sandbox(limits=SandboxLimits(memory_bytes=64 * 2**20, timeout=20))
    # `tail` keeps a whole line in memory: 256 MiB without a newline.
    result = await sandbox.exec("head -c 268435456 /dev/zero | tail -c 1 | wc -c")
    assert not result.timed_out
    hog = await sandbox.exec(["sh", "-c", "head -c 268435456 /dev/zero | tail"])
    assert hog.exit_code == 137
    assert hog.killed_by_limit == "memory_bytes"
    assert (await sandbox.exec(["true"])).ok


async def test_rlimits_stop_a_file_too_large_and_a_cpu_spinner(
    factory: SandboxFactory, open_sandbox: OpenSandbox
) -> None:
    if not factory.capabilities.enforces_rlimits:
        with pytest.raises(SandboxUnsupported):
            await open_sandbox(limits=SandboxLimits(cpu_seconds=1))
        return
    sandbox = await open_sandbox(
        limits=SandboxLimits(file_size_bytes=10_000, cpu_seconds=1, timeout=20)
    )
    big = await sandbox.exec(["sh", "-c", "head -c 100000 /dev/zero > big"])
    assert big.killed_by_limit == "file_size_bytes"
    assert (await sandbox.stat("big")).size <= 10_000
    spin = await sandbox.exec(["sh", "-c", "while :; do :; done"])
    assert spin.killed_by_limit == "cpu_seconds"
    assert not spin.timed_out


async def test_capabilities_are_the_same_from_factory_and_sandbox(
    factory: SandboxFactory, sandbox: Sandbox
) -> None:
    assert sandbox.capabilities == factory.capabilities
    assert sandbox.kind == factory.kind
    assert sandbox.workdir.startswith("/")


# -- choosing a sandbox (codeforge.services.sandbox_choice) -------------------------------


async def test_auto_chooses_bwrap_where_it_works(usable_factories: dict[str, Any]) -> None:
    if isinstance(usable_factories["bwrap"], str):
        pytest.skip(f"bwrap cannot run here: {usable_factories['bwrap']}")
    factories: dict[SandboxMode, SandboxFactory] = {
        SandboxMode.BWRAP: usable_factories["bwrap"],
        SandboxMode.MOUNT: MountSandboxFactory(),
    }
    choice = await choose_sandbox("auto", factories, required=ISOLATION)
    assert choice.kind is SandboxMode.BWRAP
    assert choice.usable
    assert choice.warnings == ()
    await SandboxReadiness(choice).check()


async def test_auto_falls_back_to_mount_with_a_warning_when_bwrap_is_missing() -> None:
    factories: dict[SandboxMode, SandboxFactory] = {
        SandboxMode.BWRAP: BwrapSandboxFactory(bwrap="/nonexistent/bwrap"),
        SandboxMode.MOUNT: MountSandboxFactory(),
    }
    choice = await choose_sandbox("auto", factories)
    assert choice.kind is SandboxMode.MOUNT
    assert choice.usable
    [warning] = choice.warnings
    assert "no isolation" in warning.lower()
    assert "not installed" in warning


async def test_a_policy_demanding_isolation_with_only_mount_names_the_fixes() -> None:
    factories: dict[SandboxMode, SandboxFactory] = {
        SandboxMode.BWRAP: BwrapSandboxFactory(bwrap=None),
        SandboxMode.MOUNT: MountSandboxFactory(),
    }
    choice = await choose_sandbox("auto", factories, required=ISOLATION)
    assert not choice.usable
    assert choice.problem is not None
    for fix in ("install bubblewrap", "configure docker", "choose a policy"):
        assert fix in choice.problem
    with pytest.raises(SandboxUnavailable, match="install bubblewrap"):
        await SandboxReadiness(choice).check()


async def test_an_explicit_kind_that_cannot_run_is_a_problem_not_a_fallback() -> None:
    factories: dict[SandboxMode, SandboxFactory] = {
        SandboxMode.BWRAP: BwrapSandboxFactory(bwrap="/nonexistent/bwrap"),
        SandboxMode.MOUNT: MountSandboxFactory(),
    }
    choice = await choose_sandbox("bwrap", factories)
    assert choice.kind is None
    assert choice.problem is not None
    assert "bwrap" in choice.problem
    docker = await choose_sandbox("docker", factories)
    assert docker.problem is not None
    assert "no docker sandbox" in docker.problem


def test_the_suite_covers_every_sandbox_kind_that_exists() -> None:
    assert {name.split("-")[0] for name in ADAPTERS} == {m.value for m in SandboxMode}


# -- docker only: containers left behind ------------------------------------------------


async def test_docker_removes_the_containers_of_a_crashed_process_when_it_starts(
    docker_engine: str,  # noqa: F811 - the fixture imported above
) -> None:
    client = docker.DockerClient(base_url=docker_engine)
    labels = {LABEL: "1", OWNER_LABEL: f"{socket.gethostname()}:999999999:0"}
    crashed = client.containers.create(IMAGE, ["true"], labels=labels)
    live = client.containers.create(
        IMAGE, ["true"], labels={LABEL: "1", OWNER_LABEL: owner_label()}
    )
    try:
        await docker_factory().check()
        left = {c.id for c in client.containers.list(all=True, filters={"label": LABEL})}
        assert crashed.id not in left
        assert live.id in left
    finally:
        live.remove(force=True)
