"""Pieces of shell words: quote removal's helpers, `$'…'`, brace expansion, globs."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from codeforge.domain.policy.shell_model import Word

__all__ = [
    "MAX_BRACE_WORDS",
    "WordBuilder",
    "ansi_c",
    "brace_expand",
    "finish_word",
    "has_glob",
    "matching",
]

MAX_BRACE_WORDS = 128


@dataclass
class WordBuilder:
    """A word as it is read: its characters, which were quoted, whether the shell
    computes part of it."""

    chars: list[str] = field(default_factory=list)
    quoted: list[bool] = field(default_factory=list)
    dynamic: bool = False

    def add(self, text: str, quoted: bool) -> None:
        self.chars.extend(text)
        self.quoted.extend([quoted] * len(text))


def matching(src: str, start: int, opener: str, closer: str, *, depth: int) -> int:
    """The index of the `closer` that brings `depth` to zero, skipping single quotes
    and escapes; -1 if there is none."""
    i = start
    while i < len(src):
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if c == "'":
            end = src.find("'", i + 1)
            if end < 0:
                return -1
            i = end + 1
            continue
        if c == opener:
            depth += 1
        elif c == closer:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


_ESCAPES = {
    "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r",
    "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?",
}  # fmt: skip


def ansi_c(src: str, start: int) -> tuple[str, int]:
    """The value of a `$'…'` string whose body starts at `start`, and the index of its
    closing quote (-1 when there is none). Escapes are decoded as bash decodes them."""
    out: list[str] = []
    i = start
    while i < len(src):
        c = src[i]
        if c == "'":
            return "".join(out), i
        if c != "\\" or i + 1 >= len(src):
            out.append(c)
            i += 1
            continue
        e = src[i + 1]
        if e in _ESCAPES:
            out.append(_ESCAPES[e])
            i += 2
        elif e in "01234567":
            m = re.match(r"[0-7]{1,3}", src[i + 1 :])
            digits = m.group(0) if m else e
            out.append(chr(int(digits, 8) & 0xFF))
            i += 1 + len(digits)
        elif e in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[e]
            m = re.match(f"[0-9a-fA-F]{{1,{size}}}", src[i + 2 :])
            if m is None:
                out.append("\\" + e)
                i += 2
            else:
                code = int(m.group(0), 16)
                out.append(chr(code) if code <= 0x10FFFF else "\ufffd")
                i += 2 + len(m.group(0))
        elif e == "c" and i + 2 < len(src):
            out.append(chr(ord(src[i + 2]) & 0x1F))
            i += 3
        else:
            out.append("\\" + e)
            i += 2
    return "".join(out), -1


def finish_word(raw: str, b: WordBuilder, home: bool) -> list[Word]:
    glob = has_glob(b)
    if b.dynamic:
        return [Word(raw=raw, text=None, glob=glob, home=home)]
    texts = brace_expand(b.chars, b.quoted)
    if texts is None:
        # Too many words to list: keep one that can be anything.
        return [Word(raw=raw, text=None, glob=glob, home=home)]
    if len(texts) == 1:
        return [Word(raw=raw, text=texts[0][0], glob=glob, home=home)]
    return [
        Word(raw=raw, text=text, glob=has_glob(WordBuilder(list(text), quoted)), home=home)
        for text, quoted in texts
    ]


def has_glob(b: WordBuilder) -> bool:
    for i, (c, q) in enumerate(zip(b.chars, b.quoted, strict=True)):
        if q:
            continue
        if c in "*?":
            return True
        if c == "[" and any(
            d == "]" and not dq for d, dq in zip(b.chars[i + 1 :], b.quoted[i + 1 :], strict=True)
        ):
            return True
    return False


def brace_expand(chars: list[str], quoted: list[bool]) -> list[tuple[str, list[bool]]] | None:
    """Bash's brace expansion over unquoted braces; None when it yields too many words."""
    results: list[tuple[str, list[bool]]] = []
    work: list[tuple[list[str], list[bool]]] = [(chars, quoted)]
    while work:
        cs, qs = work.pop()
        span = _brace_span(cs, qs)
        if span is None:
            results.append(("".join(cs), qs))
        else:
            open_, close, alternatives = span
            for alt_c, alt_q in alternatives:
                work.append(
                    (
                        cs[:open_] + alt_c + cs[close + 1 :],
                        qs[:open_] + alt_q + qs[close + 1 :],
                    )
                )
        if len(results) + len(work) > MAX_BRACE_WORDS:
            return None
    results.reverse()
    return results


def _brace_span(
    cs: list[str], qs: list[bool]
) -> tuple[int, int, list[tuple[list[str], list[bool]]]] | None:
    """The first expandable `{…}`: its bounds and alternatives, or None."""
    for open_ in range(len(cs)):
        if (
            cs[open_] != "{"
            or qs[open_]
            or (open_ > 0 and cs[open_ - 1] == "$" and not qs[open_ - 1])
        ):
            continue
        depth, commas, close = 0, [], -1
        for j in range(open_, len(cs)):
            if qs[j]:
                continue
            if cs[j] == "{":
                depth += 1
            elif cs[j] == "}":
                depth -= 1
                if depth == 0:
                    close = j
                    break
            elif cs[j] == "," and depth == 1:
                commas.append(j)
        if close < 0:
            continue
        if commas:
            bounds = [open_, *commas, close]
            alternatives = [(cs[a + 1 : b], qs[a + 1 : b]) for a, b in itertools.pairwise(bounds)]
            return open_, close, alternatives
        inner = "".join(cs[open_ + 1 : close])
        seq = re.fullmatch(r"(-?\d+|[A-Za-z])\.\.(-?\d+|[A-Za-z])(?:\.\.(-?\d+))?", inner)
        if seq is not None:
            items = _sequence(seq.group(1), seq.group(2), seq.group(3))
            if items is None:
                return open_, close, [(list(inner), [True] * len(inner))] * (MAX_BRACE_WORDS + 1)
            return open_, close, [(list(x), [True] * len(x)) for x in items]
    return None


def _sequence(a: str, b: str, step: str | None) -> list[str] | None:
    by = abs(int(step)) if step else 1
    by = by or 1
    if a.lstrip("-").isdigit() and b.lstrip("-").isdigit():
        lo, hi = int(a), int(b)
        count = abs(hi - lo) // by + 1
        if count > MAX_BRACE_WORDS:
            return None
        direction = 1 if hi >= lo else -1
        return [str(lo + direction * by * k) for k in range(count)]
    if len(a) == 1 and len(b) == 1 and a.isalpha() and b.isalpha():
        lo, hi = ord(a), ord(b)
        direction = 1 if hi >= lo else -1
        return [chr(c) for c in range(lo, hi + direction, direction * by)]
    return None
