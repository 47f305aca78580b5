"""Running one command as a host process: its own session, bounded output, a sure end.

Shared by the adapters whose commands are host processes (mount runs the command itself,
bwrap runs `bwrap ... -- command`). What this module guarantees, and how:

- The process starts in a new session, so its process group is its own and killing the
  group (`killpg`) reaches its children and grandchildren — unless they left the group.
  For those still below it in the process tree (a `setsid` child), `ProcessGroup.kill`
  also walks /proc for descendants. A double-forked daemon that left both is reparented away
  and cannot be found from here; adapters that must catch it use a pid namespace (bwrap).
- When the command exits, the rest of its group is killed: output pipes then reach their
  end even if a background child held them, and no process outlives its exec.
- stdout and stderr are read to the end concurrently, whatever their size; each keeps a
  head and a tail within the cap (`CappedOutput`).
- On timeout, on cancellation of the awaiting task and on `kill()` from `close()`, the
  tree is killed with SIGKILL at once: a sandbox has no use for a polite shutdown.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

from codeforge.ports.sandbox import (
    ExecResult,
    InvalidSandboxSpec,
    OutputCallback,
    OutputChunk,
    SandboxLimits,
    StreamName,
    truncation_marker,
)

READ_SIZE = 64 * 1024
# How long the pipes may stay open after the command and its group were killed: only a
# process that escaped the group (a daemon, under mount) can hold them that long.
DRAIN_GRACE = 1.0
# How long a cancelled run waits for the command it was starting to die of its SIGKILL.
ABANDON_WAIT = 5.0
# Exit statuses a shell reports for a death by these signals, and the limit behind each.
LIMIT_SIGNALS = {
    128 + signal.SIGXCPU: "cpu_seconds",
    128 + signal.SIGXFSZ: "file_size_bytes",
}


def command_argv(command: Sequence[str] | str, shell: Sequence[str]) -> list[str]:
    """The argv to run: a string goes to the shell, a sequence is taken literally."""
    if isinstance(command, str):
        if "\0" in command:
            raise InvalidSandboxSpec("the command holds a NUL byte", field="command")
        return [*shell, command]
    argv = list(command)
    if not argv or not all(isinstance(a, str) and "\0" not in a for a in argv):
        raise InvalidSandboxSpec(
            "an argv command must be a non-empty list of strings without NUL bytes",
            field="command",
        )
    return argv


def rlimit_argv(prlimit: str, limits: SandboxLimits) -> list[str]:
    """`prlimit` options that set the spec's per-process limits, or [] when none is set."""
    options = []
    if limits.cpu_seconds is not None:
        # Soft below hard: the kernel sends SIGXCPU at the soft limit (reported as the
        # cpu limit) and SIGKILL only a second later, if the process ignores it.
        options.append(f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}")
    if limits.file_size_bytes is not None:
        options.append(f"--fsize={limits.file_size_bytes}")
    if limits.open_files is not None:
        options.append(f"--nofile={limits.open_files}")
    if limits.process_memory_bytes is not None:
        options.append(f"--as={limits.process_memory_bytes}")
    return [prlimit, *options, "--"] if options else []


class CappedOutput:
    """One stream's output: all of it up to `limit` bytes, else its head and tail.

    Past the limit, the first three quarters of the limit and the last quarter are kept
    and the result reads head + `truncation_marker()` + tail. Chunks for streaming cover
    the first `limit` bytes, decoded without splitting a character, then one notice.
    """

    def __init__(self, stream: StreamName, limit: int) -> None:
        self.stream = stream
        self.limit = limit
        self.tail_limit = limit // 4
        self.head_limit = limit - self.tail_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self._streamed = 0
        self._noticed = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def add(self, data: bytes) -> list[OutputChunk]:
        """Keep `data`; return the chunks to stream for it."""
        self.total += len(data)
        room = self.head_limit - len(self.head)
        self.head += data[:room]
        if room < len(data):
            self.tail += data[room:]
            if len(self.tail) > self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]
        chunks = []
        if self._streamed < self.limit:
            shown = data[: self.limit - self._streamed]
            self._streamed += len(shown)
            text = self._decoder.decode(shown, final=self._streamed >= self.limit)
            if text:
                chunks.append(OutputChunk(self.stream, text))
        if self.truncated and not self._noticed:
            self._noticed = True
            notice = f"\n[output truncated: the rest of {self.stream} is not streamed]\n"
            chunks.append(OutputChunk(self.stream, notice))
        return chunks

    def finish(self) -> list[OutputChunk]:
        """The chunk left in the decoder when the stream ended inside a character."""
        text = "" if self._streamed >= self.limit else self._decoder.decode(b"", final=True)
        return [OutputChunk(self.stream, text)] if text else []

    def text(self) -> str:
        if not self.truncated:
            return bytes(self.head + self.tail).decode("utf-8", "replace")
        head = _whole_characters_head(bytes(self.head))
        tail = _whole_characters_tail(bytes(self.tail))
        omitted = self.total - len(head) - len(tail)
        return (
            head.decode("utf-8", "replace")
            + truncation_marker(omitted, self.total)
            + tail.decode("utf-8", "replace")
        )


