"""Decisions, tool categories and permission modes: the vocabulary of the policy.

A decision is `allow`, `ask` or `deny`, ordered by strictness (deny is the strictest).
A permission mode sets two things: a cap (in `plan` and `delegate` only read-only
tools and coordination run, whatever the rules say) and the fallback — what a call
gets when no rule matches it:

    mode          read   edit   write  bash   network  control
    default       allow  ask    ask    ask    ask      allow
    acceptEdits   allow  allow  allow  ask    ask      allow
    plan          allow  deny   deny   deny   deny     allow
    delegate      allow  deny   deny   deny   deny     allow

`delegate` means "coordinate, do not act": today that is reading and `finish`; the
tools that start sub-runs will be its own. Modes are ordered by strictness too
(acceptEdits < default < delegate < plan), so layers combine by taking the strictest.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

__all__ = [
    "CATEGORIES",
    "Category",
    "Decision",
    "PermissionMode",
    "mode_fallback",
    "stricter",
    "strictest",
    "strictest_mode",
]


class Decision(StrEnum):
    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"

    @property
    def strictness(self) -> int:
        return _DECISION_ORDER[self]


_DECISION_ORDER = {Decision.ALLOW: 0, Decision.ASK: 1, Decision.DENY: 2}


Category = Literal["read", "edit", "write", "bash", "network", "control"]
CATEGORIES: tuple[Category, ...] = get_args(Category)


class PermissionMode(StrEnum):
    DEFAULT = "default"
    ACCEPT_EDITS = "acceptEdits"
    PLAN = "plan"
    DELEGATE = "delegate"

    @property
    def strictness(self) -> int:
        return _MODE_ORDER[self]

    @property
    def read_only(self) -> bool:
        """True for the modes that cap the agent to reading and coordinating."""
        return self in (PermissionMode.PLAN, PermissionMode.DELEGATE)


_MODE_ORDER = {
    PermissionMode.ACCEPT_EDITS: 0,
    PermissionMode.DEFAULT: 1,
    PermissionMode.DELEGATE: 2,
    PermissionMode.PLAN: 3,
}

_A, _Q, _D = Decision.ALLOW, Decision.ASK, Decision.DENY
_FALLBACKS: dict[PermissionMode, dict[Category, Decision]] = {
    PermissionMode.DEFAULT: {
        "read": _A, "edit": _Q, "write": _Q, "bash": _Q, "network": _Q, "control": _A,
    },
    PermissionMode.ACCEPT_EDITS: {
        "read": _A, "edit": _A, "write": _A, "bash": _Q, "network": _Q, "control": _A,
    },
    PermissionMode.PLAN: {
        "read": _A, "edit": _D, "write": _D, "bash": _D, "network": _D, "control": _A,
    },
    PermissionMode.DELEGATE: {
        "read": _A, "edit": _D, "write": _D, "bash": _D, "network": _D, "control": _A,
    },
}  # fmt: skip


def mode_fallback(mode: PermissionMode, category: Category) -> Decision:
    return _FALLBACKS[mode][category]


def stricter(a: Decision, b: Decision) -> bool:
    """True when `a` is stricter than `b`."""
    return a.strictness > b.strictness


def strictest(decisions: list[Decision]) -> Decision:
    return max(decisions, key=lambda d: d.strictness)


def strictest_mode(modes: list[PermissionMode]) -> PermissionMode:
    return max(modes, key=lambda m: m.strictness)
