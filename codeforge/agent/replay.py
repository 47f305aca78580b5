"""Comparing a replay with the run it replays: every call, its result, its decision.

Calls are matched by id (the replay serves the recorded replies, so the model asks
for the same calls under the same ids). Each difference is one `ReplayDiverged`:
a different `ok`, exit code or output of a call, a different policy decision, a call
the recording has that the replay never reached (`missing`), or one it made beyond
the recording (`extra`).

Outputs are compared with what changes on every run masked — durations ("Ran 3 tests
in 0.006s", "12.5 ms"), clock times and dates, memory addresses — so a test runner's
timing line is not reported as a changed outcome, while "5 passed" against "4
passed" is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from codeforge.domain.events import (
    PolicyDecided,
    ReplayDiverged,
    StoredEvent,
    ToolCallCompleted,
    ToolCallRequested,
)

SHOWN = 2000

_VOLATILE = [
    (re.compile(r"\b\d+(?:\.\d+)?\s*(?:ms|us|µs|ns|s|sec|secs|seconds?|minutes?)\b"), "<duration>"),
    (
        re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"),
        "<time>",
    ),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b"), "<time>"),
    (re.compile(r"\b0x[0-9a-fA-F]{6,}\b"), "<address>"),
]


def _steady(text: str) -> str:
    for pattern, mask in _VOLATILE:
        text = pattern.sub(mask, text)
    return text


def _calls(events: Iterable[StoredEvent]) -> dict[str, tuple[int, dict[str, str]]]:
    """call id -> (step, {field: value}) for what a comparison looks at."""
    found: dict[str, tuple[int, dict[str, str]]] = {}
    for stored in events:
        match stored.event:
            case ToolCallRequested(call_id=cid, step=step, tool=tool):
                found[cid] = (step, {"tool": tool})
            case PolicyDecided(call_id=cid, decision=decision) if cid in found:
                found[cid][1]["decision"] = decision
            case ToolCallCompleted(call_id=cid, ok=ok, output=output, exit_code=code) if (
                cid in found
            ):
                found[cid][1].update(ok=str(ok), output=output, exit_code=str(code))
    return found


def divergences(
    recorded: Iterable[StoredEvent], replayed: Iterable[StoredEvent]
) -> list[ReplayDiverged]:
    then, now = _calls(recorded), _calls(replayed)
    found: list[ReplayDiverged] = []
    for cid, (step, fields) in then.items():
        tool = fields.get("tool", "")
        if cid not in now:
            found.append(ReplayDiverged(step=step, call_id=cid, tool=tool, field="missing"))
            continue
        again = now[cid][1]
        for name in ("decision", "ok", "exit_code", "output"):
            a, b = fields.get(name) or "", again.get(name) or ""
            if (_steady(a) != _steady(b)) if name == "output" else (a != b):
                found.append(
                    ReplayDiverged(
                        step=step,
                        call_id=cid,
                        tool=tool,
                        field=name,
                        recorded=(fields.get(name) or "")[:SHOWN],
                        replayed=(again.get(name) or "")[:SHOWN],
                    )
                )
    for cid, (step, fields) in now.items():
        if cid not in then:
            found.append(
                ReplayDiverged(step=step, call_id=cid, tool=fields.get("tool", ""), field="extra")
            )
    return found
