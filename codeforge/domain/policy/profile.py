"""Policy profiles, permission rules and the restrictions layered over them.

A `PolicyProfile` is one policy document: a mode, per-category defaults (what a call
gets when no rule matches), rules in three lists (deny, ask, allow), protected paths,
what a change outside the workspace gets, extra network commands, and stricter
sections per sandbox kind. A `Restriction` can only tighten: a mode, defaults, deny
and ask rules and protected paths — never allow rules. Restrictions come from a
profile's sandbox section, from an agent whose profile is layered over its project's,
and from a run's `policy_overrides`.

Protected paths: changes to `.git/` and `.codeforge/` are denied, changes to CI
configuration are asked, whatever the rules allow (see `DEFAULT_PROTECTED`). A
profile adds its own and may lift a built-in one by naming it in `unprotect`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from codeforge.domain.policy.modes import Category, Decision, PermissionMode
from codeforge.domain.policy.specifiers import ToolSpecifier

__all__ = [
    "DEFAULT_PROTECTED",
    "PermissionRule",
    "PolicyProfile",
    "Restriction",
    "RuleExamples",
]

# Built-in protected paths: tampering with git's own files (hooks, config) or
# CodeForge's state can escape a run; CI configuration runs with the project's secrets.
DEFAULT_PROTECTED: tuple[tuple[str, Decision], ...] = (
    (".git/", Decision.DENY),
    (".codeforge/", Decision.DENY),
    (".github/workflows/**", Decision.ASK),
    (".github/actions/**", Decision.ASK),
    (".gitlab-ci.yml", Decision.ASK),
    (".gitlab/ci/**", Decision.ASK),
    (".ci/**", Decision.ASK),
    (".circleci/**", Decision.ASK),
    (".buildkite/**", Decision.ASK),
    ("Jenkinsfile", Decision.ASK),
    (".travis.yml", Decision.ASK),
    ("azure-pipelines.yml", Decision.ASK),
    (".drone.yml", Decision.ASK),
)


@dataclass(frozen=True)
class RuleExamples:
    match: tuple[str, ...] = ()
    no_match: tuple[str, ...] = ()


@dataclass(frozen=True)
class PermissionRule:
    specifier: ToolSpecifier
    decision: Decision
    # Told to the model and the approver with the decision.
    reason: str = ""
    examples: RuleExamples = field(default_factory=RuleExamples)
    # Where it is written ("rules.deny[2]", "commands.allow[0]"), for messages.
    origin: str = ""

    @property
    def text(self) -> str:
        return self.specifier.text


@dataclass(frozen=True)
class Restriction:
    """A layer that can only tighten: no allow rules, no unprotect."""

    mode: PermissionMode | None = None
    defaults: Mapping[Category, Decision] = field(default_factory=dict)
    outside_workspace: Decision | None = None
    deny: tuple[PermissionRule, ...] = ()
    ask: tuple[PermissionRule, ...] = ()
    protected: tuple[tuple[str, Decision], ...] = ()

    @property
    def empty(self) -> bool:
        return self == Restriction()


@dataclass(frozen=True)
class PolicyProfile:
    name: str
    description: str = ""
    mode: PermissionMode = PermissionMode.DEFAULT
    # Whether the document says its mode (a global policy or an agent's profile tightens
    # the mode only when it names one).
    mode_set: bool = True
    defaults: Mapping[Category, Decision] = field(default_factory=dict)
    # What a change outside the workspace gets; None: ask (the built-in default).
    outside_workspace: Decision | None = None
    deny: tuple[PermissionRule, ...] = ()
    ask: tuple[PermissionRule, ...] = ()
    allow: tuple[PermissionRule, ...] = ()
    protected: tuple[tuple[str, Decision], ...] = ()
    # Built-in protected patterns this profile lifts (as written in DEFAULT_PROTECTED).
    unprotect: tuple[str, ...] = ()
    # Bash patterns of commands that reach the network, besides the built-in list.
    network_commands: tuple[str, ...] = ()
    # Stricter sections per sandbox kind ("mount", "bwrap", "docker", "hybrid").
    sandboxes: Mapping[str, Restriction] = field(default_factory=dict)

    def as_restriction(self) -> Restriction:
        """This profile used to tighten another (an agent's profile over its project's)."""
        return Restriction(
            mode=self.mode if self.mode_set else None,
            defaults=self.defaults,
            outside_workspace=self.outside_workspace,
            deny=self.deny,
            ask=self.ask,
            protected=self.protected,
        )
