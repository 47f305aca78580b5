"""Which sandbox runs get, decided once at start (ARCHITECTURE.md, "Words and defaults").

`sandbox.kind: auto` means bwrap where bubblewrap works on this machine, else mount
with a warning (mount has no isolation beyond path checks). An explicit kind must work
as configured. A policy that demands isolation (`required`, usually `ISOLATION`) refuses
an adapter lacking any of those capability flags — in practice, mount.

A choice that cannot be honoured does not stop the process: it becomes a `problem`,
reported at start, by the "sandbox" readiness probe (`/health/ready`) and on the
dashboard, with how to fix it, instead of every run failing late.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import structlog
from msgspec import Struct

from codeforge.domain.runs import SandboxMode
from codeforge.ports.sandbox import SandboxFactory, SandboxUnavailable

log = structlog.get_logger("codeforge.sandbox")

AUTO = "auto"
FIXES = (
    "install bubblewrap (`apt-get install bubblewrap`, or scripts/install-test-system-deps.sh), "
    "configure docker (sandbox.kind: docker), or choose a policy that does not demand isolation"
)


class SandboxChoice(Struct, frozen=True, kw_only=True):
    """The sandbox kind runs get by default, and what is wrong with it, if anything."""

    kind: SandboxMode | None
    """The chosen kind; None when no configured kind can run here."""
    warnings: tuple[str, ...] = ()
    """Worth an operator's attention, but runs can start (auto fell back to mount)."""
    problem: str | None = None
    """Runs cannot start as configured: what is wrong and how to fix it."""

    @property
    def usable(self) -> bool:
        return self.kind is not None and self.problem is None


async def choose_sandbox(
    kind: str,
    factories: Mapping[SandboxMode, SandboxFactory],
    *,
    required: Collection[str] = (),
) -> SandboxChoice:
    """Resolve `kind` ("auto" or a SandboxMode value) against the factories available.

    Each factory's `check()` is called at most once here (and remembers its answer), so
    bwrap is probed once per process. Warnings and problems are also logged.
    """
    warnings: list[str] = []
    if kind == AUTO:
        chosen, reason = await _auto(factories)
        if chosen is None:
            return _report(SandboxChoice(kind=None, problem=reason))
        if reason:
            warnings.append(reason)
    else:
        chosen = SandboxMode(kind)
        factory = factories.get(chosen)
        if factory is None:
            problem = f"sandbox.kind is {kind}, but this installation has no {kind} sandbox"
            return _report(SandboxChoice(kind=None, problem=problem))
        try:
            await factory.check()
        except SandboxUnavailable as e:
            problem = f"sandbox.kind is {kind}, but it cannot run here: {e}"
            return _report(SandboxChoice(kind=None, problem=problem))
    missing = factories[chosen].capabilities.missing(required)
    unmet: str | None = None
    if missing:
        unmet = (
            f"the policy demands isolation ({', '.join(missing)}), which the {chosen.value} "
            f"sandbox does not provide; runs cannot start until you {FIXES}"
        )
    return _report(SandboxChoice(kind=chosen, warnings=tuple(warnings), problem=unmet))


async def _auto(factories: Mapping[SandboxMode, SandboxFactory]) -> tuple[SandboxMode | None, str]:
    """bwrap if it works, else mount; the second item says why bwrap was passed over."""
    why_not = "no bwrap sandbox is installed"
    bwrap = factories.get(SandboxMode.BWRAP)
    if bwrap is not None:
        try:
            await bwrap.check()
        except SandboxUnavailable as e:
            why_not = str(e)
        else:
            return SandboxMode.BWRAP, ""
    fallback = (
        f"sandbox.kind is auto and bubblewrap does not work here ({why_not}); runs use the "
        "mount sandbox, which has NO isolation beyond path checks: commands can read and "
        "write the whole host and reach the network"
    )
    if SandboxMode.MOUNT in factories:
        return SandboxMode.MOUNT, fallback
    return None, f"sandbox.kind is auto, but neither bwrap nor mount is available ({why_not})"


def _report(choice: SandboxChoice) -> SandboxChoice:
    for warning in choice.warnings:
        log.warning("sandbox fallback", detail=warning, kind=choice.kind)
    if choice.problem:
        log.error("sandbox unusable", detail=choice.problem, kind=choice.kind)
    elif choice.kind is not None:
        log.info("sandbox chosen", kind=choice.kind.value)
    return choice


class SandboxReadiness:
    """The "sandbox" readiness probe: down, with the fix, while the choice has a problem."""

    name = "sandbox"

    def __init__(self, choice: SandboxChoice) -> None:
        self._choice = choice

    async def check(self) -> str | None:
        if self._choice.problem:
            raise SandboxUnavailable(self._choice.problem)
        return self._choice.kind.value if self._choice.kind else None
