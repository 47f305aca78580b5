"""Running a project's quality gates in the run's sandbox (see codeforge/domain/gates.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from codeforge.agent.tools.base import cap
from codeforge.domain.gates import GateResult, QualityGates
from codeforge.ports.sandbox import OutputChunk, Sandbox, StreamName

Emit = Callable[[StreamName, str], Awaitable[None]]


class GateRunner:
    def __init__(
        self,
        gates: QualityGates,
        extra_commands: list[str],
        diff_lines: Callable[[], Awaitable[int]],
        *,
        output_chars: int,
    ) -> None:
        self.gates = gates
        self._extra = list(extra_commands)
        self._diff_lines = diff_lines
        self._output_chars = output_chars

    @property
    def active(self) -> bool:
        return self.gates.any(self._extra)

    async def check(self, sandbox: Sandbox, emit: Emit) -> list[GateResult]:
        results = []
        for name, command, required in self.gates.commands(self._extra):

            async def relay(chunk: OutputChunk) -> None:
                await emit(chunk.stream, chunk.text)

            started = time.monotonic()
            ran = await sandbox.exec(
                command, timeout=float(self.gates.timeout_seconds), on_output=relay
            )
            text = "\n".join(part for part in (ran.stdout.rstrip(), ran.stderr.rstrip()) if part)
            if ran.timed_out:
                text += f"\n[killed after {self.gates.timeout_seconds} s]"
            results.append(
                GateResult(
                    name=name,
                    passed=ran.ok,
                    required=required,
                    command=command,
                    exit_code=ran.exit_code,
                    output=cap(text, self._output_chars)[0],
                    duration_s=round(time.monotonic() - started, 3),
                )
            )
        if self.gates.max_diff_lines is not None:
            lines = await self._diff_lines()
            results.append(
                GateResult(
                    name="diff size",
                    passed=lines <= self.gates.max_diff_lines,
                    output=f"{lines} changed lines (at most {self.gates.max_diff_lines})",
                )
            )
        return results


def passed(results: list[GateResult]) -> bool:
    return all(r.passed or not r.required for r in results)


def report(results: list[GateResult]) -> str:
    """What the agent is told when a gate fails."""
    lines = ["The quality gates did not pass, so the task is not done yet:"]
    for r in results:
        if r.passed or not r.required:
            continue
        exit_note = f" (exit code {r.exit_code})" if r.exit_code is not None else ""
        lines.append(f"\n## {r.name}{exit_note}: {r.command}".rstrip(": "))
        if r.output:
            lines.append(r.output)
    lines.append("\nFix what failed, then call finish again.")
    return "\n".join(lines)
