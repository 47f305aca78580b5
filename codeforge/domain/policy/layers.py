"""Putting a run's policy together from the profiles that apply to it.

The order and who may do what (see `evaluation` for how layers combine):

1. every global policy of the tenant (by name) — may allow, may lift protections;
   its mode counts only when it names one;
2. the base profile: the project's `policy_profile`, or the agent's when the project
   leaves it at "default", or the server's default profile when both do;
3. the agent's profile when project and agent both name one: it tightens only
   (its mode if named, defaults, deny and ask rules, protected paths);
4. each of those profiles' section for the run's sandbox kind — tightens only;
5. the run's `policy_overrides` — tightens only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from codeforge.domain.policy.evaluation import EffectivePolicy, Layer
from codeforge.domain.policy.profile import PolicyProfile, Restriction

__all__ = ["ProfileSource", "compose"]


@dataclass(frozen=True)
class ProfileSource:
    """A profile and where it comes from: scope for decisions, label for reasons."""

    profile: PolicyProfile
    scope: str
    label: str


def _restriction_layer(r: Restriction, scope: str, label: str) -> Layer:
    return Layer(
        scope=scope,
        label=label,
        mode=r.mode,
        defaults=r.defaults,
        outside_workspace=r.outside_workspace,
        deny=r.deny,
        ask=r.ask,
        protected=r.protected,
    )


def _profile_layer(source: ProfileSource, *, base: bool) -> Layer:
    p = source.profile
    return Layer(
        scope=source.scope,
        label=source.label,
        mode=p.mode if (base or p.mode_set) else None,
        defaults=p.defaults,
        outside_workspace=p.outside_workspace,
        deny=p.deny,
        ask=p.ask,
        allow=p.allow,
        protected=p.protected,
        unprotect=p.unprotect,
        network_commands=p.network_commands,
        base=base,
    )


def _sandbox_layer(source: ProfileSource, sandbox: str) -> list[Layer]:
    section = source.profile.sandboxes.get(sandbox)
    if section is None or section.empty:
        return []
    return [_restriction_layer(section, source.scope, f"{source.label} (for {sandbox} sandboxes)")]


def compose(
    *,
    base: ProfileSource,
    globals_: Sequence[ProfileSource] = (),
    agent: ProfileSource | None = None,
    run: Restriction | None = None,
    sandbox: str = "",
) -> EffectivePolicy:
    layers: list[Layer] = []
    for g in globals_:
        layers.append(_profile_layer(g, base=False))
        layers += _sandbox_layer(g, sandbox)
    layers.append(_profile_layer(base, base=True))
    layers += _sandbox_layer(base, sandbox)
    if agent is not None:
        layers.append(_restriction_layer(agent.profile.as_restriction(), agent.scope, agent.label))
        layers += _sandbox_layer(agent, sandbox)
    if run is not None and not run.empty:
        layers.append(_restriction_layer(run, "run", "the run's overrides"))
    return EffectivePolicy(layers)
