"""What the policy knows about common programs: which files a command reads or writes.

Every part of a command has path *effects*, checked against the path rules:

- read: redirections from a file (`< x`) and the operands of programs that only read
  them (cat, grep, ls, diff, …). Read rules that deny or ask apply.
- write: redirections to a file (`>`, `>>`, `&>`, …) and the operands of programs
  that change them (rm, mv, cp's destination, touch, mkdir, chmod, tee, sed -i,
  find -delete, dd of=…). They must be allowed like an edit; a program that changes
  files recursively (rm -r, chmod -R, mv of a folder) is taken to touch everything
  under a folder it names, so `rm -rf .` touches `.git/`. `patch` and `git apply`
  write files the policy cannot name.
- touch: the operands (and `--option=value` values) of every other program. The
  policy cannot tell whether it reads or changes them, so deny and ask rules of any
  path kind apply, and a protected path is never approved automatically.

Builtins that change no file (echo, cd, test, sleep, …) need no allow rule; their
redirections are still effects.
"""

from __future__ import annotations

import posixpath
from typing import Literal

from msgspec import Struct

from codeforge.domain.policy.paths import Location, Place, resolve
from codeforge.domain.policy.shell import CommandPart, Word

__all__ = [
    "DEFAULT_NETWORK_COMMANDS",
    "NEUTRAL",
    "Effect",
    "path_effects",
    "program_name",
]

# Builtins and programs that change nothing but their output (and shell state the
# parser already follows); they run without an allow rule unless a rule stops them.
NEUTRAL = frozenset(
    {
        "cd", "pushd", "popd", "true", "false", ":", "echo", "printf", "pwd", "test", "[",
        "set", "export", "declare", "typeset", "local", "readonly", "unset", "shift",
        "exit", "return", "wait", "sleep", "read", "type", "which", "command",
    }
)  # fmt: skip
READ_ONLY = frozenset(
    {
        "cat", "head", "tail", "less", "more", "wc", "ls", "stat", "file", "du", "df",
        "grep", "egrep", "fgrep", "rg", "ag", "diff", "cmp", "md5sum", "sha1sum",
        "sha256sum", "sha512sum", "tree", "realpath", "readlink", "basename", "dirname",
        "nl", "od", "hexdump", "xxd", "strings", "cut", "tac", "comm", "join", "paste",
        "fold", "column", "bat", "jq",
    }
)  # fmt: skip
WRITES_ALL = frozenset(
    {"rm", "rmdir", "unlink", "shred", "truncate", "touch", "mkdir", "chmod", "chown",
     "chgrp", "tee", "mv"}
)  # fmt: skip
WRITES_LAST = frozenset({"cp", "install", "ln", "rsync"})
RECURSIVE = frozenset({"rm", "rmdir", "mv", "chmod", "chown", "chgrp", "cp", "rsync", "find"})

# Commands (as Bash rule patterns) that reach the network; a policy may add its own.
DEFAULT_NETWORK_COMMANDS: tuple[str, ...] = (
    "curl:*", "wget:*", "ssh:*", "scp:*", "sftp:*", "ftp:*", "telnet:*", "nc:*", "ncat:*",
    "netcat:*", "socat:*", "ping:*", "dig:*", "nslookup:*",
    "git clone:*", "git fetch:*", "git pull:*", "git push:*", "git ls-remote:*",
    "git submodule:*", "git remote update:*",
    "pip install:*", "pip download:*", "pip3 install:*", "pip3 download:*",
    "python -m pip install:*", "python3 -m pip install:*", "uv pip install:*", "uv add:*",
    "uv sync:*", "poetry install:*", "poetry add:*", "poetry update:*",
    "npm install:*", "npm i:*", "npm ci:*", "npm add:*", "npm update:*", "npm publish:*",
    "npx:*", "yarn add:*", "yarn install:*", "pnpm install:*", "pnpm add:*", "pnpm dlx:*",
    "bun install:*", "bun add:*", "bunx:*", "cargo install:*", "cargo fetch:*",
    "cargo publish:*", "cargo update:*", "go get:*", "go install:*", "go mod download:*",
    "gem install:*", "bundle install:*", "apt:*", "apt-get:*", "apk:*", "dnf:*", "yum:*",
    "brew:*", "docker pull:*", "docker push:*", "docker login:*", "gh:*",
)  # fmt: skip


class Effect(Struct, frozen=True):
    kind: Literal["read", "write", "touch"]
    word: Word
    # Where the word points, once per folder the part may run in.
    locations: tuple[Location, ...]
    # The program changes everything under a folder it names.
    recursive: bool = False

    @property
    def glob(self) -> bool:
        return self.word.glob


_UNKNOWN = Location(Place.UNKNOWN)


def program_name(part: CommandPart) -> str:
    return posixpath.basename(part.program)


