"""Policy documents: plain data (parsed from YAML elsewhere) into a checked `PolicyProfile`.

    name: headless-safe-sandbox          # optional; must match the file or stored name
    description: …
    mode: default                        # default | acceptEdits | plan | delegate
    defaults: {bash: ask}                # per category, when no rule matches
    outside_workspace: ask               # changes outside the workspace: allow|ask|deny
    protected: {deny: [...], ask: [...], unprotect: [...]}
    network_commands: ["terraform apply:*"]
    rules:
      deny:  [Bash(rm -rf /:*), {rule: Bash(curl:*), reason: …,
              examples: {match: [curl x], no_match: [git status]}}]
      ask:   [...]
      allow: [Edit, Bash(pytest:*)]
    paths:    {allow: [src/**], deny: [secrets/**]}     # Read+Edit rules
    commands: {allow: [make test], deny: ["rm:*"]}       # Bash rules
    sandboxes:
      mount: {mode: …, defaults: …, outside_workspace: …,
              rules: {deny: [...], ask: [...]}, protected: {deny: [...], ask: [...]}}

Every problem is reported with the path of the value it concerns (`rules.deny[2]`),
so the YAML loader can point at its line. Rule examples are checked here: a rule
whose example does not behave as written rejects the whole document.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec
from msgspec import Struct

from codeforge.domain.errors import ValidationFailed
from codeforge.domain.policy.modes import CATEGORIES, Category, Decision, PermissionMode
from codeforge.domain.policy.paths import PathPattern, PatternError, resolve
from codeforge.domain.policy.profile import (
    DEFAULT_PROTECTED,
    PermissionRule,
    PolicyProfile,
    Restriction,
    RuleExamples,
)
from codeforge.domain.policy.programs import DEFAULT_NETWORK_COMMANDS, NEUTRAL, program_name
from codeforge.domain.policy.shell import parse_command
from codeforge.domain.policy.specifiers import Kind, Match, SpecifierError, ToolSpecifier

__all__ = [
    "RUN_OVERRIDE_PASSTHROUGH",
    "PolicyInvalid",
    "PolicyProblem",
    "build_profile",
    "build_run_override",
]

Path = tuple[str | int, ...]
SandboxKind = Literal["mount", "bwrap", "docker", "hybrid"]
# Keys of a run's `policy_overrides` that belong to other parts of CodeForge: the
# budget (`allow_unpriced_model`) and approvals (`headless`).
RUN_OVERRIDE_PASSTHROUGH = frozenset({"allow_unpriced_model", "headless"})


class PolicyProblem(Struct, frozen=True):
    path: Path
    message: str

    def dotted(self) -> str:
        out = ""
        for p in self.path:
            out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
        return out


class PolicyInvalid(ValidationFailed):
    """The document breaks a rule; `problems` says where and what."""

    def __init__(self, problems: list[PolicyProblem], *, field: str | None = "document") -> None:
        self.problems = problems
        text = "; ".join(f"{p.dotted() or 'the document'}: {p.message}" for p in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"the policy is invalid: {text}{more}", field=field)


# --- the document's shape ---------------------------------------------------------------


class _Examples(Struct, frozen=True, forbid_unknown_fields=True):
    match: list[str] = []
    no_match: list[str] = []


class _Rule(Struct, frozen=True, forbid_unknown_fields=True):
    rule: str
    reason: str = ""
    examples: _Examples | None = None


_Item = str | _Rule


class _Defaults(Struct, frozen=True, forbid_unknown_fields=True):
    read: Decision | None = None
    edit: Decision | None = None
    write: Decision | None = None
    bash: Decision | None = None
    network: Decision | None = None


class _Rules(Struct, frozen=True, forbid_unknown_fields=True):
    deny: list[_Item] = []
    ask: list[_Item] = []
    allow: list[_Item] = []


class _Protected(Struct, frozen=True, forbid_unknown_fields=True):
    deny: list[str] = []
    ask: list[str] = []
    unprotect: list[str] = []


class _Lists(Struct, frozen=True, forbid_unknown_fields=True):
    allow: list[str] = []
    deny: list[str] = []


class _Section(Struct, frozen=True, forbid_unknown_fields=True):
    """A part that can only tighten: a sandbox section, a run's overrides."""

    mode: PermissionMode | None = None
    defaults: _Defaults = _Defaults()
    outside_workspace: Decision | None = None
    rules: _Rules = _Rules()
    protected: _Protected = _Protected()


