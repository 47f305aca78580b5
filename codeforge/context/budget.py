"""Token counts without a tokenizer download.

An estimate close to the BPE vocabularies of current chat models on source code
(within ~15% of cl100k on Python, measured on the standard library): a word costs
one token per five letters, a number one per three digits, each punctuation
character one, and each line break one. It needs no network and no model files, so
the budget means the same thing everywhere (the benchmarks give Aider the same counter).
"""

from __future__ import annotations

import re

_PIECES = re.compile(r"[A-Za-z]+|[0-9]+|[^\sA-Za-z0-9]|\n")


def count_tokens(text: str) -> int:
    total = 0
    for piece in _PIECES.findall(text):
        first = piece[0]
        if first.isalpha():
            total += (len(piece) + 4) // 5
        elif first.isdigit():
            total += (len(piece) + 2) // 3
        else:
            total += 1
    return total