def _where(word: Word, part: CommandPart) -> tuple[Location, ...]:
    if word.text is None:
        return (_UNKNOWN,)
    return tuple(dict.fromkeys(resolve(word.text, cwd, home=word.home) for cwd in part.cwds))


def _effect(
    kind: Literal["read", "write", "touch"], word: Word, part: CommandPart, recursive: bool = False
) -> Effect:
    return Effect(kind=kind, word=word, locations=_where(word, part), recursive=recursive)


def _operands(argv: tuple[Word, ...]) -> list[Word]:
    """Words that are not options; after `--`, every word."""
    out: list[Word] = []
    options_done = False
    for w in argv:
        if not options_done and w.text == "--":
            options_done = True
            continue
        if not options_done and w.text is not None and w.text.startswith("-") and w.text != "-":
            continue
        out.append(w)
    return out


def _option_values(argv: tuple[Word, ...]) -> list[Word]:
    """The values of `--option=value` words."""
    out = []
    for w in argv:
        t = w.text
        if t is not None and t.startswith("--") and "=" in t:
            value = t.split("=", 1)[1]
            if value:
                out.append(Word(raw=value, text=value, glob=w.glob))
    return out


def path_effects(part: CommandPart) -> list[Effect]:
    effects: list[Effect] = []
    for r in part.redirects:
        if r.target is None:
            continue
        if r.writes:
            effects.append(_effect("write", r.target, part))
        elif r.reads:
            effects.append(_effect("read", r.target, part))
    if not part.argv or part.argv[0].text is None:
        return effects
    name = program_name(part)
    args = part.argv[1:]
    if name in NEUTRAL:
        return effects
    if name in READ_ONLY:
        effects += [_effect("read", w, part) for w in _operands(args)]
    elif name in WRITES_ALL:
        recursive = name in RECURSIVE
        effects += [_effect("write", w, part, recursive) for w in _operands(args)]
    elif name in WRITES_LAST:
        effects += _copy(name, args, part)
    elif name == "dd":
        for w in args:
            t = w.text or ""
            if t.startswith(("of=", "if=")):
                value = t[3:]
                kind: Literal["read", "write"] = "write" if t.startswith("of=") else "read"
                effects.append(_effect(kind, Word(raw=value, text=value, glob=w.glob), part))
    elif name == "find":
        effects += _find(args, part)
    elif name == "sed" and _sed_in_place(args):
        files = _operands(args)
        scripted = any(
            w.text in ("-e", "-f", "--expression", "--file")
            or ((w.text or "").startswith(("--expression=", "--file=")))
            for w in args
        )
        effects += [_effect("write", w, part) for w in (files if scripted else files[1:])]
    elif name == "patch" or (name == "git" and len(args) > 0 and args[0].text in ("apply", "am")):
        effects.append(_effect("write", Word(raw="(files named in the patch)"), part))
        effects += [_effect("touch", w, part) for w in _operands(args)]
    else:
        effects += [_effect("touch", w, part) for w in _operands(args)]
        effects += [_effect("touch", w, part) for w in _option_values(args)]
    return effects


def _copy(name: str, args: tuple[Word, ...], part: CommandPart) -> list[Effect]:
    """cp, install, ln, rsync: the sources are read, the destination written."""
    target: Word | None = None
    rest: list[Word] = []
    i = 0
    while i < len(args):
        t = args[i].text or ""
        if t in ("-t", "--target-directory") and i + 1 < len(args):
            target = args[i + 1]
            i += 2
            continue
        if t.startswith("--target-directory="):
            value = t.split("=", 1)[1]
            target = Word(raw=value, text=value)
        i += 1
    operands = [w for w in _operands(args) if w is not target]
    if target is None and operands:
        target, rest = operands[-1], operands[:-1]
    else:
        rest = operands
    effects = [_effect("read", w, part) for w in rest]
    if target is not None:
        effects.append(_effect("write", target, part, recursive=name in RECURSIVE))
    return effects


_FIND_WRITES = ("-fprint", "-fprint0", "-fls", "-fprintf")


def _find(args: tuple[Word, ...], part: CommandPart) -> list[Effect]:
    starts: list[Word] = []
    for w in args:
        if w.text is not None and (w.text.startswith(("-", "(", "!", ")")) or w.text == ","):
            break
        starts.append(w)
    deletes = any(w.text == "-delete" for w in args)
    effects = [
        _effect("write" if deletes else "read", w, part, recursive=deletes)
        for w in starts or [Word(raw=".", text=".")]
    ]
    for i, w in enumerate(args[:-1]):
        if w.text in _FIND_WRITES:
            effects.append(_effect("write", args[i + 1], part))
    return effects


def _sed_in_place(args: tuple[Word, ...]) -> bool:
    for w in args:
        t = w.text or ""
        if t.startswith("--in-place") or (
            t.startswith("-")
            and not t.startswith("--")
            and "i" in t[1:].split("=")[0]
            and not t.startswith(("-e", "-f"))
        ):
            return True
    return False
