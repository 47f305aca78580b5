"""The effective policy of a run, and its decision on one tool call.

An `EffectivePolicy` is compiled from layers, most general first:

    global policies of the tenant   (scope "global")
    the base profile                (the project's or the agent's; "project", "agent",
                                     or "preset:<name>")
    the agent's profile, when both project and agent name one   ("agent", tightens)
    the sandbox sections of those profiles for the run's sandbox kind   (tighten)
    the run's overrides             ("run", tightens)

How they combine: deny rules of every layer come first, then the protected paths, then
ask rules of every layer, then allow rules (only global policies and the base profile
have them) — first match wins, so a deny anywhere beats an allow anywhere. The mode is
the strictest any layer sets; so is each category's default and `outside_workspace`.
A layer that tightens therefore can never loosen, by construction.

A decision on a command is the strictest of its parts' (deny over ask over allow,
the first part of that strictness reported); a part is allowed only if its program is
allowed (or a harmless builtin), any network access is allowed, and every file it
writes is allowed; what the parser cannot read is `ask`.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from msgspec import Struct

from codeforge.domain.policy.modes import (
    CATEGORIES,
    Category,
    Decision,
    PermissionMode,
    mode_fallback,
    strictest,
    strictest_mode,
)
from codeforge.domain.policy.paths import Location, PathPattern, Place, resolve, shell_glob_regex
from codeforge.domain.policy.profile import DEFAULT_PROTECTED, PermissionRule
from codeforge.domain.policy.programs import (
    DEFAULT_NETWORK_COMMANDS,
    NEUTRAL,
    Effect,
    path_effects,
    program_name,
)
from codeforge.domain.policy.shell import CommandPart, parse_command
from codeforge.domain.policy.specifiers import Kind, Match, ToolSpecifier

__all__ = [
    "TOOL_KINDS",
    "EffectivePolicy",
    "Layer",
    "PartVerdict",
    "PolicyRequest",
    "Verdict",
]

# The tools of the native agent and what their rules are called.
TOOL_KINDS: dict[str, tuple[Category, Kind | None]] = {
    "read_file": ("read", Kind.READ),
    "list_dir": ("read", Kind.READ),
    "glob": ("read", Kind.READ),
    "grep": ("read", Kind.READ),
    "edit": ("edit", Kind.EDIT),
    "write_file": ("write", Kind.WRITE),
    "bash": ("bash", Kind.BASH),
    "finish": ("control", None),
}
_KIND_OF_CATEGORY: dict[Category, Kind | None] = {
    "read": Kind.READ,
    "edit": Kind.EDIT,
    "write": Kind.WRITE,
    "bash": Kind.BASH,
    "network": Kind.NETWORK,
    "control": None,
}


class PolicyRequest(Struct, frozen=True, kw_only=True):
    tool: str
    category: Category
    # Paths as the tool was given them (relative to the workspace root).
    paths: tuple[str, ...] = ()
    command: str | None = None


class PartVerdict(Struct, frozen=True, kw_only=True):
    command: str
    decision: Decision
    rule: str = ""
    scope: str = ""
    reason: str = ""


class Verdict(Struct, frozen=True, kw_only=True):
    decision: Decision
    rule: str = ""
    scope: str = ""
    reason: str = ""
    # For commands: the verdict on each part, in the order the shell runs them.
    parts: tuple[PartVerdict, ...] = ()
    # For an ask: whether headless rules may approve it (see `_Finding.automatic`).
    automatic: bool = True


@dataclass(frozen=True)
class Layer:
    """One source of rules, with where it came from."""

    scope: str
    # How reasons name it: "preset headless-safe-sandbox", "the run's overrides".
    label: str
    mode: PermissionMode | None = None
    defaults: Mapping[Category, Decision] = field(default_factory=dict)
    outside_workspace: Decision | None = None
    deny: tuple[PermissionRule, ...] = ()
    ask: tuple[PermissionRule, ...] = ()
    allow: tuple[PermissionRule, ...] = ()
    protected: tuple[tuple[str, Decision], ...] = ()
    unprotect: tuple[str, ...] = ()
    network_commands: tuple[str, ...] = ()
    # The base profile: its own defaults replace its mode's.
    base: bool = False


@dataclass(frozen=True)
class _Rule:
    rule: PermissionRule
    layer: Layer

    @property
    def spec(self) -> ToolSpecifier:
        return self.rule.specifier

    def says(self, verb: str) -> str:
        why = f": {self.rule.reason}" if self.rule.reason else ""
        return f"{self.rule.text} in the {verb} list of {self.layer.label}{why}"


@dataclass(frozen=True)
class _Source:
    """Where a setting (the mode, a default) came from."""

    decision: Decision
    rule: str
    scope: str
    label: str


@dataclass(frozen=True)
class _Protected:
    pattern: PathPattern
    decision: Decision
    scope: str
    label: str


@dataclass(frozen=True)
class _Finding:
    decision: Decision
    rule: str
    scope: str
    reason: str
    # For an ask: whether a run without a human approver may approve it by its headless
    # rules. Never for network access, protected paths, or what the policy cannot read.
    automatic: bool = True


_PATH_KINDS: dict[Kind, tuple[Kind, ...]] = {
    Kind.READ: (Kind.READ,),
    Kind.EDIT: (Kind.EDIT,),
    Kind.WRITE: (Kind.WRITE, Kind.EDIT),
}
_CHANGE_KINDS = (Kind.EDIT, Kind.WRITE)
_ALL_PATH_KINDS = (Kind.READ, Kind.EDIT, Kind.WRITE)


class EffectivePolicy:
    """The compiled policy of one run (or one preview): immutable, safe to share."""

    def __init__(self, layers: Sequence[Layer]) -> None:
        if not layers or not any(layer.base for layer in layers):
            raise ValueError("an effective policy needs a base profile")
        self.layers = tuple(layers)
        base = next(layer for layer in layers if layer.base)
        self.profile_label = base.label
        moded = [layer for layer in layers if layer.mode is not None]
        self.mode = strictest_mode([layer.mode for layer in moded if layer.mode is not None])
        mode_layer = next(layer for layer in moded if layer.mode is self.mode)
        self.mode_source = _Source(
            Decision.DENY, f"mode: {self.mode.value}", mode_layer.scope, mode_layer.label
        )
        self.fallbacks = {category: self._fallback(category) for category in CATEGORIES}
        outside = [
            _Source(
                layer.outside_workspace,
                f"outside_workspace: {layer.outside_workspace}",
                layer.scope,
                layer.label,
            )
            for layer in layers
            if layer.outside_workspace is not None
        ] or [_Source(Decision.ASK, "outside_workspace: ask", "default", "the built-in default")]
        self.outside = max(outside, key=lambda s: s.decision.strictness)
        self._deny = [_Rule(r, layer) for layer in layers for r in layer.deny]
        self._ask = [_Rule(r, layer) for layer in layers for r in layer.ask]
        self._allow = [_Rule(r, layer) for layer in layers for r in layer.allow]
        self._by_kind: dict[tuple[str, Kind], list[_Rule]] = {}
        for verb, rules in (("deny", self._deny), ("ask", self._ask), ("allow", self._allow)):
            for kind in Kind:
                self._by_kind[(verb, kind)] = [r for r in rules if r.spec.kind is kind]
        lifted = {text for layer in layers for text in layer.unprotect}
        protected: list[_Protected] = [
            _Protected(
                PathPattern(text, ignore_case=True),
                decision,
                "default",
                "the built-in protected paths",
            )
            for text, decision in DEFAULT_PROTECTED
            if text not in lifted
        ]
        for layer in layers:
            protected += [
                _Protected(PathPattern(text, ignore_case=True), decision, layer.scope, layer.label)
                for text, decision in layer.protected
            ]
        # Denied protections first: a path both denied and asked is denied.
        self._protected = sorted(protected, key=lambda p: -p.decision.strictness)
        network = dict.fromkeys(DEFAULT_NETWORK_COMMANDS)
        for layer in layers:
            network.update(dict.fromkeys(layer.network_commands))
        self._network = [ToolSpecifier.parse(f"Bash({pattern})") for pattern in network]
        # Command rules by the program they name, so a part is matched against the few
        # rules that can concern it (and those naming no program), in their order.
        self._by_program = {
            verb: _ProgramIndex(self._by_kind[(verb, Kind.BASH)], lambda r: r.spec)
            for verb in ("deny", "ask", "allow")
        }
        self._network_index = _ProgramIndex(self._network, lambda spec: spec)
        self._reads_guarded = bool(
            self._by_kind[("deny", Kind.READ)] or self._by_kind[("ask", Kind.READ)]
        )

    def _fallback(self, category: Category) -> _Source:
        sources: list[_Source] = []
        for layer in self.layers:
            own = layer.defaults.get(category)
            if own is not None:
                sources.append(
                    _Source(own, f"defaults.{category}: {own.value}", layer.scope, layer.label)
                )
            if layer.mode is not None and (own is None or not layer.base):
                sources.append(
                    _Source(
                        mode_fallback(layer.mode, category),
                        f"mode: {layer.mode.value}",
                        layer.scope,
                        layer.label,
                    )
                )
        if not sources:
            return _Source(mode_fallback(self.mode, category), "", "default", "the mode")
        chosen = max(sources, key=lambda s: s.decision.strictness)
        return chosen

    # -- deciding -----------------------------------------------------------------------

    def decide(self, request: PolicyRequest) -> Verdict:
        category = request.category
        kind = _KIND_OF_CATEGORY.get(category)
        if request.tool in TOOL_KINDS:
            category, kind = TOOL_KINDS[request.tool]
        if kind is None:
            return self._verdict(self._default(category, f"`{request.tool}`"))
        if self.mode.read_only and category != "read":
            return self._verdict(self._capped(f"`{request.tool}`"))
        if kind is Kind.BASH:
            return self._command(request.command or "")
        if kind is Kind.NETWORK:
            return self._verdict(self._network_call(f"`{request.tool}`", Match.YES))
        paths = request.paths or (".",)
        findings = [self._path_call(kind, category, path) for path in paths]
        return self._verdict(_strictest(findings))

    def _verdict(self, f: _Finding, parts: tuple[PartVerdict, ...] = ()) -> Verdict:
        return Verdict(
            decision=f.decision,
            rule=f.rule,
            scope=f.scope,
            reason=f.reason,
            parts=parts,
            automatic=f.automatic or f.decision is not Decision.ASK,
        )

    def _capped(self, what: str) -> _Finding:
        s = self.mode_source
        return _Finding(
            Decision.DENY,
            s.rule,
            s.scope,
            f"{what} is not allowed: {self.mode.value} mode (set by {s.label}) allows only "
            "reading and coordinating tools",
        )

    def _default(self, category: Category, what: str) -> _Finding:
        s = self.fallbacks[category]
        if s.decision is Decision.ALLOW:
            reason = (
                f"{what} is allowed: no rule matches it, and {s.rule or 'the mode'} "
                f"({s.label}) allows {category} calls"
            )
        else:
            reason = (
                f"no rule of {self.profile_label} allows {what}; "
                f"{s.rule or 'the mode'} ({s.label}) makes an unlisted {category} call "
                f"{'need approval' if s.decision is Decision.ASK else 'denied'}"
            )
        return _Finding(s.decision, s.rule, s.scope, reason)

    # -- files --------------------------------------------------------------------------

    def _path_call(self, kind: Kind, category: Category, raw: str) -> _Finding:
        location = resolve(raw)
        shown = f"`{raw}`"
        if kind is Kind.READ:
            return (
                self._first("deny", (Kind.READ,), location, shown)
                or self._first("ask", (Kind.READ,), location, shown)
                or self._first("allow", (Kind.READ,), location, shown)
                or self._default(category, f"reading {shown}")
            )
        kinds = _PATH_KINDS[kind]
        return self._change(kinds, category, location, shown, recursive=False) or self._default(
            category, f"changing {shown}"
        )

    def _change(
        self,
        kinds: tuple[Kind, ...],
        category: Category,
        location: Location,
        shown: str,
        *,
        recursive: bool,
        glob: bool = False,
    ) -> _Finding | None:
        """A change to `location`: the deciding finding, or None for the default."""
        if location.place is Place.UNKNOWN:
            return _Finding(
                Decision.ASK,
                "",
                "default",
                f"the policy cannot tell which file {shown} names (computed by the shell, or "
                "outside the workspace through `..`), so it cannot approve changing it",
                automatic=False,
            )
        if location.sink:
            return _Finding(Decision.ALLOW, "", "default", f"{shown} is not a file")
        found = self._first("deny", kinds, location, shown, recursive=recursive, glob=glob)
        if found:
            return found
        guarded = self._protection(location, shown, recursive=recursive, glob=glob)
        if guarded:
            return guarded
        if not location.inside:
            o = self.outside
            if o.decision is not Decision.ALLOW:
                return _Finding(
                    o.decision,
                    o.rule,
                    o.scope,
                    f"{shown} is outside the workspace; {o.rule} ({o.label})",
                )
        return (
            self._first("ask", kinds, location, shown, recursive=recursive, glob=glob)
            or (self._first("allow", kinds, location, shown, glob=glob))
            or (
                _Finding(
                    Decision.ALLOW,
                    self.outside.rule,
                    self.outside.scope,
                    f"{shown} is outside the workspace, which {self.outside.label} allows",
                )
                if not location.inside
                else None
            )
        )

    def _first(
        self,
        verb: str,
        kinds: Iterable[Kind],
        location: Location,
        shown: str,
        *,
        recursive: bool = False,
        glob: bool = False,
    ) -> _Finding | None:
        regex = shell_glob_regex(location.key) if glob else None
        for kind in kinds:
            for r in self._by_kind[(verb, kind)]:
                path = r.spec.path
                if path is None:
                    hit = True
                elif regex is not None:
                    hit = path.place is location.place and (
                        path.overlaps_glob(*regex)
                        if verb != "allow"
                        else path.matches(Location(location.place, regex[1]))
                    )
                else:
                    hit = path.matches(location) or (
                        recursive and verb != "allow" and path.under(location)
                    )
                if hit:
                    decision = {"deny": Decision.DENY, "ask": Decision.ASK}.get(
                        verb, Decision.ALLOW
                    )
                    if decision is Decision.ALLOW:
                        reason = f"{shown} is allowed by {r.rule.text} ({r.layer.label})"
                    else:
                        reason = f"{shown} matches {r.says(verb)}"
                    return _Finding(decision, r.rule.text, r.layer.scope, reason)
        return None

    def _protection(
        self, location: Location, shown: str, *, recursive: bool, glob: bool = False
    ) -> _Finding | None:
        regex = shell_glob_regex(location.key) if glob else None
        for p in self._protected:
            if p.pattern.place is not location.place:
                continue
            if regex is not None:
                hit = p.pattern.overlaps_glob(*regex)
            else:
                hit = p.pattern.matches(location) or (recursive and p.pattern.under(location))
            if hit:
                verb = "denied" if p.decision is Decision.DENY else "never approved automatically"
                return _Finding(
                    p.decision,
                    f"protected: {p.pattern.text}",
                    p.scope,
                    f"{shown} is or holds a protected path ({p.pattern.text}, {p.label}): "
                    f"changes to it are {verb}",
                    automatic=False,
                )
        return None

    # -- commands ------------------------------------------------------------------------

    def _command(self, command: str) -> Verdict:
        script = parse_command(command)
        verdicts = [self._part(part) for part in script.parts]
        parts = tuple(
            PartVerdict(
                command=part.shown(),
                decision=f.decision,
                rule=f.rule,
                scope=f.scope,
                reason=f.reason,
            )
            for part, f in zip(script.parts, verdicts, strict=True)
        )
        denied = next((f for f in verdicts if f.decision is Decision.DENY), None)
        if denied is not None:
            return self._verdict(denied, parts)
        if script.problems:
            return self._verdict(
                _Finding(
                    Decision.ASK,
                    "",
                    "default",
                    f"the command cannot be read safely ({'; '.join(script.problems[:3])}); "
                    "the policy asks rather than allow what it cannot read",
                    automatic=False,
                ),
                parts,
            )
        asks = [f for f in verdicts if f.decision is Decision.ASK]
        if asks:
            # One part headless rules may not approve keeps the whole command from them.
            return self._verdict(
                dataclasses.replace(asks[0], automatic=all(f.automatic for f in asks)), parts
            )
        if not verdicts:
            return self._verdict(
                _Finding(Decision.ASK, "", "default", "the command runs nothing", automatic=False)
            )
        rules = list(dict.fromkeys(f.rule for f in verdicts if f.rule))
        scopes = list(dict.fromkeys(f.scope for f in verdicts if f.rule))
        if len(verdicts) == 1:
            return self._verdict(verdicts[0], parts)
        reason = "every part is allowed: " + "; ".join(
            f"`{p.command}` ({p.rule or 'harmless'})" for p in parts
        )
        return self._verdict(
            _Finding(Decision.ALLOW, ", ".join(rules), ", ".join(scopes) or "default", reason),
            parts,
        )

    def _part(self, part: CommandPart) -> _Finding:
        shown = f"`{part.shown()}`"
        maybe_denied: _Finding | None = None
        for r in self._by_program["deny"].candidates(part):
            match = r.spec.catches(part)
            if match is Match.YES:
                return _Finding(
                    Decision.DENY, r.rule.text, r.layer.scope, f"{shown} matches {r.says('deny')}"
                )
            if match is Match.MAYBE and maybe_denied is None:
                maybe_denied = _Finding(
                    Decision.ASK,
                    r.rule.text,
                    r.layer.scope,
                    f"{shown} may be {r.rule.text}, denied by {r.layer.label}: the shell "
                    "computes a word the rule depends on",
                    automatic=False,
                )
        network = self._network_match(part)
        net = self._network_call(shown, network) if network is not Match.NO else None
        if net is not None and net.decision is Decision.DENY:
            return net
        effects = [self._effect(e, part) for e in path_effects(part)]
        effect_findings = [f for f in effects if f is not None]
        denied = next((f for f in effect_findings if f.decision is Decision.DENY), None)
        if denied is not None:
            return denied
        if part.problems:
            return _Finding(
                Decision.ASK,
                "",
                "default",
                f"{shown}: {'; '.join(part.problems[:3])}; the policy asks rather than allow "
                "what it cannot follow",
                automatic=False,
            )
        if maybe_denied is not None:
            return maybe_denied
        # Whatever decides an ask below, a part that also reaches the network or a
        # protected path stays out of headless rules' reach.
        weighed = [f for f in (net, *effect_findings) if f is not None]
        automatic = all(f.automatic for f in weighed if f.decision is Decision.ASK)
        for r in self._by_program["ask"].candidates(part):
            if r.spec.catches(part) is not Match.NO:
                return _Finding(
                    Decision.ASK,
                    r.rule.text,
                    r.layer.scope,
                    f"{shown} matches {r.says('ask')}",
                    automatic=automatic,
                )
        if net is not None and net.decision is Decision.ASK:
            return net
        asked = next((f for f in effect_findings if f.decision is Decision.ASK), None)
        if asked is not None:
            return dataclasses.replace(asked, automatic=automatic)
        return self._program(part, shown)

    def _program(self, part: CommandPart, shown: str) -> _Finding:
        if not part.argv or program_name(part) in NEUTRAL:
            return _Finding(
                Decision.ALLOW,
                "",
                "default",
                f"{shown} changes nothing by itself (its redirections are checked)",
            )
        for r in self._by_program["allow"].candidates(part, exact=True):
            if r.spec.admits(part):
                return _Finding(
                    Decision.ALLOW,
                    r.rule.text,
                    r.layer.scope,
                    f"{shown} is allowed by {r.rule.text} ({r.layer.label})",
                )
        return self._default("bash", shown)

    def _network_match(self, part: CommandPart) -> Match:
        for r in part.redirects:
            # bash opens a connection for a redirection to /dev/tcp/host/port.
            target = r.target.text if r.target is not None else None
            if target is not None and target.startswith(("/dev/tcp/", "/dev/udp/")):
                return Match.YES
        best = Match.NO
        for spec in self._network_index.candidates(part):
            match = spec.catches(part)
            if match is Match.YES:
                return match
            if match is Match.MAYBE:
                best = match
        return best

    def _network_call(self, shown: str, match: Match) -> _Finding:
        what = (
            f"{shown} reaches the network"
            if match is Match.YES
            else f"{shown} may reach the network"
        )
        for verb in ("deny", "ask", "allow"):
            for r in self._by_kind[(verb, Kind.NETWORK)]:
                decision = {"deny": Decision.DENY, "ask": Decision.ASK}.get(verb, Decision.ALLOW)
                if match is Match.MAYBE and decision is Decision.DENY:
                    decision = Decision.ASK
                return _Finding(
                    decision,
                    r.rule.text,
                    r.layer.scope,
                    f"{what}: {r.says(verb)}",
                    automatic=False,
                )
        return dataclasses.replace(self._default("network", what), automatic=False)

    def _effect(self, effect: Effect, part: CommandPart) -> _Finding | None:
        shown = f"`{effect.word.raw}`"
        findings: list[_Finding] = []
        for location in effect.locations:
            found = self._effect_at(effect, location, shown)
            if found is not None:
                findings.append(found)
        return _strictest(findings) if findings else None

    def _effect_at(self, effect: Effect, location: Location, shown: str) -> _Finding | None:
        glob = effect.glob and location.place is not Place.UNKNOWN
        if effect.kind == "write":
            found = self._change(
                _CHANGE_KINDS, "edit", location, shown, recursive=effect.recursive, glob=glob
            )
            return found or self._default("edit", f"changing {shown}")
        if location.place is Place.UNKNOWN:
            if effect.kind == "read" and self._reads_guarded:
                return _Finding(
                    Decision.ASK,
                    "",
                    "default",
                    f"the policy cannot tell which file {shown} reads, and some "
                    "reads are denied or asked",
                    automatic=False,
                )
            return None
        kinds = (Kind.READ,) if effect.kind == "read" else _ALL_PATH_KINDS
        found = self._first("deny", kinds, location, shown, glob=glob)
        if found is None and effect.kind == "touch":
            guarded = self._protection(location, shown, recursive=False, glob=glob)
            if guarded is not None:
                return guarded
        return found or self._first("ask", kinds, location, shown, glob=glob)


T = TypeVar("T")


class _ProgramIndex(Generic[T]):
    """Items (rules, specifiers) by the program their Bash pattern names."""

    def __init__(self, items: Sequence[T], spec_of: Callable[[T], ToolSpecifier]) -> None:
        self._all = list(items)
        self._any: list[tuple[int, T]] = []
        self._named: dict[str, list[tuple[int, T]]] = {}
        for i, item in enumerate(items):
            tokens = spec_of(item).tokens
            if tokens:
                self._named.setdefault(tokens[0], []).append((i, item))
            else:
                self._any.append((i, item))

    def candidates(self, part: CommandPart, *, exact: bool = False) -> list[T]:
        """The items that may concern `part`, in their original order. `exact`: only a
        rule naming the program as written (allow rules); else also its file name
        (`/usr/bin/rm` for `rm`), and every item when the shell computes the name."""
        if not part.argv:
            return [item for _, item in self._any]
        program = part.argv[0].text
        if program is None:
            return list(self._all)
        found = self._any + self._named.get(program, [])
        base = posixpath.basename(program)
        if not exact and base != program:
            found += self._named.get(base, [])
        if len(found) > 1:
            found.sort(key=lambda pair: pair[0])
        return [item for _, item in found]


def _strictest(findings: list[_Finding]) -> _Finding:
    top = strictest([f.decision for f in findings])
    found = next(f for f in findings if f.decision is top)
    if top is Decision.ASK and not all(f.automatic for f in findings if f.decision is top):
        return dataclasses.replace(found, automatic=False)
    return found
