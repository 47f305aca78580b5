"""Where a path points, and gitignore-style patterns over such places.

Paths are resolved lexically (no file system is consulted): a workspace path is
kept relative to the workspace root ("src/app.py", "" for the root), a path that
leaves the workspace is absolute ("/etc/passwd") or under the home folder
("~/.ssh/id_rsa"), and one the policy cannot place — computed by the shell, or
escaping the workspace with `..` to a folder whose name it does not know — is
unknown. Symbolic links are not followed: the sandbox refuses file tools that
leave the workspace through one; commands are the sandbox's to confine.

Patterns follow .gitignore, anchored at the workspace root: `*` and `?` stay within
one folder, `**` crosses folders, a pattern with a slash in it (other than at its
end) matches from the root, one without matches at any depth (`*.pem`), a trailing
slash (`.git/`) names a folder and everything in it, and a pattern that matches a
folder matches everything inside it. Two prefixes leave the workspace:
`//etc/**` is the absolute path `/etc/**`, `~/.ssh/**` is under the home folder.
"""

from __future__ import annotations

import posixpath
import re
from enum import StrEnum

from msgspec import Struct

__all__ = [
    "SINKS",
    "Location",
    "PathPattern",
    "PatternError",
    "Place",
    "resolve",
    "shell_glob_regex",
]

# Writing to these changes no file.
SINKS = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/zero"})


class Place(StrEnum):
    WORKSPACE = "workspace"
    ABSOLUTE = "absolute"
    HOME = "home"
    UNKNOWN = "unknown"


class Location(Struct, frozen=True):
    place: Place
    # "src/app.py" ("" for the root), "/etc/passwd", "~/.ssh/id_rsa"; "" when unknown.
    key: str = ""

    @property
    def inside(self) -> bool:
        return self.place is Place.WORKSPACE

    @property
    def sink(self) -> bool:
        return self.place is Place.ABSOLUTE and (
            self.key in SINKS or self.key.startswith("/dev/fd/")
        )

    def shown(self) -> str:
        if self.place is Place.WORKSPACE:
            return self.key or "."
        return self.key or "an unknown place"


UNKNOWN = Location(Place.UNKNOWN)


def resolve(text: str, cwd: Location | None = None, *, home: bool = False) -> Location:
    """Where `text` points, seen from `cwd` (the workspace root when None).

    `home` says the shell expands a leading `~` (it was not quoted).
    """
    if home and (text == "~" or text.startswith("~/")):
        rest = posixpath.normpath(text[1:].lstrip("/") or ".")
        return Location(Place.HOME, "~" if rest == "." else f"~/{rest}")
    if text.startswith("/"):
        return Location(Place.ABSOLUTE, "/" + posixpath.normpath(text).lstrip("/"))
    base = cwd or Location(Place.WORKSPACE, "")
    if base.place is Place.UNKNOWN:
        return UNKNOWN
    if base.place is Place.WORKSPACE:
        joined = posixpath.normpath(posixpath.join(base.key, text) if base.key else text or ".")
        if joined == ".":
            return Location(Place.WORKSPACE, "")
        if joined == ".." or joined.startswith("../"):
            # Out of the workspace into a folder whose name the policy does not know.
            return UNKNOWN
        return Location(Place.WORKSPACE, joined)
    if base.place is Place.ABSOLUTE:
        return Location(Place.ABSOLUTE, "/" + posixpath.normpath(f"{base.key}/{text}").lstrip("/"))
    rest = posixpath.normpath(posixpath.join(base.key[2:], text) if len(base.key) > 1 else text)
    if rest == ".." or rest.startswith("../"):
        return UNKNOWN
    return Location(Place.HOME, "~" if rest == "." else f"~/{rest}")


class PatternError(ValueError):
    pass


def _translate(body: str, *, shell_rules: bool = False) -> str:
    """A glob as a regular expression (no anchors). `shell_rules`: no `**`, and wildcards never
    match a leading dot of a name (the shell's rule), so `*` does not reach `.git`."""
    out: list[str] = []
    i, n = 0, len(body)
    at_name_start = True
    while i < n:
        c = body[i]
        if c == "*":
            if not shell_rules and body.startswith("**", i):
                follows_slash = i + 2 < n and body[i + 2] == "/"
                if follows_slash and at_name_start:
                    out.append("(?:.*/)?")
                    i += 3
                    continue
                if i + 2 == n and at_name_start:
                    out.append(".*")
                    i += 2
                    continue
                out.append("[^/]*")
                i += 2
                at_name_start = False
                continue
            out.append(("(?!\\.)" if shell_rules and at_name_start else "") + "[^/]*")
            while i + 1 < n and body[i + 1] == "*":
                i += 1
        elif c == "?":
            out.append(("(?!\\.)" if shell_rules and at_name_start else "") + "[^/]")
        elif c == "[":
            end = _class_end(body, i)
            if end < 0:
                out.append(re.escape(c))
            else:
                inner = body[i + 1 : end]
                negated = inner[:1] in ("!", "^")
                if negated:
                    inner = inner[1:]
                inner = inner.replace("\\", "\\\\")
                lead = "(?!\\.)" if shell_rules and at_name_start else ""
                out.append(f"{lead}[{'^/' if negated else ''}{inner}]")
                i = end
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(body[i]))
        else:
            out.append(re.escape(c))
        at_name_start = c == "/"
        i += 1
    return "".join(out)