def _whole_characters_head(data: bytes) -> bytes:
    """`data` without a UTF-8 sequence cut at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: look further back for the lead byte
        needed = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        if byte & 0x80 and back < needed:
            return data[:-back]
        return data
    return data


def _whole_characters_tail(data: bytes) -> bytes:
    """`data` without continuation bytes cut from their lead at its start."""
    start = 0
    while start < min(3, len(data)) and data[start] & 0xC0 == 0x80:
        start += 1
    return data[start:]


class _ExitAwareProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """The stream protocol, plus a future set the moment the process exits.

    `Process.wait()` (Python 3.11) resolves only once the output pipes are closed too, so
    a background child holding stdout would keep a finished command "running" until its
    timeout; this future lets `run` see the exit itself and then kill the group.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=READ_SIZE, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


class ProcessGroup:
    """The host processes of one exec, and how to kill all of them."""

    def __init__(self, transport: asyncio.SubprocessTransport) -> None:
        self.transport = transport
        self.pid = transport.get_pid()

    def kill(self) -> None:
        """SIGKILL the group, and every descendant still below the leader.

        Parents die before their children: a shell whose child was killed first could
        otherwise run on for a moment (report "Killed", run its next command) before
        its own SIGKILL arrived — bwrap's commands are in a session of their own, so the
        group kill does not reach them at once.
        """
        alive = self.transport.get_returncode() is None
        victims = descendants_in_order(self.pid) if alive else []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def descendants(root: int) -> set[int]:
    """Pids below `root` in the process tree, read from /proc (empty where there is none)."""
    return set(descendants_in_order(root))


