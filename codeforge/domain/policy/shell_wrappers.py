"""What the shell reader knows about programs: which run other commands, and how.

`WRAPPERS` maps a program to how the command it runs is found: `env`, `exec`,
`command`, `builtin`, `nohup`, `time`, `nice`, `timeout`, `stdbuf`, `setsid`,
`ionice`, `taskset`, `unbuffer`, `busybox` are transparent (only the command they run
is judged); `sudo`, `doas`, `strace` are judged too; `xargs` and `find -exec` run a
command with arguments added at run time; `bash -c`, `sh -c`, `flock -c` and `watch`
run a string, which is read as a script of its own. Also here: builtins that define
or run code later, and variables whose assignment changes what later commands run.
"""

from __future__ import annotations

import re
from typing import Protocol

from codeforge.domain.policy.shell_model import CommandPart, Redirect, Word

__all__ = [
    "ASSIGNMENT",
    "CODE_BUILTINS",
    "NAME",
    "SHELLS",
    "WRAPPERS",
    "Parser",
    "risky_variable",
]

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "posh", "yash"})
# Builtins that define code or run it later, or change how later commands are found.
CODE_BUILTINS = {
    "eval": "`eval` runs a string as a command",
    "let": "`let` evaluates variables as arithmetic, which can run commands",
    "trap": "`trap` runs a command later",
    "alias": "`alias` changes what later commands mean",
    "unalias": "`unalias` changes what later commands mean",
    "shopt": "`shopt` changes how the shell reads what follows",
    "enable": "`enable` loads or hides builtins",
    "hash": "`hash` changes which program a name runs",
    "fc": "`fc` re-runs commands from history",
    "mapfile": "`mapfile` can call a command for each line",
    "readarray": "`readarray` can call a command for each line",
    "complete": "`complete` registers commands to run",
    "bind": "`bind` registers commands to run",
    "coproc": "`coproc`",
}
# Variables that change which program a command runs, or make it run other code.
RISKY_VARIABLES = frozenset(
    {
        "PATH", "HOME", "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "BASHOPTS", "PS4", "CDPATH",
        "PROMPT_COMMAND", "GLOBIGNORE", "PAGER", "EDITOR", "VISUAL", "BROWSER", "SHELL",
        "CONFIG_SHELL", "MAKE", "MAKEFLAGS", "CC", "CXX", "LD", "NODE_OPTIONS", "NODE_PATH",
        "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "MANPAGER", "LESSOPEN",
        "LESSCLOSE", "TMPDIR", "EXINIT", "VIMINIT", "ZDOTDIR", "INPUTRC",
    }
)  # fmt: skip
RISKY_PREFIXES = (
    "LD_", "DYLD_", "GIT_", "BASH_", "PYTHON", "PERL", "RUBY", "NPM_CONFIG_", "npm_config_",
    "XDG_", "SSH_", "GEM_", "BUNDLE_", "CARGO_", "RUSTC", "GO", "PIP_", "UV_", "POETRY_",
)  # fmt: skip
RISKY_SUFFIXES = ("_PAGER", "_EDITOR", "_ASKPASS", "_SHELL", "_OPTIONS", "_OPTS")
# Common settings that match a risky pattern but change only output or encoding.
HARMLESS_VARIABLES = frozenset(
    {
        "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONHASHSEED", "PYTHONIOENCODING",
        "PYTHONUTF8", "PYTHONFAULTHANDLER", "GOOS", "GOARCH", "GOMAXPROCS", "GOCACHE",
        "GIT_PAGER_IN_USE", "GIT_TERMINAL_PROMPT", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE",
    }
)  # fmt: skip

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\+?)=")


def risky_variable(name: str) -> bool:
    if not NAME.fullmatch(name):
        return True  # BASH_FUNC_x%% and friends: not a plain variable
    if name in HARMLESS_VARIABLES:
        return False
    return (
        name in RISKY_VARIABLES
        or name.startswith(RISKY_PREFIXES)
        or name.upper().endswith(RISKY_SUFFIXES)
    )


class Parser(Protocol):
    """What a wrapper needs from the shell reader."""

    @property
    def parts(self) -> list[CommandPart]: ...

    def problem(self, message: str) -> None: ...

    def sub_script(self, src: str, via: str) -> None: ...

    def emit(
        self,
        argv: list[Word],
        assignments: list[tuple[str, Word]],
        redirects: list[Redirect],
        problems: list[str],
        via: tuple[str, ...],
        open_args: bool = False,
    ) -> None: ...

    def unwrap(
        self,
        argv: list[Word],
        assignments: list[tuple[str, Word]],
        redirects: list[Redirect],
        problems: list[str],
        via: tuple[str, ...],
        stdin_script: str | None,
        depth: int,
    ) -> None: ...