def _class_end(body: str, start: int) -> int:
    j = start + 1
    if j < len(body) and body[j] in "!^":
        j += 1
    if j < len(body) and body[j] == "]":
        j += 1
    while j < len(body) and body[j] != "]":
        j += 1
    return j if j < len(body) else -1


def _witness(body: str) -> str:
    """One concrete path the glob matches (wildcards become "x")."""
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if body.startswith("**/", i):
            i += 3
            continue
        if c in "*?":
            out.append("x")
            while i + 1 < len(body) and body[i + 1] == "*":
                i += 1
        elif c == "[":
            end = _class_end(body, i)
            if end < 0:
                out.append(c)
            else:
                inner = body[i + 1 : end]
                out.append("x" if inner[:1] in ("!", "^") or not inner else inner[0])
                i = end
        elif c == "\\" and i + 1 < len(body):
            i += 1
            out.append(body[i])
        else:
            out.append(c)
        i += 1
    return "".join(out).rstrip("/") or "x"


class PathPattern:
    """A compiled gitignore-style pattern (see the module docstring)."""

    __slots__ = ("_regex", "anchored", "place", "text", "witness")

    def __init__(self, text: str, *, ignore_case: bool = False) -> None:
        self.text = text
        if not text or not text.strip():
            raise PatternError("a path pattern cannot be empty")
        if "\0" in text or "\n" in text:
            raise PatternError("a path pattern cannot hold NUL or a line break")
        body = text
        if body.startswith("//"):
            self.place, prefix, body = Place.ABSOLUTE, "/", body[2:]
            self.anchored = True
        elif body == "~" or body.startswith("~/"):
            self.place, prefix, body = Place.HOME, "~/", body[2:]
            self.anchored = True
        else:
            self.place, prefix = Place.WORKSPACE, ""
            if body.startswith("./"):
                body = body[2:]
            self.anchored = body.startswith("/") or "/" in body.rstrip("/")
            body = body.lstrip("/")
        body = body.rstrip("/") if body not in ("", "/") else ""
        if ".." in body.split("/"):
            raise PatternError(f"{text!r} uses '..'; patterns name places, not moves")
        if body == "":
            # "//" (everything absolute), "~" (the whole home folder), "/" (the workspace).
            regex = "^" + re.escape(prefix.rstrip("/")) + "(?:/.*)?$" if prefix else "^.*$"
        else:
            lead = "^" + re.escape(prefix) + ("" if self.anchored else "(?:.*/)?")
            regex = lead + _translate(body) + "(?:/.*)?$"
        try:
            self._regex = re.compile(regex, re.IGNORECASE if ignore_case else 0)
        except re.error as e:
            raise PatternError(f"{text!r} is not a valid pattern: {e}") from None
        self.witness = prefix + _witness(body) if body else (prefix.rstrip("/") or "x")

    def matches(self, location: Location) -> bool:
        """The location is this pattern's place or inside it."""
        if location.place is not self.place:
            return False
        return self._regex.match(location.key) is not None

    def under(self, folder: Location) -> bool:
        """Something this pattern matches lies inside `folder`. An approximation by the
        pattern's witness path; a pattern without a slash counts at the root only, so
        `rm -rf vendor` is not taken for touching a `.git/` nested somewhere in it."""
        if folder.place is not self.place:
            return False
        if folder.place is Place.WORKSPACE and folder.key == "":
            return True
        return self.witness.startswith(folder.key + "/") or self.witness == folder.key

    def overlaps_glob(self, glob: re.Pattern[str], glob_witness: str) -> bool:
        """A shell glob argument might name something this pattern matches."""
        if self._regex.match(glob_witness):
            return True
        parts = self.witness.split("/")
        return any(glob.match("/".join(parts[: i + 1])) for i in range(len(parts)))

    def __repr__(self) -> str:
        return f"PathPattern({self.text!r})"


def shell_glob_regex(location_key: str) -> tuple[re.Pattern[str], str]:
    """A resolved glob argument ("src/*.py", "/tmp/x*") as a regex with the shell's
    rules, and a witness path it matches."""
    return re.compile("^" + _translate(location_key, shell_rules=True) + "$"), _witness(
        location_key
    )