class _Document(Struct, frozen=True, forbid_unknown_fields=True):
    name: str | None = None
    description: str = ""
    mode: PermissionMode | None = None
    defaults: _Defaults = _Defaults()
    outside_workspace: Decision | None = None
    protected: _Protected = _Protected()
    network_commands: list[str] = []
    rules: _Rules = _Rules()
    paths: _Lists = _Lists()
    commands: _Lists = _Lists()
    sandboxes: dict[SandboxKind, _Section] = {}


_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_AT_KEY = re.compile(r" - at `key` in `\$(?P<path>[^`]*)`$")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")


def _converted(data: object, shape: type[Any], root: Path) -> tuple[Any, list[PolicyProblem]]:
    try:
        return msgspec.convert(data, shape, strict=True), []
    except msgspec.ValidationError as e:
        message = str(e)
        at = _AT.search(message) or _AT_KEY.search(message)
        path: list[str | int] = list(root)
        if at:
            message = message[: at.start()]
            for name, index in _STEP.findall(at.group("path")):
                path.append(int(index) if index else name)
            quoted = re.search(r"'([^']*)'", message)
            if at.re is _AT_KEY and quoted:
                path.append(quoted.group(1))  # a mapping key was refused: point at it
        unknown = _UNKNOWN_FIELD.search(message)
        if unknown:
            path.append(unknown.group(1))
            message = f"unknown key {unknown.group(1)!r}"
        message = _friendlier(message)
        if message.startswith("invalid value") and path:
            last = path[-1]
            if last == "mode":
                message += " (use default, acceptEdits, plan or delegate)"
            elif last == "outside_workspace" or (len(path) > 1 and path[-2] == "defaults"):
                message += " (use allow, ask or deny)"
            elif len(path) > 1 and path[-2] == "sandboxes":
                message += " (use mount, bwrap, docker or hybrid)"
        return None, [PolicyProblem(tuple(path), message)]


def _friendlier(message: str) -> str:
    message = message.replace("Invalid enum value", "invalid value")
    message = message.replace("Expected `", "expected `")
    message = message.replace("Object missing required field", "missing key")
    return message


# --- building -----------------------------------------------------------------------------