class _Wrapper(Protocol):
    def __call__(
        self,
        p: Parser,
        name: str,
        argv: list[Word],
        assignments: list[tuple[str, Word]],
        redirects: list[Redirect],
        problems: list[str],
        via: tuple[str, ...],
        stdin_script: str | None,
        depth: int,
    ) -> None: ...


def _options(
    argv: list[Word],
    start: int,
    with_argument: frozenset[str],
    problems: list[str],
    *,
    attached: frozenset[str] = frozenset(),
    flags: frozenset[str] | None = None,
) -> int:
    """The index of the first word after the options at `start`.

    `with_argument`: options that take the next word ("-n", "--signal"); a long option
    may also carry it after "=". `attached`: short options whose value may be attached
    ("-n5"). `flags`: if given, the only other options allowed; others are problems.
    """
    i = start
    while i < len(argv):
        w = argv[i]
        if w.text is None:
            problems.append(f"`{argv[0].raw}` has a computed option")
            return len(argv)
        t = w.text
        if t == "--":
            return i + 1
        if not t.startswith("-") or t == "-":
            return i
        if t in with_argument:
            i += 2
            continue
        if t.startswith("--") and "=" in t and t.split("=", 1)[0] in with_argument:
            i += 1
            continue
        if not t.startswith("--") and t[:2] in attached and len(t) > 2:
            i += 1
            continue
        if (
            flags is not None
            and t not in flags
            and not (not t.startswith("--") and all(f"-{c}" in flags for c in t[1:]))
        ):
            problems.append(f"`{argv[0].raw}` with option `{t}`, which the policy does not know")
            return len(argv)
        i += 1
    return i


def _runner(
    with_argument: frozenset[str],
    *,
    positional: int = 0,
    attached: frozenset[str] = frozenset(),
    flags: frozenset[str] | None = None,
    checked: bool = False,
) -> _Wrapper:
    """A program that runs the command after its options (and `positional` words).
    `checked`: the runner is itself a command the rules must allow (sudo), else it is
    transparent (timeout, nice)."""

    def handle(
        p: Parser,
        name: str,
        argv: list[Word],
        assignments: list[tuple[str, Word]],
        redirects: list[Redirect],
        problems: list[str],
        via: tuple[str, ...],
        stdin_script: str | None,
        depth: int,
    ) -> None:
        i = _options(argv, 1, with_argument, problems, attached=attached, flags=flags)
        i += positional
        inner = argv[i:]
        if checked:
            p.emit(argv, assignments, list(redirects), list(problems), via)
            if inner:
                p.unwrap(inner, [], [], [], (*via, name), None, depth + 1)
            return
        if not inner:
            p.emit(argv, assignments, redirects, problems, via)
            return
        p.unwrap(inner, assignments, redirects, problems, (*via, name), stdin_script, depth + 1)

    return handle


def _env(
    p: Parser,
    name: str,
    argv: list[Word],
    assignments: list[tuple[str, Word]],
    redirects: list[Redirect],
    problems: list[str],
    via: tuple[str, ...],
    stdin_script: str | None,
    depth: int,
) -> None:
    i = 1
    assigned = list(assignments)
    while i < len(argv):
        w = argv[i]
        t = w.text
        if t is None:
            problems.append("`env` with a computed argument")
            break
        if t in ("-i", "-", "-0", "--null", "--ignore-environment", "-v", "--debug"):
            i += 1
        elif t in ("-u", "--unset"):
            i += 2
        elif t.startswith(("--unset=", "-u")):
            i += 1
        elif t == "--":
            i += 1
            break
        elif t.startswith("-"):
            problems.append(f"`env {t}` is an option the policy does not follow")
            i = len(argv)
        elif (match := ASSIGNMENT.match(w.raw)) is not None:
            if risky_variable(match.group(1)):
                problems.append(f"sets {match.group(1)}, which changes what commands run or how")
            assigned.append((match.group(1), Word(raw=w.raw[match.end() :])))
            i += 1
        elif "=" in t:
            problems.append(f"`env` sets `{w.raw}`, a variable the policy cannot name")
            i += 1
        else:
            break
    inner = argv[i:]
    if not inner:
        p.emit(argv, assigned, redirects, problems, via)
        return
    p.unwrap(inner, assigned, redirects, problems, (*via, "env"), stdin_script, depth + 1)


def _command(
    p: Parser,
    name: str,
    argv: list[Word],
    assignments: list[tuple[str, Word]],
    redirects: list[Redirect],
    problems: list[str],
    via: tuple[str, ...],
    stdin_script: str | None,
    depth: int,
) -> None:
    """`command [-p] cmd`, `builtin cmd`, `exec [-cl] [-a name] cmd`; `command -v x` only
    looks a name up."""
    rest = argv[1:]
    if name == "command" and rest and rest[0].text in ("-v", "-V"):
        p.emit(argv[:1], assignments, redirects, problems, via)
        return
    while rest and rest[0].text in ("-p", "-c", "-l", "--"):
        rest = rest[1:]
    if name == "exec" and rest and rest[0].text == "-a":
        rest = rest[2:]
    if not rest:
        # `exec >log`: only redirections.
        p.emit([], assignments, redirects, problems, via)
        return
    p.unwrap(rest, assignments, redirects, problems, (*via, name), stdin_script, depth + 1)


