"""Runs Aider's RepoMap on a folder; executed by the benchmarks with Aider's own venv.

    python aider_runner.py ROOT FILES_JSON FOCUS_JSON TOKENS RUNS

Prints one JSON object: seconds per run, the map of the last run, its token count,
and the files in Aider's rank order. Tokens are counted by the same estimate
CodeForge uses (a copy of codeforge/context/budget.py's rule: no network, no model).
Not collected by pytest (it imports aider, which only that venv has).
"""

import json
import re
import sys
import time

_PIECES = re.compile(r"[A-Za-z]+|[0-9]+|[^\sA-Za-z0-9]|\n")


def count_tokens(text):
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


class OfflineModel:
    """What RepoMap asks of a model: a token counter (and nothing from the network)."""

    def token_count(self, text):
        return count_tokens(text)


def main():
    root, files_json, focus_json, tokens, runs = sys.argv[1:6]
    from aider.io import InputOutput
    from aider.repomap import RepoMap

    files = [f"{root}/{p}" for p in json.loads(files_json)]
    focus = [f"{root}/{p}" for p in json.loads(focus_json)]
    others = [f for f in files if f not in focus]
    # Aider talks on stdout; the figures must be the only thing there.
    out = sys.stdout
    sys.stdout = sys.stderr
    io = InputOutput(pretty=False, fancy_input=False, yes=True)
    seconds = []
    text = ""
    for _ in range(int(runs)):
        started = time.perf_counter()
        # A new RepoMap each run, as a new Aider process would make; refresh "always"
        # so no in-memory map cache answers.
        repo_map = RepoMap(
            map_tokens=int(tokens),
            root=root,
            main_model=OfflineModel(),
            io=io,
            refresh="always",
        )
        text = repo_map.get_repo_map(focus, others) or ""
        seconds.append(time.perf_counter() - started)
    ranked = repo_map.get_ranked_tags(focus, others, set(), set())
    order = []
    for tag in ranked:
        rel = tag[0]
        if rel not in order:
            order.append(rel)
    sys.stdout = out
    print(
        json.dumps(
            {
                "seconds": seconds,
                "map": text,
                "tokens": count_tokens(text),
                "ranked_files": order,
            }
        )
    )


if __name__ == "__main__":
    main()