class _Builder:
    def __init__(self) -> None:
        self.problems: list[PolicyProblem] = []
        self.network: list[ToolSpecifier] = []

    def problem(self, path: Path, message: str) -> None:
        self.problems.append(PolicyProblem(path, message))

    def rules(self, items: list[_Item], decision: Decision, path: Path) -> list[PermissionRule]:
        out = []
        for i, item in enumerate(items):
            entry = _Rule(rule=item) if isinstance(item, str) else item
            where = (*path, i) if isinstance(item, str) else (*path, i, "rule")
            try:
                spec = ToolSpecifier.parse(entry.rule)
            except SpecifierError as e:
                self.problem(where, str(e))
                continue
            examples = entry.examples or _Examples()
            rule = PermissionRule(
                specifier=spec,
                decision=decision,
                reason=entry.reason.strip(),
                examples=RuleExamples(tuple(examples.match), tuple(examples.no_match)),
                origin=_dotted((*path, i)),
            )
            out.append(rule)
            self.examples(rule, (*path, i, "examples"))
        return out

    def sugar(
        self, items: list[str], kinds: tuple[Kind, ...], decision: Decision, path: Path
    ) -> list[PermissionRule]:
        out = []
        for i, text in enumerate(items):
            for kind in kinds:
                try:
                    spec = ToolSpecifier.parse(f"{kind.value}({text})")
                except SpecifierError as e:
                    self.problem((*path, i), str(e))
                    break
                out.append(PermissionRule(spec, decision, origin=_dotted((*path, i))))
        return out

    def patterns(self, items: list[str], path: Path) -> list[str]:
        good = []
        for i, text in enumerate(items):
            try:
                PathPattern(text)
            except PatternError as e:
                self.problem((*path, i), str(e))
                continue
            good.append(text)
        return good

    def protected(self, section: _Protected, path: Path) -> tuple[tuple[str, Decision], ...]:
        deny = self.patterns(section.deny, (*path, "deny"))
        ask = self.patterns(section.ask, (*path, "ask"))
        return tuple([(t, Decision.DENY) for t in deny] + [(t, Decision.ASK) for t in ask])

    def defaults(
        self, section: _Defaults, path: Path, *, tighten_only: str = ""
    ) -> dict[Category, Decision]:
        out: dict[Category, Decision] = {}
        for category in CATEGORIES:
            value = getattr(section, category, None)
            if value is None:
                continue
            if tighten_only and value is Decision.ALLOW:
                self.problem(
                    (*path, category),
                    f"{tighten_only} may only tighten: a default here can be ask or deny",
                )
                continue
            out[category] = value
        return out

    def examples(self, rule: PermissionRule, path: Path) -> None:
        for key, expected in (("match", True), ("no_match", False)):
            examples = rule.examples.match if expected else rule.examples.no_match
            for j, example in enumerate(examples):
                if self.matches(rule, example) != expected:
                    verb = "should match" if expected else "should not match"
                    but = "but does not" if expected else "but does"
                    self.problem(
                        (*path, key, j),
                        f"{rule.decision.value} rule {rule.text}: example {example!r} {verb} {but}",
                    )

    def matches(self, rule: PermissionRule, example: str) -> bool:
        """An example matches a rule the way the rule is used: a deny or ask rule catches
        a command if it catches any part; an allow rule admits it if it admits every part.
        Path rules take a path; Network rules a command."""
        spec = rule.specifier
        if spec.kind in (Kind.READ, Kind.EDIT, Kind.WRITE):
            return spec.covers(resolve(example.strip(), home=True))
        script = parse_command(example)
        if spec.kind is Kind.NETWORK:
            return any(
                net.catches(part) is Match.YES for part in script.parts for net in self.network
            )
        if rule.decision is Decision.ALLOW:
            return (
                not script.problems
                and bool(script.parts)
                and all(
                    not part.problems
                    and (spec.admits(part) or not part.argv or program_name(part) in NEUTRAL)
                    for part in script.parts
                )
                and any(spec.admits(part) for part in script.parts)
            )
        return any(spec.catches(part) is Match.YES for part in script.parts)

    def network_commands(self, items: list[str], path: Path) -> list[str]:
        good = []
        for i, text in enumerate(items):
            try:
                self.network.append(ToolSpecifier.parse(f"Bash({text})"))
            except SpecifierError as e:
                self.problem((*path, i), str(e))
                continue
            good.append(text)
        return good

    def restriction(self, section: _Section, path: Path, what: str) -> Restriction:
        if section.rules.allow:
            self.problem(
                (*path, "rules", "allow"),
                f"{what} may only tighten the policy: allow rules belong in the profile",
            )
        if section.protected.unprotect:
            self.problem(
                (*path, "protected", "unprotect"),
                f"{what} may only tighten the policy: unprotect belongs in the profile",
            )
        if section.outside_workspace is Decision.ALLOW:
            self.problem(
                (*path, "outside_workspace"),
                f"{what} may only tighten: outside_workspace can be ask or deny",
            )
        return Restriction(
            mode=section.mode,
            defaults=self.defaults(section.defaults, (*path, "defaults"), tighten_only=what),
            outside_workspace=section.outside_workspace,
            deny=tuple(self.rules(section.rules.deny, Decision.DENY, (*path, "rules", "deny"))),
            ask=tuple(self.rules(section.rules.ask, Decision.ASK, (*path, "rules", "ask"))),
            protected=self.protected(section.protected, (*path, "protected")),
        )


def _dotted(path: Path) -> str:
    return PolicyProblem(path, "").dotted()


