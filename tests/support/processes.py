"""A real `codeforge` process for end-to-end tests, with its output collected."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

CODEFORGE = str(Path(sys.executable).parent / "codeforge")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def codeforge_env(**overrides: str) -> dict[str, str]:
    """The test process's environment minus any CODEFORGE_ settings, plus overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEFORGE_")}
    env.update({"CODEFORGE_LOG__FORMAT": "json", "PYTHONUNBUFFERED": "1"})
    env.update(overrides)
    return env


class CodeforgeProcess:
    """`codeforge <args>` running in the background; stdout+stderr lines are kept.

    `program` replaces the `codeforge` executable (e.g. a launcher module that runs the
    same command with one provider overridden)."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        cwd: Path | None = None,
        program: list[str] | None = None,
    ) -> None:
        self.proc = subprocess.Popen(
            [*(program or [CODEFORGE]), *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def records(self) -> list[dict[str, Any]]:
        """The JSON log lines (others, like tracebacks, are skipped)."""
        out = []
        for line in list(self.lines):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def messages(self) -> list[str]:
        return [r.get("msg", "") for r in self.records]

    def wait_for_http(self, url: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"codeforge exited {self.proc.returncode}:\n{self.output}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{url} did not answer within {timeout}s:\n{self.output}")

    def wait_for_message(self, msg: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.records:
                if record.get("msg") == msg:
                    return record
            time.sleep(0.05)
        raise AssertionError(f"no log line {msg!r} within {timeout}s:\n{self.output}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def output(self) -> str:
        return "\n".join(self.lines[-80:])


def run_codeforge(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CODEFORGE, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
