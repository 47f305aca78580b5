"""Reading a shell command the way the shell will run it: every command it starts.

`parse_command` splits a command line into `CommandPart`s — one per simple command the
shell (or a program the policy knows to start others) would run — so the policy can
judge every one of them: parts joined by `;`, `&&`, `||`, `|`, `|&`, `&` or newlines;
inside subshells `( … )`, groups `{ …; }`, `if`/`while`/`until`/`for`; inside command
substitutions `$( … )` and backticks, process substitutions `<( … )`/`>( … )`, here-
documents whose delimiter is unquoted and `${…}` expansions; the command strings of
`bash -c`/`sh -c` (and a shell reading a literal here-document or here-string); the
commands behind `env`, `exec`, `command`, `builtin`, `nohup`, `time`, `nice`,
`timeout`, `stdbuf`, `setsid`, `ionice`, `taskset`, `busybox`, `xargs`, `flock`,
`watch`, `sudo`/`doas`, `strace` and `find -exec`.

Quotes, escapes and `$'…'` are removed as the shell removes them, and brace
expansion (`{r,}m`) is done, so `"r"m`, `\\rm` and `{r,}m` are all `rm`. A word the
shell computes (`$X`, `$(…)`) is kept as "dynamic": it can be anything, or nothing.

What the policy cannot follow becomes a *problem* on the part (or on the whole
script) and the policy answers `ask`, never `allow`: unbalanced quotes or
parentheses, `eval`, `case`, `select`, `coproc`, function definitions, `[[ … ]]`,
arithmetic on names (`$((x))`, `(( … ))`, `let`: bash evaluates variables there as
code), array assignments, `${…}` beyond the plain forms, a computed program name or
`bash -c` string, a shell reading a script from a pipe, assignments to variables that
change which program runs or how (PATH, LD_PRELOAD, BASH_ENV, GIT_*, PAGER, …),
builtins that define or run code later (trap, alias, shopt, hash, enable, …), and
commands too long or too deeply nested to check.

Each part also carries the working folders it may run in: `cd` is followed, a `cd`
that may or may not have run adds a folder rather than replacing one, and a
subshell's `cd` ends with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from codeforge.domain.policy.paths import Location, Place, resolve
from codeforge.domain.policy.shell_model import (
    ROOT,
    UNKNOWN_PLACE,
    CommandPart,
    Redirect,
    ShellScript,
    Word,
)
from codeforge.domain.policy.shell_words import (
    WordBuilder,
    ansi_c,
    finish_word,
    matching,
)
from codeforge.domain.policy.shell_wrappers import (
    ASSIGNMENT,
    CODE_BUILTINS,
    NAME,
    WRAPPERS,
    risky_variable,
)

__all__ = ["CommandPart", "Redirect", "ShellScript", "Word", "parse_command", "risky_variable"]

MAX_COMMAND_CHARS = 64 * 1024
MAX_PARTS = 256
MAX_DEPTH = 12
MAX_CWDS = 8


def parse_command(command: str) -> ShellScript:
    """Every command `command` starts, and what the policy cannot follow in it."""
    if len(command) > MAX_COMMAND_CHARS:
        return ShellScript(
            (), (f"the command is longer than {MAX_COMMAND_CHARS} characters: too long to check",)
        )
    if "\0" in command:
        return ShellScript((), ("the command holds a NUL character",))
    shared = _Shared()
    _Parser(command, shared, depth=0, via=(), cwds=[ROOT]).parse_list(None)
    return ShellScript(tuple(shared.parts), tuple(dict.fromkeys(shared.problems)))


KEYWORDS = frozenset(
    {"if", "then", "elif", "else", "fi", "while", "until", "do", "done", "for", "{", "}", "!"}
)
UNREADABLE_KEYWORDS = {
    "case": "`case`",
    "select": "`select`",
    "function": "a function definition",
    "coproc": "`coproc`",
    "[[": "`[[ … ]]` (bash evaluates variables in it as arithmetic)",
    "]]": "`[[ … ]]`",
    "esac": "`case`",
}
_ARRAY_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\[")
_NUMERIC_ARITHMETIC = re.compile(r"[0-9\s+\-*/%()<>=!&|^~?:,]*")
# ${name}, ${#name}, ${name:-word}, ${name%pattern}, ... with a plain word.
_PLAIN_EXPANSION = re.compile(
    r"#?(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])"
    r"(?:(?::?[-=+?]|##?|%%?|//?|\^\^?|,,?)[^$`'\"\\\[(){}]*)?"
)
_REDIRECT_OPS = ("&>>", "&>", "<<<", "<<-", "<<", "<>", "<&", ">>", ">&", ">|", "<", ">")
_CONTROL_OPS = (";;&", ";;", ";&", "&&", "||", "|&", ";", "|", "&")
_WORD_END = frozenset(" \t\n;&|()<>")
_REDIRECT_START = frozenset("0123456789<>&{")
# A word without quotes, escapes, expansions, globs, braces or a leading tilde.
_PLAIN_WORD = re.compile(r"[^\s;&|()<>'\"\\$`*?\[{}~]+")
_CLOSERS = {
    "if": ("if", "fi"),
    "loop": ("while/until/for", "do … done"),
    "do": ("do", "done"),
    "{": ("{", "}"),
}


@dataclass
class _Shared:
    parts: list[CommandPart] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class _RedirectBuilder:
    op: str
    fd: str
    target: Word | None = None
    # Here-documents: the delimiter, whether the body is literal, and the body once read.
    delimiter: str = ""
    literal_body: bool = True
    strip_tabs: bool = False
    body: str | None = None

    def frozen(self) -> Redirect:
        return Redirect(op=self.op, target=self.target, fd=self.fd)


@dataclass
class _Builder:
    argv: list[Word] = field(default_factory=list)
    assignments: list[tuple[str, Word]] = field(default_factory=list)
    redirects: list[_RedirectBuilder] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.argv or self.assignments or self.redirects or self.problems)


class _Parser:
    def __init__(
        self,
        src: str,
        shared: _Shared,
        *,
        depth: int,
        via: tuple[str, ...],
        cwds: list[Location],
        start: int = 0,
    ) -> None:
        self.src = src
        self.n = len(src)
        self.pos = start
        self.shared = shared
        self.depth = depth
        self.via = via
        self.cwds = list(cwds)
        self.pending: list[_RedirectBuilder] = []

    @property
    def parts(self) -> list[CommandPart]:
        return self.shared.parts

    # -- reporting -------------------------------------------------------------------

    def problem(self, message: str) -> None:
        self.shared.problems.append(message)

    def child(self, src: str, via: str, start: int = 0) -> _Parser:
        return _Parser(
            src,
            self.shared,
            depth=self.depth + 1,
            via=(*self.via, via),
            cwds=self.cwds,
            start=start,
        )

    def sub_script(self, src: str, via: str) -> None:
        """Parse `src` as a script run by a child shell: its `cd`s do not leak back."""
        if self.depth >= MAX_DEPTH:
            self.problem("the command nests shells too deeply to check")
            return
        self.child(src, via).parse_list(None)

    # -- lists of commands -------------------------------------------------------------

    def parse_list(self, closer: str | None) -> None:
        """Commands until the end of the input or an unmatched `closer` (")")."""
        if self.depth > MAX_DEPTH:
            self.problem("the command nests too deeply to check")
            self.pos = self.n
            return
        cmd = _Builder()
        structure: list[str] = []
        while True:
            self.skip_blanks()
            if self.pos >= self.n:
                self.end_command(cmd)
                if closer is not None:
                    self.problem("a `(` or `$(` is never closed")
                self.check_structure(structure)
                return
            c = self.src[self.pos]
            if c == "#":
                newline = self.src.find("\n", self.pos)
                self.pos = self.n if newline < 0 else newline
                continue
            if c == "\n":
                self.pos += 1
                self.read_heredocs()  # before the command ends: `bash <<EOF` needs the body
                self.end_command(cmd)
                cmd = _Builder()
                continue
            if c == ")":
                self.pos += 1
                self.end_command(cmd)
                cmd = _Builder()
                if closer == ")":
                    self.check_structure(structure)
                    return
                self.problem("a `)` closes nothing")
                continue
            op = self.control_operator()
            if op:
                self.end_command(cmd)
                cmd = _Builder()
                if op.startswith(";;") or op == ";&":
                    self.problem("`;;` outside a `case` the policy can read")
                continue
            if c == "(":
                self.subshell(cmd)
                cmd = _Builder()
                continue
            if self.redirect(cmd):
                continue
            before = self.pos
            words = self.word()
            if self.pos == before:  # cannot happen for valid input; never loop forever
                self.problem(f"an unexpected {c!r}")
                self.pos += 1
                continue
            for word in words:
                if cmd.empty and word.raw in KEYWORDS and word.text == word.raw:
                    self.keyword(word.raw, structure)
                    continue
                if cmd.empty and word.raw in UNREADABLE_KEYWORDS:
                    self.problem(
                        f"uses {UNREADABLE_KEYWORDS[word.raw]}, which the policy does not read"
                    )
                if not cmd.argv and self.assignment(cmd, word):
                    continue
                cmd.argv.append(word)

    def subshell(self, cmd: _Builder) -> None:
        if self.src.startswith("((", self.pos):
            self.problem("uses `(( … ))`: bash evaluates variables in it as arithmetic")
        elif not cmd.empty:
            self.problem("defines a function or an array, which the policy does not read")
        self.end_command(cmd)
        self.pos += 1
        saved = list(self.cwds)
        self.parse_list(")")
        self.cwds = saved

    def keyword(self, word: str, structure: list[str]) -> None:
        if word in ("if", "while", "until", "{"):
            structure.append({"if": "if", "{": "{"}.get(word, "loop"))
        elif word == "for":
            self.for_header()
            structure.append("loop")
        elif word in ("then", "elif", "else"):
            if not structure or structure[-1] != "if":
                self.problem(f"`{word}` outside an `if`")
        elif word == "do":
            if structure and structure[-1] == "loop":
                structure[-1] = "do"
            else:
                self.problem("`do` outside a loop")
        else:
            expected = {"fi": "if", "done": "do", "}": "{"}.get(word)
            if expected is not None:
                if structure and structure[-1] == expected:
                    structure.pop()
                else:
                    self.problem(f"`{word}` closes nothing")

    def for_header(self) -> None:
        """`for NAME [in WORDS…]` up to `;` or a newline (the words' substitutions count)."""
        self.skip_blanks()
        if self.src.startswith("((", self.pos):
            self.problem("uses `for (( … ))`: bash evaluates variables in it as arithmetic")
            return
        names = self.word()
        if not names or names[0].text is None or not NAME.fullmatch(names[0].text):
            self.problem("a `for` loop the policy cannot read")
            return
        if risky_variable(names[0].text):
            self.problem(f"a `for` loop sets {names[0].text}, which changes what commands run")
        while True:
            self.skip_blanks()
            if self.pos >= self.n or self.src[self.pos] in ";\n":
                if self.pos < self.n and self.src[self.pos] == ";":
                    self.pos += 1
                return
            if self.src[self.pos] in _WORD_END:
                self.problem("a `for` loop the policy cannot read")
                return
            self.word()  # `in` and the words; substitutions among them are recorded

    def check_structure(self, structure: list[str]) -> None:
        for opened in structure:
            what, closing = _CLOSERS[opened]
            self.problem(f"a `{what}` without `{closing}`")

    def end_command(self, cmd: _Builder) -> None:
        if not cmd.empty:
            self.finish(cmd)

    # -- tokens --------------------------------------------------------------------------

    def skip_blanks(self) -> None:
        while self.pos < self.n:
            c = self.src[self.pos]
            if c in " \t":
                self.pos += 1
            elif c == "\\" and self.src.startswith("\\\n", self.pos):
                self.pos += 2
            else:
                return

    def control_operator(self) -> str:
        if self.src[self.pos] not in ";&|":
            return ""
        for op in _CONTROL_OPS:
            if self.src.startswith(op, self.pos):
                if op == "&" and self.src.startswith("&>", self.pos):
                    return ""
                self.pos += len(op)
                return op
        return ""

    def redirect(self, cmd: _Builder) -> bool:
        """A redirection at the cursor, added to `cmd`; False when there is none."""
        if self.src[self.pos] not in _REDIRECT_START:
            return False
        start = self.pos
        j = start
        while j < self.n and self.src[j].isdigit():
            j += 1
        fd = self.src[start:j]
        if j == start and self.src.startswith("{", j):
            close = self.src.find("}", j)
            if (
                close > j
                and NAME.fullmatch(self.src[j + 1 : close])
                and (self.src.startswith((">", "<"), close + 1))
            ):
                self.problem(
                    "uses a named file descriptor `{name}>`, which the policy does not read"
                )
                fd, j = self.src[j : close + 1], close + 1
        if self.src.startswith(("<(", ">("), j) and j == start:
            return False  # a process substitution: a word
        op = next((o for o in _REDIRECT_OPS if self.src.startswith(o, j)), "")
        if not op:
            return False
        if fd and op.startswith("&"):
            return False  # "2&>x" is not a redirection of fd 2; let the word end there
        self.pos = j + len(op)
        builder = _RedirectBuilder(op=op, fd=fd)
        self.skip_blanks()
        if self.pos >= self.n or (
            self.src[self.pos] in _WORD_END and not self.src.startswith(("<(", ">("), self.pos)
        ):
            self.problem(f"a redirection `{op}` without a target")
            cmd.redirects.append(builder)
            return True
        if op in ("<<", "<<-"):
            start_word = self.pos
            words = self.word()
            raw = self.src[start_word : self.pos]
            builder.delimiter = (words[0].text or raw) if words else raw
            # A quoted delimiter makes the body literal; else `$(…)` in it runs.
            builder.literal_body = any(q in raw for q in "'\"\\")
            builder.strip_tabs = op == "<<-"
            self.pending.append(builder)
            if words and words[0].text is None:
                self.problem("a here-document delimiter the policy cannot read")
        else:
            words = self.word()
            if len(words) != 1:
                self.problem(f"a redirection `{op}` to several words")
            builder.target = words[0] if words else None
        cmd.redirects.append(builder)
        return True

    def read_heredocs(self) -> None:
        """The bodies of the here-documents opened on the line just ended."""
        pending, self.pending = self.pending, []
        for r in pending:
            lines: list[str] = []
            while self.pos < self.n:
                newline = self.src.find("\n", self.pos)
                end = self.n if newline < 0 else newline
                line = self.src[self.pos : end]
                self.pos = end + 1 if newline >= 0 else self.n
                check = line.lstrip("\t") if r.strip_tabs else line
                if check == r.delimiter:
                    break
                lines.append(check)
            r.body = "\n".join(lines) + ("\n" if lines else "")
            if not r.literal_body:
                # Unquoted delimiter: `$(…)` and backticks in the body run.
                expansions = _Parser(
                    r.body,
                    self.shared,
                    depth=self.depth + 1,
                    via=(*self.via, "<<here-doc"),
                    cwds=self.cwds,
                )
                r.literal_body = not expansions.expansions_only()

    # -- words ----------------------------------------------------------------------------

    def word(self) -> list[Word]:
        """The word at the cursor (several after brace expansion)."""
        start = self.pos
        plain = _PLAIN_WORD.match(self.src, start)
        if plain is not None:
            end = plain.end()
            if end >= self.n or self.src[end] in _WORD_END:
                # Nothing to remove or expand: the common case, read at once.
                self.pos = end
                return [Word(raw=plain.group(), text=plain.group())]
        b = WordBuilder()
        home = False
        if self.src.startswith("~", self.pos):
            end = self.pos + 1
            while end < self.n and self.src[end] not in _WORD_END and self.src[end] != "/":
                end += 1
            if end == self.pos + 1:
                home = True
            else:
                b.dynamic = True  # ~user, ~+, ~-
        if self.src.startswith(("<(", ">("), self.pos):
            self.pos += 2
            self.substitution(")", "<(…)")
            b.dynamic = True
        while self.pos < self.n:
            c = self.src[self.pos]
            if c in _WORD_END:
                break
            if c == "\\":
                if self.src.startswith("\\\n", self.pos):
                    self.pos += 2
                    continue
                if self.pos + 1 < self.n:
                    b.add(self.src[self.pos + 1], True)
                    self.pos += 2
                else:
                    b.add("\\", True)
                    self.pos += 1
            elif c == "'":
                end = self.src.find("'", self.pos + 1)
                if end < 0:
                    self.problem("a ' quote is never closed")
                    b.add(self.src[self.pos + 1 :], True)
                    self.pos = self.n
                    b.dynamic = True
                    break
                b.add(self.src[self.pos + 1 : end], True)
                self.pos = end + 1
            elif c == '"':
                self.pos += 1
                if not self.double_quoted(b):
                    break
            elif c == "$":
                self.dollar(b, quoted=False)
            elif c == "`":
                self.backtick()
                b.dynamic = True
            else:
                b.add(c, False)
                self.pos += 1
        raw = self.src[start : self.pos]
        return finish_word(raw, b, home)

    def double_quoted(self, b: WordBuilder) -> bool:
        """Inside "…" (the cursor after the opening quote); False if it never closes."""
        while self.pos < self.n:
            c = self.src[self.pos]
            if c == '"':
                self.pos += 1
                return True
            if c == "\\" and self.pos + 1 < self.n and self.src[self.pos + 1] in '$`"\\\n':
                if self.src[self.pos + 1] != "\n":
                    b.add(self.src[self.pos + 1], True)
                self.pos += 2
            elif c == "$":
                self.dollar(b, quoted=True)
            elif c == "`":
                self.backtick()
                b.dynamic = True
            else:
                b.add(c, True)
                self.pos += 1
        self.problem('a " quote is never closed')
        b.dynamic = True
        return False

    def expansions_only(self) -> bool:
        """Scan a here-document body for expansions; True if it has any."""
        b = WordBuilder()
        while self.pos < self.n:
            c = self.src[self.pos]
            if c == "\\" and self.pos + 1 < self.n and self.src[self.pos + 1] in "$`\\":
                self.pos += 2
            elif c == "$":
                self.dollar(b, quoted=True)
            elif c == "`":
                self.backtick()
                b.dynamic = True
            else:
                self.pos += 1
        return b.dynamic

    def dollar(self, b: WordBuilder, *, quoted: bool) -> None:
        src, pos = self.src, self.pos
        nxt = src[pos + 1] if pos + 1 < self.n else ""
        if src.startswith("$((", pos):
            end = matching(src, pos + 3, "(", ")", depth=2)
            if end < 0:
                self.problem("a `$((` is never closed")
                self.pos = self.n
            else:
                inner = src[pos + 3 : end - 1]
                if not _NUMERIC_ARITHMETIC.fullmatch(inner):
                    self.problem(
                        "uses `$(( … ))` on names: bash evaluates them as arithmetic, "
                        "which can run commands"
                    )
                self.pos = end + 1
            b.dynamic = True
        elif nxt == "(":
            self.pos += 2
            self.substitution(")", "$(…)")
            b.dynamic = True
        elif nxt == "{":
            end = matching(src, pos + 2, "{", "}", depth=1)
            if end < 0:
                self.problem("a `${` is never closed")
                self.pos = self.n
            else:
                inner = src[pos + 2 : end]
                if not _PLAIN_EXPANSION.fullmatch(inner):
                    self.problem(
                        f"uses `${{{inner[:40]}}}`, an expansion the policy does not follow"
                    )
                self.pos = end + 1
            b.dynamic = True
        elif nxt == "'" and not quoted:
            self.pos += 2
            text, closed = ansi_c(src, self.pos)
            if closed < 0:
                self.problem("a $' quote is never closed")
                self.pos = self.n
                b.dynamic = True
            else:
                b.add(text, True)
                self.pos = closed + 1
        elif nxt == '"' and not quoted:
            self.pos += 2
            self.double_quoted(b)
        elif nxt and (nxt.isalnum() or nxt in "_@*#?$!-"):
            self.pos += 2
            if nxt.isalpha() or nxt == "_":
                while self.pos < self.n and (src[self.pos].isalnum() or src[self.pos] == "_"):
                    self.pos += 1
            b.dynamic = True
        else:
            b.add("$", quoted)
            self.pos += 1

    def substitution(self, closer: str, via: str) -> None:
        """`$( … )`, `<( … )`: the commands inside run first, in a subshell."""
        saved = list(self.cwds)
        inner = _Parser(
            self.src,
            self.shared,
            depth=self.depth + 1,
            via=(*self.via, via),
            cwds=self.cwds,
            start=self.pos,
        )
        inner.parse_list(closer)
        self.pos = inner.pos
        self.cwds = saved

    def backtick(self) -> None:
        j = self.pos + 1
        out: list[str] = []
        while j < self.n and self.src[j] != "`":
            if self.src[j] == "\\" and j + 1 < self.n:
                nxt = self.src[j + 1]
                out.append(nxt if nxt in "`$\\" else "\\" + nxt)
                j += 2
                continue
            out.append(self.src[j])
            j += 1
        if j >= self.n:
            self.problem("a ` quote is never closed")
            self.pos = self.n
            return
        self.pos = j + 1
        self.sub_script("".join(out), "`…`")

    # -- assignments and simple commands -----------------------------------------------

    def assignment(self, cmd: _Builder, word: Word) -> bool:
        match = ASSIGNMENT.match(word.raw)
        if match is None:
            if _ARRAY_ASSIGNMENT.match(word.raw) and "]=" in word.raw:
                cmd.problems.append(
                    "assigns an array element: bash evaluates the index as arithmetic"
                )
                return True
            return False
        name = match.group(1)
        value_raw = word.raw[match.end() :]
        value = Word(raw=value_raw, text=None if word.text is None else word.text[match.end() :])
        cmd.assignments.append((name, value))
        return True

    def finish(self, cmd: _Builder) -> None:
        """Emit the parts a simple command runs, following wrappers and `cd`."""
        redirects = [r.frozen() for r in cmd.redirects]
        for name, _ in cmd.assignments:
            if risky_variable(name):
                cmd.problems.append(f"sets {name}, which changes what commands run or how")
        argv = list(cmd.argv)
        # A shell reading its script from a here-document or here-string.
        stdin_script = next(
            (
                r.body if r.op in ("<<", "<<-") else (r.target.text if r.target else None)
                for r in reversed(cmd.redirects)
                if r.op in ("<<", "<<-", "<<<")
                and (r.literal_body if r.op != "<<<" else r.target is not None)
            ),
            None,
        )
        self.unwrap(argv, cmd.assignments, redirects, cmd.problems, (), stdin_script, 0)

    def emit(
        self,
        argv: list[Word],
        assignments: list[tuple[str, Word]],
        redirects: list[Redirect],
        problems: list[str],
        via: tuple[str, ...],
        open_args: bool = False,
    ) -> None:
        if len(self.shared.parts) >= MAX_PARTS:
            self.problem(f"the command runs more than {MAX_PARTS} commands: too many to check")
            return
        self.shared.parts.append(
            CommandPart(
                argv=tuple(argv),
                assignments=tuple(assignments),
                redirects=tuple(redirects),
                cwds=tuple(self.cwds),
                problems=tuple(dict.fromkeys(problems)),
                via=(*self.via, *via),
                open_args=open_args,
            )
        )

    def unwrap(
        self,
        argv: list[Word],
        assignments: list[tuple[str, Word]],
        redirects: list[Redirect],
        problems: list[str],
        via: tuple[str, ...],
        stdin_script: str | None,
        depth: int,
    ) -> None:
        if depth > MAX_DEPTH:
            problems.append("wrappers nest too deeply to check")
            self.emit(argv, assignments, redirects, problems, via)
            return
        # `sudo X=1 cmd` sets X for cmd; after other wrappers the word would be a program
        # name that fails to run. Read it as an assignment either way: never less strict.
        while depth and argv and (match := ASSIGNMENT.match(argv[0].raw)) is not None:
            if risky_variable(match.group(1)):
                problems.append(f"sets {match.group(1)}, which changes what commands run or how")
            assignments = [*assignments, (match.group(1), Word(raw=argv[0].raw[match.end() :]))]
            argv = argv[1:]
        if not argv:
            self.emit(argv, assignments, redirects, problems, via)
            return
        first = argv[0]
        if first.text is None:
            problems.append("the program name is computed by the shell")
            self.emit(argv, assignments, redirects, problems, via)
            return
        if first.glob:
            problems.append("the program name is a file name pattern")
            self.emit(argv, assignments, redirects, problems, via)
            return
        name = first.text.rsplit("/", 1)[-1]
        handler = WRAPPERS.get(name)
        if handler is not None:
            handler(self, name, argv, assignments, redirects, problems, via, stdin_script, depth)
            return
        if name in CODE_BUILTINS:
            problems.append(CODE_BUILTINS[name])
        elif name in ("declare", "typeset", "local", "readonly", "export"):
            self.declaration(argv, assignments, problems)
        elif name == "printf":
            for i, w in enumerate(argv[:-1]):
                if w.text == "-v":
                    self.declare_name(argv[i + 1], assignments, problems)
        elif name == "read":
            for w in argv[1:]:
                if w.text is not None and NAME.fullmatch(w.text):
                    self.declare_name(w, assignments, problems)
        self.emit(argv, assignments, redirects, problems, via)
        if name in ("cd", "pushd", "popd"):
            self.change_directory(name, argv)

    def declaration(
        self, argv: list[Word], assignments: list[tuple[str, Word]], problems: list[str]
    ) -> None:
        for w in argv[1:]:
            if w.text is None:
                problems.append("declares a variable whose name is computed")
                continue
            if w.text.startswith(("-", "+")):
                if set(w.text[1:]) - set("xrgpt"):
                    problems.append(
                        f"`{argv[0].text} {w.text}` declares functions, arrays, integers or "
                        "references, which the policy does not follow"
                    )
                continue
            self.declare_name(w, assignments, problems)

    def declare_name(
        self, word: Word, assignments: list[tuple[str, Word]], problems: list[str]
    ) -> None:
        text = word.text or ""
        name = text.split("=", 1)[0]
        if word.text is None or not NAME.fullmatch(name):
            problems.append(f"sets `{word.raw}`, a variable the policy cannot name")
            return
        if risky_variable(name):
            problems.append(f"sets {name}, which changes what commands run or how")
        assignments.append((name, Word(raw=word.raw, text=text.partition("=")[2])))

    def change_directory(self, name: str, argv: list[Word]) -> None:
        targets = [w for w in argv[1:] if not (w.text or "").startswith("-") or w.text == "-"]
        if name == "popd":
            new = [UNKNOWN_PLACE]
        elif not targets:
            new = [Location(Place.HOME, "~")]
        else:
            target = targets[0]
            if not target.literal or target.text == "-":
                new = [UNKNOWN_PLACE]
            else:
                new = [resolve(target.text or "", cwd, home=target.home) for cwd in self.cwds]
        # `cd` may not have run (`cd x || true`): the old folders stay possible.
        merged = list(dict.fromkeys([*self.cwds, *new]))
        if len(merged) > MAX_CWDS:
            merged = [*merged[: MAX_CWDS - 1], UNKNOWN_PLACE]
        self.cwds = merged
