"""Relay a loopback TCP port to a unix socket: CodeForge's LLM proxy, seen from inside a sandbox.

Runs INSIDE a sandbox, with the sandbox's own `python3 -I -S` (no site, no environment),
so it uses only the standard library and old syntax (Python >= 3.6). The sandbox has no
network (network mode `llm` is `none` plus this relay); the proxy's unix socket is bound
into it, and commands reach it at http://127.0.0.1:<port>.

    llm_forwarder.py PORT SOCKET              relay until killed (docker: the container's
                                              idle process)
    llm_forwarder.py PORT SOCKET -- COMMAND   listen, leave a relay behind, exec COMMAND
                                              (bwrap: one relay per exec)

In the second form the port listens before COMMAND starts (no race), and the relay is a
grandchild in COMMAND's process group: it is not COMMAND's child (a shell's `wait` does
not wait for it) and it dies with the exec (the group is killed, the pid namespace ends).
A COMMAND that cannot be run exits 127 or 126 with a shell's message.

Bytes are copied both ways unchanged, half-closes included, so request bodies arrive
whole and streamed responses stream.
"""

from __future__ import annotations

# The C modules _socket and _thread, not socket and threading, and typing only for the
# type checker: importing those takes about 10 ms more, and under bwrap this starts once
# per exec.
import _socket
import _thread
import os
import sys

MYPY = False
if MYPY:  # never at run time
    from typing import NoReturn

CHUNK = 64 * 1024


def pump(source: _socket.socket, sink: _socket.socket) -> None:
    try:
        while True:
            data = source.recv(CHUNK)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    try:  # noqa: SIM105 - contextlib would cost an import
        sink.shutdown(_socket.SHUT_WR)
    except OSError:
        pass


def pump_and_release(source: _socket.socket, sink: _socket.socket, done: _thread.LockType) -> None:
    try:
        pump(source, sink)
    finally:
        done.release()


def relay(client: _socket.socket, path: str) -> None:
    upstream = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        upstream.connect(path)
    except OSError:
        client.close()
        upstream.close()
        return
    back = _thread.allocate_lock()
    back.acquire()
    _thread.start_new_thread(pump_and_release, (upstream, client, back))
    pump(client, upstream)
    back.acquire()  # the other direction has finished too
    client.close()
    upstream.close()


def serve(listener: _socket.socket, path: str) -> NoReturn:
    while True:
        try:
            fd, _ = listener._accept()  # type: ignore[attr-defined]  # _socket has it
        except InterruptedError:
            continue
        client = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM, 0, fd)
        _thread.start_new_thread(relay, (client, path))


def listen(port: int) -> _socket.socket:
    listener = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    return listener


def run_command(listener: _socket.socket, path: str, argv: list[str]) -> NoReturn:
    if os.fork() == 0:
        # The child forks the relay and exits at once: the relay is reparented to the
        # namespace's init, never a child the command could wait for.
        if os.fork() == 0:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            serve(listener, path)
        os._exit(0)
    os.wait()
    listener.close()
    try:
        os.execvp(argv[0], argv)  # noqa: S606 - argv is the command, as given
    except FileNotFoundError:
        sys.stderr.write(f"{argv[0]}: command not found\n")
        os._exit(127)
    except OSError as e:
        sys.stderr.write(f"{argv[0]}: {(e.strerror or str(e)).lower()}\n")
        os._exit(126)


def main(args: list[str]) -> None:
    port, path = int(args[0]), args[1]
    listener = listen(port)
    if len(args) > 3 and args[2] == "--":
        run_command(listener, path, args[3:])
    else:
        serve(listener, path)


if __name__ == "__main__":
    main(sys.argv[1:])
