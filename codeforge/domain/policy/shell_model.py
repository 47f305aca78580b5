"""What the shell reader hands the policy: words, redirections, parts, scripts."""

from __future__ import annotations

from msgspec import Struct

from codeforge.domain.policy.paths import Location, Place

__all__ = ["ROOT", "UNKNOWN_PLACE", "CommandPart", "Redirect", "ShellScript", "Word"]

ROOT = Location(Place.WORKSPACE, "")
UNKNOWN_PLACE = Location(Place.UNKNOWN)


class Word(Struct, frozen=True):
    """One word of a command. `text` is its value after quote removal, or None when the
    shell computes (part of) it; `glob` says the shell may expand it to file names;
    `home` that it starts with an unquoted `~`."""

    raw: str
    text: str | None = None
    glob: bool = False
    home: bool = False

    @property
    def literal(self) -> bool:
        return self.text is not None and not self.glob


class Redirect(Struct, frozen=True):
    op: str
    target: Word | None = None
    fd: str = ""

    @property
    def duplicates(self) -> bool:
        """`2>&1`, `>&-`: a file descriptor, not a file."""
        target = self.target
        return (
            self.op in (">&", "<&")
            and target is not None
            and target.text is not None
            and (target.text == "-" or target.text.rstrip("-").isdigit())
        )

    @property
    def writes(self) -> bool:
        return self.op in (">", ">>", ">|", "<>", "&>", "&>>", ">&") and not self.duplicates

    @property
    def reads(self) -> bool:
        return self.op in ("<", "<&") and not self.duplicates


class CommandPart(Struct, frozen=True):
    """One simple command as it will run (wrappers such as `env` or `timeout` removed)."""

    argv: tuple[Word, ...] = ()
    assignments: tuple[tuple[str, Word], ...] = ()
    redirects: tuple[Redirect, ...] = ()
    # The folders it may run in (more than one after a `cd` that may not have run).
    cwds: tuple[Location, ...] = (ROOT,)
    problems: tuple[str, ...] = ()
    # What started it, outermost first: ("bash -c",), ("$(…)", "xargs").
    via: tuple[str, ...] = ()
    # Arguments are added when it runs (xargs, find -exec … +).
    open_args: bool = False

    @property
    def program(self) -> str:
        return (self.argv[0].text or "") if self.argv else ""

    def shown(self, limit: int = 120) -> str:
        words = [f"{name}={value.raw}" for name, value in self.assignments]
        words += [w.raw for w in self.argv]
        words += [f"{r.fd}{r.op}{r.target.raw if r.target else ''}" for r in self.redirects]
        text = " ".join(words) or "(redirection only)"
        return text if len(text) <= limit else text[: limit - 1] + "…"


class ShellScript(Struct, frozen=True):
    parts: tuple[CommandPart, ...]
    # Why the command as a whole cannot be read (syntax the shell would refuse, limits).
    problems: tuple[str, ...] = ()