def descendants_in_order(root: int) -> list[int]:
    """Pids below `root`, each after its parent (breadth first)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # it ended while we looked
        # The name (2nd field) may hold spaces and parentheses: split after the last ")".
        ppid = int(stat.rsplit(b")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    seen = {root}
    queue = collections.deque([root])
    while queue:
        for child in children.get(queue.popleft(), ()):
            if child not in seen:
                seen.add(child)
                found.append(child)
                queue.append(child)
    return found


async def run(
    argv: list[str],
    *,
    cwd: str | None,
    env: Mapping[str, str],
    timeout: float,  # noqa: ASYNC109 - it kills the process group; a cancel scope would not
    stdin: bytes | str | None,
    limits: SandboxLimits,
    on_output: OutputCallback | None,
    running: set[ProcessGroup],
) -> ExecResult:
    """Run `argv` to its end (or its timeout) and return its result.

    The process is in `running` while it runs, so a `close()` can kill it. A command
    that cannot start (missing, not executable) yields exit code 127 or 126 and a
    shell-like message on stderr.
    """
    stdout = CappedOutput("stdout", limits.output_bytes)
    stderr = CappedOutput("stderr", limits.output_bytes)
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    spawn = asyncio.ensure_future(
        loop.subprocess_exec(
            lambda: _ExitAwareProtocol(loop),
            *argv,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
        )
    )
    try:
        # Python 3.11's asyncio can hang for ever when the creation itself is cancelled
        # (the exit of a child whose pipes were not yet connected is never reported), and
        # it would kill only the leader: so the creation is not cancelled, and a cancel
        # that lands meanwhile kills the whole group once it exists.
        transport, protocol = await asyncio.shield(spawn)
    except asyncio.CancelledError:
        await _abandon(spawn)
        raise
    except OSError as e:
        if isinstance(e, FileNotFoundError | NotADirectoryError) and e.filename == cwd:
            raise  # the directory vanished; the adapter reports it as a path error
        # As a shell reports it: 127 for a command that is not there, 126 for one that
        # cannot be executed (permissions, not an executable format).
        missing = isinstance(e, FileNotFoundError)
        reason = "command not found" if missing else (e.strerror or str(e)).lower()
        stderr.add(f"{argv[0]}: {reason}\n".encode())
        return _result(127 if missing else 126, stdout, stderr, started, False, limits)
    group = ProcessGroup(transport)
    running.add(group)
    readers = [
        asyncio.create_task(_pump(protocol.stdout, stdout, on_output)),
        asyncio.create_task(_pump(protocol.stderr, stderr, on_output)),
    ]
    writer = None if stdin is None else asyncio.create_task(_feed(protocol.stdin, stdin))
    try:
        timed_out = await _wait(protocol.exited, readers, timeout)
        # Whatever the command left running in its group ends with it (or its timeout).
        group.kill()
        await protocol.exited
        await _drain(readers, stdout, stderr)
    except BaseException:
        # Cancelled, or the output callback failed: the command must not outlive us.
        group.kill()
        for task in readers:
            task.cancel()
        raise
    finally:
        running.discard(group)
        if writer is not None:
            writer.cancel()
        transport.close()
    returncode = transport.get_returncode()
    assert returncode is not None
    exit_code = 128 - returncode if returncode < 0 else returncode
    return _result(exit_code, stdout, stderr, started, timed_out, limits)


async def _abandon(
    spawn: asyncio.Future[tuple[asyncio.SubprocessTransport, _ExitAwareProtocol]],
) -> None:
    """Kill what a cancelled `run` was starting, once it has started (if it does)."""
    try:
        transport, protocol = await spawn
    except Exception:  # it did not start: there is nothing to kill
        return
    ProcessGroup(transport).kill()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(protocol.exited), ABANDON_WAIT)
    transport.close()


async def _wait(
    exited: asyncio.Future[None],
    readers: list[asyncio.Task[None]],
    timeout: float,  # noqa: ASYNC109 - reports the timeout instead of raising it
) -> bool:
    """Wait for the command to exit; True if `timeout` came first. A reader's exception
    (the output callback's) propagates at once rather than after the command ends."""
    deadline = time.monotonic() + timeout
    pending: set[asyncio.Future[Any]] = {exited, *readers}
    while exited in pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        done, pending = await asyncio.wait(
            pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
        )
        for future in done:
            future.result()
    return False


async def _pump(
    stream: asyncio.StreamReader | None, output: CappedOutput, on_output: OutputCallback | None
) -> None:
    assert stream is not None
    while data := await stream.read(READ_SIZE):
        chunks = output.add(data)
        if on_output is not None:
            for chunk in chunks:
                await on_output(chunk)
    if on_output is not None:
        for chunk in output.finish():
            await on_output(chunk)


async def _feed(stream: asyncio.StreamWriter | None, data: bytes | str) -> None:
    assert stream is not None
    # A command that exits without reading its input closes the pipe: that is its right.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stream.write(data.encode() if isinstance(data, str) else data)
        await stream.drain()
        stream.close()
        await stream.wait_closed()


async def _drain(readers: list[asyncio.Task[None]], *outputs: CappedOutput) -> None:
    """Wait for the readers to reach the end of their pipes.

    As long as output keeps arriving, wait on (a slow output callback is not a reason
    to lose output); once the pipes have stayed silent, open but unwritten, for
    DRAIN_GRACE, whoever holds them escaped the kill: stop reading.
    """
    seen = -1
    while True:
        done, pending = await asyncio.wait(readers, timeout=DRAIN_GRACE)
        total = sum(o.total for o in outputs)
        if not pending or total == seen:
            break
        seen = total
    for task in pending:
        task.cancel()
    for task in done:
        task.result()  # an output callback's exception propagates from here


def _result(
    exit_code: int,
    stdout: CappedOutput,
    stderr: CappedOutput,
    started: float,
    timed_out: bool,
    limits: SandboxLimits,
) -> ExecResult:
    limit = None if timed_out else LIMIT_SIGNALS.get(exit_code)
    if limit is not None and getattr(limits, limit) is None:
        limit = None  # the command died of that signal on its own (or sent it itself)
    return ExecResult(
        exit_code=137 if timed_out else exit_code,
        stdout=stdout.text(),
        stderr=stderr.text(),
        duration=round(time.monotonic() - started, 6),
        timed_out=timed_out,
        truncated=stdout.truncated or stderr.truncated,
        killed_by_limit=limit,
    )
