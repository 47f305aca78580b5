"""Stall detection: a run that stopped making progress is corrected once, then stopped.

Progress is judged by what a step did, not by how busy it looked. A step is
*unproductive* when it changed nothing in the workspace and either made no tool
call, repeated calls it had already made with the same arguments, or had every call
fail. After `window` unproductive steps in a row the runtime sends one corrective
message; if `window` more follow, the run stops with reason `stalled`. A productive
step resets the count (and allows another correction later).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from msgspec import Struct

Verdict = Literal["ok", "nudge", "stalled"]

NUDGE = (
    "You have not changed anything for several steps, and you are repeating calls or "
    "getting errors. Stop and reconsider: re-read the task, look at the errors you got, "
    "and try a different approach. If the task is done, call finish with a summary; if it "
    "cannot be done, call finish and say why."
)


class StepRecord(Struct, frozen=True, kw_only=True):
    changed_workspace: bool
    # One "tool(arguments)" signature per call of the step.
    calls: Sequence[str] = ()
    all_failed: bool = False


class StallDetector:
    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError("the stall window must be at least 1 step")
        self.window = window
        self._seen: set[str] = set()
        self._unproductive = 0
        self._nudged = False

    def observe(self, step: StepRecord) -> Verdict:
        repeated = bool(step.calls) and all(call in self._seen for call in step.calls)
        self._seen.update(step.calls)
        productive = step.changed_workspace or (
            bool(step.calls) and not repeated and not step.all_failed
        )
        if productive:
            self._unproductive = 0
            self._nudged = False
            return "ok"
        self._unproductive += 1
        if not self._nudged and self._unproductive >= self.window:
            self._nudged = True
            self._unproductive = 0
            return "nudge"
        if self._nudged and self._unproductive >= self.window:
            return "stalled"
        return "ok"