def build_profile(data: object, name: str | None) -> PolicyProfile:
    """The profile `data` describes, or `PolicyInvalid` listing every problem.

    `name`: what it is stored as (a `name:` in the document must agree); None for a
    document not stored (a preview), which keeps its own name, if any."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise PolicyInvalid([PolicyProblem((), "a policy is a mapping of keys (mode, rules, …)")])
    doc, problems = _converted(data, _Document, ())
    if doc is None:
        raise PolicyInvalid(problems)
    b = _Builder()
    if name is None:
        name = doc.name or "unsaved"
    if doc.name is not None and doc.name != name:
        b.problem(("name",), f"the document is named {doc.name!r}, but it is stored as {name!r}")
    network = b.network_commands(doc.network_commands, ("network_commands",))
    b.network += [ToolSpecifier.parse(f"Bash({c})") for c in DEFAULT_NETWORK_COMMANDS]
    mode = doc.mode or PermissionMode.DEFAULT
    defaults = b.defaults(doc.defaults, ("defaults",))
    if mode.read_only:
        for category, value in defaults.items():
            if category != "read" and value is not Decision.DENY:
                b.problem(
                    ("defaults", category),
                    f"{mode.value} mode denies {category} calls; a default of "
                    f"{value.value} would have no effect",
                )
    builtin = {text for text, _ in DEFAULT_PROTECTED}
    for i, text in enumerate(doc.protected.unprotect):
        if text not in builtin:
            b.problem(
                ("protected", "unprotect", i),
                f"{text!r} is not a built-in protected path; those are: "
                + ", ".join(sorted(builtin)),
            )
    deny = b.rules(doc.rules.deny, Decision.DENY, ("rules", "deny"))
    deny += b.sugar(doc.paths.deny, (Kind.READ, Kind.EDIT), Decision.DENY, ("paths", "deny"))
    deny += b.sugar(doc.commands.deny, (Kind.BASH,), Decision.DENY, ("commands", "deny"))
    ask = b.rules(doc.rules.ask, Decision.ASK, ("rules", "ask"))
    allow = b.rules(doc.rules.allow, Decision.ALLOW, ("rules", "allow"))
    allow += b.sugar(doc.paths.allow, (Kind.READ, Kind.EDIT), Decision.ALLOW, ("paths", "allow"))
    allow += b.sugar(doc.commands.allow, (Kind.BASH,), Decision.ALLOW, ("commands", "allow"))
    sandboxes = {
        kind: b.restriction(section, ("sandboxes", kind), f"the {kind} sandbox section")
        for kind, section in doc.sandboxes.items()
    }
    profile = PolicyProfile(
        name=name,
        description=doc.description.strip(),
        mode=mode,
        mode_set=doc.mode is not None,
        defaults=defaults,
        outside_workspace=doc.outside_workspace,
        deny=tuple(deny),
        ask=tuple(ask),
        allow=tuple(allow),
        protected=b.protected(doc.protected, ("protected",)),
        unprotect=tuple(doc.protected.unprotect),
        network_commands=tuple(network),
        sandboxes=sandboxes,
    )
    if b.problems:
        raise PolicyInvalid(b.problems)
    return profile


def build_run_override(overrides: Mapping[str, Any]) -> Restriction:
    """The restriction a run's `policy_overrides` asks for (keys besides
    `RUN_OVERRIDE_PASSTHROUGH` belong to the policy), or `PolicyInvalid`."""
    data = {k: v for k, v in overrides.items() if k not in RUN_OVERRIDE_PASSTHROUGH}
    if not data:
        return Restriction()
    problems = []
    if "allow" in data or "unprotect" in data:
        key = "allow" if "allow" in data else "unprotect"
        problems.append(
            PolicyProblem(
                (key,),
                "a run may only tighten its policy (mode, defaults, outside_workspace, "
                "rules.deny, rules.ask, protected); allow rules belong in a profile",
            )
        )
        data = {k: v for k, v in data.items() if k not in ("allow", "unprotect")}
    section, more = _converted(data, _Section, ())
    if section is None:
        raise PolicyInvalid(problems + more, field="policy_overrides")
    b = _Builder()
    b.network = [ToolSpecifier.parse(f"Bash({c})") for c in DEFAULT_NETWORK_COMMANDS]
    restriction = b.restriction(section, (), "a run's overrides")
    if problems or b.problems:
        raise PolicyInvalid(problems + b.problems, field="policy_overrides")
    return restriction
