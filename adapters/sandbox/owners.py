"""Who owns what a sandbox leaves on the host (containers, pool slots, layers, merges).

An owner is a process of this host, named by host name, pid and the pid's start time
(pids are reused: the start time tells a new process from the one that left something
behind). What a process that is gone left behind is an orphan, removed at the next start.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def process_start(pid: int) -> str:
    """The start time of `pid` (clock ticks since boot), "" when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def owner_label() -> str:
    """This process as an owner: host, pid and the pid's start time."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid)}"


def owner_tag() -> str:
    """This process as a directory name (host implied): pid and start time."""
    pid = os.getpid()
    return f"{pid}-{process_start(pid)}"


def is_orphan(owner: str) -> bool:
    """Whether something labelled `owner` belongs to a process of this host that is gone."""
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return process_start(int(pid)) != started


def tag_is_gone(tag: str) -> bool:
    """Whether the process named by a directory tag ("pid-start...") is gone."""
    pid, _, rest = tag.partition("-")
    started = rest.split("-", 1)[0]
    return pid.isdigit() and process_start(int(pid)) != started
