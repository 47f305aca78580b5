"""Quality gates: what must hold before a run counts as done.

Per project: the test and lint commands (each required to pass unless told
otherwise), any further commands in `Project.quality_gates` (each must pass), and a
cap on the size of the change. When the agent calls `finish`, the gates run in the
run's sandbox; a failure goes back to the agent as the result of its `finish` call,
up to `max_attempts` times; then the run fails `quality_gates_failed` — and with
`rollback_on_gate_fail` its worktree goes back to the last state whose gates passed
(the base commit, when none did), the failed attempt kept as the run's patch.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

PositiveInt = Annotated[int, Meta(ge=1)]


class QualityGates(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Shell commands run in the sandbox at the repository root; empty: none.
    tests: str = ""
    lint: str = ""
    require_tests_pass: bool = True
    require_lint_pass: bool = True
    # The most changed lines (added + removed) a run may deliver; None: no cap.
    max_diff_lines: PositiveInt | None = None
    rollback_on_gate_fail: bool = False
    # Stop runs that make no progress (see codeforge/agent/stall.py).
    stall_detection: bool = True
    # Times the agent is given failed gates back before the run fails.
    max_attempts: PositiveInt = 3
    # Seconds one gate command may run.
    timeout_seconds: PositiveInt = 600

    def commands(self, extra: list[str]) -> list[tuple[str, str, bool]]:
        """(name, command, required) for each gate command, in the order they run."""
        found = []
        if self.tests.strip():
            found.append(("tests", self.tests, self.require_tests_pass))
        if self.lint.strip():
            found.append(("lint", self.lint, self.require_lint_pass))
        found += [(f"gate {n}", c, True) for n, c in enumerate(extra, 1) if c.strip()]
        return found

    def any(self, extra: list[str]) -> bool:
        return bool(self.commands(extra)) or self.max_diff_lines is not None


class GateResult(Struct, frozen=True, kw_only=True):
    name: str
    passed: bool
    required: bool = True
    command: str = ""
    exit_code: int | None = None
    output: str = ""
    duration_s: float = 0.0