_SHELL_LONG = frozenset(
    {"--norc", "--noprofile", "--posix", "--login", "--noediting", "--verbose", "--restricted"}
)


def _shell(
    p: Parser,
    name: str,
    argv: list[Word],
    assignments: list[tuple[str, Word]],
    redirects: list[Redirect],
    problems: list[str],
    via: tuple[str, ...],
    stdin_script: str | None,
    depth: int,
) -> None:
    """`bash -c '…'` runs its string; `bash <<'EOF'` its here-document; `bash x.sh` a file."""
    i, command_string = 1, False
    while i < len(argv):
        t = argv[i].text
        if t is None:
            problems.append(f"`{name}` with a computed option")
            p.emit(argv, assignments, redirects, problems, via)
            return
        if t == "--" or t == "-":
            i += 1
            break
        if t in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            i += 2
            continue
        if t.startswith("--"):
            if t not in _SHELL_LONG:
                problems.append(f"`{name} {t}` is an option the policy does not know")
            i += 1
            continue
        if t[:1] in "-+" and len(t) > 1:
            if not t[1:].isalpha():
                problems.append(f"`{name} {t}` is an option the policy does not know")
            command_string = command_string or "c" in t[1:]
            i += 1
            continue
        break
    label = f"{name} -c"
    if command_string:
        if i >= len(argv):
            problems.append(f"`{name} -c` without a command")
        elif argv[i].text is None:
            problems.append(f"`{name} -c` runs a command string the shell computes")
        else:
            p.emit([], assignments, redirects, problems, via)
            p.sub_script(argv[i].text or "", label)
            return
        p.emit(argv, assignments, redirects, problems, via)
        return
    if i < len(argv):
        # `bash script.sh`: a program of its own, judged by the rules.
        p.emit(argv, assignments, redirects, problems, via)
        return
    if stdin_script is not None:
        p.emit([], assignments, redirects, problems, via)
        p.sub_script(stdin_script, f"{name} <<script")
        return
    problems.append(f"`{name}` runs a script from its standard input, which the policy cannot see")
    p.emit(argv, assignments, redirects, problems, via)


_XARGS_WITH_ARG = frozenset(
    {"-a", "-d", "-E", "-I", "-L", "-n", "-P", "-s", "--arg-file", "--delimiter", "--eof",
     "--replace", "--max-lines", "--max-args", "--max-procs", "--max-chars",
     "--process-slot-var"}
)  # fmt: skip
_XARGS_FLAGS = frozenset(
    {"-0", "-r", "-t", "-p", "-x", "-o", "--null", "--no-run-if-empty", "--verbose",
     "--interactive", "--exit", "--open-tty", "--show-limits", "--replace", "--eof",
     "-i", "-e", "-l"}
)  # fmt: skip


def _xargs(
    p: Parser,
    name: str,
    argv: list[Word],
    assignments: list[tuple[str, Word]],
    redirects: list[Redirect],
    problems: list[str],
    via: tuple[str, ...],
    stdin_script: str | None,
    depth: int,
) -> None:
    i = _options(
        argv,
        1,
        _XARGS_WITH_ARG,
        problems,
        attached=frozenset({"-a", "-d", "-E", "-I", "-L", "-n", "-P", "-s", "-i", "-e", "-l"}),
        flags=_XARGS_FLAGS,
    )
    inner = argv[i:] or [Word(raw="echo", text="echo")]
    p.emit([argv[0]], assignments, redirects, problems, via)
    saved = len(p.parts)
    p.unwrap(list(inner), [], [], [], (*via, "xargs"), None, depth + 1)
    _open(p, saved)


def _open(p: Parser, since: int) -> None:
    """Mark the parts emitted since `since` as getting arguments at run time."""
    for k in range(since, len(p.parts)):
        part = p.parts[k]
        p.parts[k] = CommandPart(
            argv=part.argv,
            assignments=part.assignments,
            redirects=part.redirects,
            cwds=part.cwds,
            problems=part.problems,
            via=part.via,
            open_args=True,
        )


