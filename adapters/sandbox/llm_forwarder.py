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

# ruff: noqa: UP006, UP035 - typing.List: the image's python3 may be older than 3.9
import contextlib
import os
import socket
import sys
import threading
from typing import List, NoReturn

CHUNK = 64 * 1024


def pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(CHUNK)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def relay(client: socket.socket, path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(path)
    except OSError:
        client.close()
        upstream.close()
        return
    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def serve(listener: socket.socket, path: str) -> NoReturn:
    while True:
        try:
            client, _ = listener.accept()
        except InterruptedError:
            continue
        threading.Thread(target=relay, args=(client, path), daemon=True).start()


def listen(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    return listener


def run_command(listener: socket.socket, path: str, argv: List[str]) -> NoReturn:
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


def main(args: List[str]) -> None:
    port, path = int(args[0]), args[1]
    listener = listen(port)
    if len(args) > 3 and args[2] == "--":
        run_command(listener, path, args[3:])
    else:
        serve(listener, path)


if __name__ == "__main__":
    main(sys.argv[1:])
