"""`codeforge repomap | search | graph`, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.polyglot import SOURCES, write_polyglot
from tests.support.processes import codeforge_env, run_codeforge


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return write_polyglot(tmp_path / "repo")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return codeforge_env(CODEFORGE_DATA_DIR=str(tmp_path / "data"))


def test_repomap_prints_a_budgeted_map_and_reports_indexing_once(
    repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    files = sum(len(f) for f in SOURCES.values())
    cold = run_codeforge(["repomap", str(repo), "--tokens", "200", "--focus", "py/app.py"], env)
    assert cold.returncode == 0, cold.stderr
    assert f"indexed {files} files in" in cold.stderr
    assert "py/widgets.py:" in cold.stdout
    assert "│def make_widget(name):" in cold.stdout
    assert "of 200 tokens" in cold.stderr
    assert (tmp_path / "data" / "cache" / "context" / "context.sqlite3").exists()

    warm = run_codeforge(["repomap", str(repo), "--tokens", "200", "--focus", "py/app.py"], env)
    assert warm.returncode == 0
    assert "indexed" not in warm.stderr
    assert warm.stdout == cold.stdout

    as_json = json.loads(run_codeforge(["repomap", str(repo), "--json"], env).stdout)
    assert as_json["budget"] == 1024
    assert as_json["tokens"] <= 1024
    assert as_json["files"]
    assert as_json["files_total"] == files


def test_search_finds_code_by_words_and_by_pattern(repo: Path, env: dict[str, str]) -> None:
    found = run_codeforge(["search", str(repo), "render widget depth", "--limit", "3"], env)
    assert found.returncode == 0, found.stderr
    assert len([ln for ln in found.stdout.splitlines() if not ln.startswith(" ")]) == 3
    assert "keyword #" in found.stdout

    grep = run_codeforge(["search", str(repo), "--regex", r"def (make|render)_widget"], env)
    assert grep.returncode == 0, grep.stderr
    assert "py/widgets.py:" in grep.stdout
    assert "rb/widget.rb:" in grep.stdout

    pack = json.loads(
        run_codeforge(
            ["search", str(repo), "make a widget", "--pack", "--tokens", "120", "--json"], env
        ).stdout
    )
    assert 0 < pack["tokens"] <= 120
    assert pack["items"]


def test_graph_answers_callers_and_importers(repo: Path, env: dict[str, str]) -> None:
    callers = run_codeforge(["graph", str(repo), "callers", "py/widgets.py:make_widget"], env)
    assert callers.returncode == 0, callers.stderr
    assert "py/app.py:4  main_entry" in callers.stdout
    importers = run_codeforge(["graph", str(repo), "importers", "c/widgets.h", "--json"], env)
    assert [h["path"] for h in json.loads(importers.stdout)] == ["c/app.c", "c/widgets.c"]
    none = run_codeforge(["graph", str(repo), "callers", "nothing_here"], env)
    assert none.returncode == 0
    assert "no callers found" in none.stderr


def test_bad_input_is_one_line_and_a_failure_code(
    repo: Path, env: dict[str, str], tmp_path: Path
) -> None:
    missing = run_codeforge(["repomap", str(tmp_path / "nope")], env)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"codeforge: {tmp_path / 'nope'} does not exist"
    budget = run_codeforge(["repomap", str(repo), "--tokens", "0"], env)
    assert budget.returncode == 1
    assert "tokens is 1-200000" in budget.stderr
    pattern = run_codeforge(["search", str(repo), "--regex", "(open"], env)
    assert pattern.returncode == 1
    assert "search failed" in pattern.stderr
    assert "Traceback" not in missing.stderr + budget.stderr + pattern.stderr