def _find(
    p: Parser,
    name: str,
    argv: list[Word],
    assignments: list[tuple[str, Word]],
    redirects: list[Redirect],
    problems: list[str],
    via: tuple[str, ...],
    stdin_script: str | None,
    depth: int,
) -> None:
    """`find … -exec cmd {} ;`: find is a command, and so is each command it executes."""
    p.emit(argv, assignments, redirects, problems, via)
    i = 1
    while i < len(argv):
        if argv[i].text in ("-exec", "-execdir", "-ok", "-okdir"):
            j = i + 1
            while j < len(argv) and argv[j].text not in (";", "+"):
                j += 1
            inner = argv[i + 1 : j]
            if j >= len(argv):
                p.problem("`find -exec` without `;` or `+`")
            if inner:
                saved = len(p.parts)
                p.unwrap(list(inner), [], [], [], (*via, "find -exec"), None, depth + 1)
                _open(p, saved)
            i = j + 1
        else:
            i += 1


def _flock(
    p: Parser,
    name: str,
    argv: list[Word],
    assignments: list[tuple[str, Word]],
    redirects: list[Redirect],
    problems: list[str],
    via: tuple[str, ...],
    stdin_script: str | None,
    depth: int,
) -> None:
    i = _options(argv, 1, frozenset({"-w", "-E", "--timeout", "--conflict-exit-code"}), problems)
    rest = argv[i + 1 :]  # after the lock file
    if rest and rest[0].text in ("-c", "--command"):
        p.emit([argv[0]], assignments, redirects, problems, via)
        if len(rest) < 2 or rest[1].text is None:
            p.problem("`flock -c` runs a command string the policy cannot read")
        else:
            p.sub_script(rest[1].text or "", "flock -c")
        return
    if not rest:
        p.emit(argv, assignments, redirects, problems, via)
        return
    p.unwrap(list(rest), assignments, redirects, problems, (*via, "flock"), stdin_script, depth + 1)


def _watch(
    p: Parser,
    name: str,
    argv: list[Word],
    assignments: list[tuple[str, Word]],
    redirects: list[Redirect],
    problems: list[str],
    via: tuple[str, ...],
    stdin_script: str | None,
    depth: int,
) -> None:
    """`watch cmd args` runs `sh -c "cmd args"` (or the command itself with -x)."""
    with_arg = frozenset({"-n", "--interval", "-q", "--equexit", "-g"})
    i = _options(argv, 1, with_arg, problems, attached=frozenset({"-n"}))
    inner = argv[i:]
    exec_mode = any(w.text in ("-x", "--exec") for w in argv[1:i])
    p.emit([argv[0]], assignments, redirects, problems, via)
    if not inner:
        return
    if exec_mode:
        p.unwrap(list(inner), [], [], [], (*via, "watch"), None, depth + 1)
    elif any(w.text is None for w in inner):
        p.problem("`watch` runs a command string the policy cannot read")
    else:
        p.sub_script(" ".join(w.text or "" for w in inner), "watch")


WRAPPERS: dict[str, _Wrapper] = {
    "env": _env,
    "command": _command,
    "builtin": _command,
    "exec": _command,
    "xargs": _xargs,
    "find": _find,
    "flock": _flock,
    "watch": _watch,
    "nohup": _runner(frozenset()),
    "setsid": _runner(frozenset(), flags=frozenset({"-c", "-f", "-w", "--ctty", "--fork",
                                                    "--wait"})),
    "time": _runner(frozenset({"-f", "-o", "--format", "--output"}),
                    flags=frozenset({"-p", "-a", "-v", "-q", "--append", "--verbose",
                                     "--quiet", "--portability"})),
    "nice": _runner(frozenset({"-n", "--adjustment"}), attached=frozenset({"-n"})),
    "timeout": _runner(
        frozenset({"-s", "-k", "--signal", "--kill-after"}),
        positional=1,
        attached=frozenset({"-s", "-k"}),
        flags=frozenset({"--foreground", "--preserve-status", "-v", "--verbose"}),
    ),
    "stdbuf": _runner(
        frozenset({"-i", "-o", "-e", "--input", "--output", "--error"}),
        attached=frozenset({"-i", "-o", "-e"}),
    ),
    "ionice": _runner(frozenset({"-c", "-n", "-p", "-P", "-u", "--class", "--classdata"}),
                      attached=frozenset({"-c", "-n"})),
    "taskset": _runner(frozenset(), positional=1),
    "unbuffer": _runner(frozenset()),
    "busybox": _runner(frozenset()),
    "sudo": _runner(
        frozenset({"-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T", "--user",
                   "--group", "--host", "--prompt", "--close-from", "--chdir", "--role",
                   "--type", "--other-user", "--command-timeout"}),
        checked=True,
    ),
    "doas": _runner(frozenset({"-u", "-C"}), checked=True),
    "strace": _runner(frozenset({"-o", "-e", "-p", "-s", "-u", "-E", "-P", "-a", "-b", "-O",
                                 "-S", "-X"}), checked=True),
}  # fmt: skip
for _shell_name in SHELLS:
    WRAPPERS[_shell_name] = _shell
