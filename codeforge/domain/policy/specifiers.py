"""Tool specifiers: what a rule names — `Read`, `Edit(docs/**/*.md)`, `Bash(git status:*)`.

    Read            every read (read_file, list_dir, glob, grep; files a command reads)
    Read(src/**)    reads of paths the pattern matches (see `paths` for patterns)
    Edit(...)       every change to a file: edit, write_file, and files commands write
    Write(...)      creating or replacing whole files: write_file and `>` redirections…
                    (commands' writes count as both Edit and Write)
    Bash            every command
    Bash(npm run build)   exactly this command (words compared after quote removal)
    Bash(git status:*)    this command with any further arguments (whole words:
                          `git statusx` does not match)
    Network         every call that reaches the network: network tools, and commands
                    the policy knows as network clients (`network_commands`)

A Bash specifier names ONE command; each part of a compound command is matched on its
own (see `shell`). Rules that stop a command (deny, ask) also catch `/usr/bin/rm`
for `rm` and say "maybe" when the shell computes a word the rule depends on; rules
that allow a command need every word it depends on written out.
"""

from __future__ import annotations

import difflib
import fnmatch
import posixpath
import shlex
from enum import Enum, StrEnum

from codeforge.domain.policy.paths import Location, PathPattern, PatternError
from codeforge.domain.policy.shell import CommandPart

__all__ = ["Kind", "Match", "SpecifierError", "ToolSpecifier"]


class Kind(StrEnum):
    READ = "Read"
    EDIT = "Edit"
    WRITE = "Write"
    BASH = "Bash"
    NETWORK = "Network"


class Match(Enum):
    NO = 0
    MAYBE = 1
    YES = 2


class SpecifierError(ValueError):
    pass


_OPERATORS = (";", "&", "|", ">", "<", "`", "$(", "\n")


class ToolSpecifier:
    """A parsed, compiled specifier. `text` is as written, for messages and decisions."""

    __slots__ = ("kind", "path", "prefix", "text", "tokens")

    def __init__(
        self,
        kind: Kind,
        text: str,
        *,
        path: PathPattern | None = None,
        tokens: tuple[str, ...] = (),
        prefix: bool = False,
    ) -> None:
        self.kind = kind
        self.text = text
        self.path = path
        self.tokens = tokens
        self.prefix = prefix

    @classmethod
    def parse(cls, text: str) -> ToolSpecifier:
        if not isinstance(text, str) or not text.strip():
            raise SpecifierError("a rule cannot be empty")
        text = text.strip()
        name, paren, rest = text.partition("(")
        name = name.strip()
        try:
            kind = Kind(name)
        except ValueError:
            known = [k.value for k in Kind]
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.5) or [
                k for k in known if k.lower() == name.lower()
            ]
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SpecifierError(
                f"{text!r} is not a rule: it starts with {name!r}{hint}; a rule is "
                "Read, Edit, Write, Bash or Network, optionally with a pattern in parentheses"
            ) from None
        if not paren:
            return cls(kind, text)
        if not rest.endswith(")"):
            raise SpecifierError(f"{text!r}: the pattern's parentheses are not closed")
        pattern = rest[:-1]
        if not pattern.strip():
            raise SpecifierError(f"{text!r}: empty parentheses; write {name} alone for all")
        if kind is Kind.NETWORK:
            raise SpecifierError(f"{text!r}: Network takes no pattern")
        if kind is Kind.BASH:
            return cls._command(text, pattern)
        try:
            path = PathPattern(pattern)
        except PatternError as e:
            raise SpecifierError(f"{text!r}: {e}") from None
        return cls(kind, text, path=path)

    @classmethod
    def _command(cls, text: str, pattern: str) -> ToolSpecifier:
        prefix = pattern.endswith(":*")
        body = pattern[:-2] if prefix else pattern
        if any(op in body for op in _OPERATORS):
            raise SpecifierError(
                f"{text!r}: a Bash rule names one command; `;` `&` `|` `<` `>` and "
                "substitutions are not allowed (each part of a compound command is checked "
                "on its own)"
            )
        if "*" in body:
            raise SpecifierError(
                f"{text!r}: `*` is only allowed as a trailing `:*` (a prefix rule, e.g. "
                "Bash(git diff:*))"
            )
        try:
            tokens = tuple(shlex.split(body))
        except ValueError as e:
            raise SpecifierError(f"{text!r}: the command cannot be read: {e}") from None
        if not tokens:
            raise SpecifierError(f"{text!r}: no command in the pattern")
        return cls(Kind.BASH, text, tokens=tokens, prefix=prefix)

    # -- paths -----------------------------------------------------------------------------

    def covers(self, location: Location) -> bool:
        """A path rule matches this place (a rule without a pattern matches every place)."""
        return self.path is None or self.path.matches(location)

    # -- commands --------------------------------------------------------------------------

    def admits(self, part: CommandPart) -> bool:
        """An allow rule lets this part run: every word it names is written out."""
        if not self.tokens:
            return True
        argv = part.argv
        if len(argv) < len(self.tokens):
            return False
        for token, word in zip(self.tokens, argv, strict=False):
            if not word.literal or word.text != token:
                return False
        return self.prefix or (len(argv) == len(self.tokens) and not part.open_args)

    def catches(self, part: CommandPart) -> Match:
        """A deny or ask rule stops this part: YES, NO, or MAYBE when the shell computes
        a word the answer depends on."""
        if not self.tokens:
            return Match.YES
        argv = part.argv
        if not argv:
            return Match.NO
        program = argv[0].text
        if program is None:
            return Match.MAYBE
        if program != self.tokens[0] and posixpath.basename(program) != self.tokens[0]:
            return Match.NO
        for i in range(1, len(self.tokens)):
            if i >= len(argv):
                return Match.MAYBE if part.open_args else Match.NO
            word = argv[i]
            if word.text is None:
                return Match.MAYBE
            if word.glob:
                # A pattern without a slash expands to names without one.
                token = self.tokens[i]
                if ("/" in token) <= ("/" in word.text) and fnmatch.fnmatchcase(token, word.text):
                    return Match.MAYBE
                return Match.NO
            if word.text != self.tokens[i]:
                return Match.NO
        if self.prefix:
            return Match.YES
        rest = argv[len(self.tokens) :]
        if not rest:
            return Match.MAYBE if part.open_args else Match.YES
        # Unquoted computed words may expand to nothing.
        return Match.MAYBE if all(w.text is None for w in rest) else Match.NO

    def __repr__(self) -> str:
        return f"ToolSpecifier({self.text!r})"
