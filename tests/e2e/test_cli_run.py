"""`codeforge run`: a whole run from the command line, without a server.

The real `codeforge` process (its own embedded-or-configured database, in-process
queue and worker) against the scripted model, on a repository the test makes.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.test_agent_runs import CALC, TEST, fix_script
from tests.support.processes import codeforge_env, run_codeforge
from tests.support.repos import git, make_repo
from tests.support.scripted_llm import ScriptedLLM


@pytest.fixture
def cli_env(
    tmp_path: Path, make_database: Callable[[], str], scripted_llm: ScriptedLLM
) -> dict[str, str]:
    config = tmp_path / "codeforge.yaml"
    config.write_text(
        "sandbox:\n  kind: mount\n"
        "models:\n"
        "  - name: scripted\n"
        f"    base_url: {scripted_llm.base_url}\n"
        "    model: scripted-model\n"
        "    input_price_per_mtok: 2.5\n"
        "    output_price_per_mtok: 10\n"
    )
    return codeforge_env(
        CODEFORGE_CONFIG=str(config),
        CODEFORGE_DATABASE__URL=make_database(),
        CODEFORGE_DATA_DIR=str(tmp_path / "data"),
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "my-project", {"calc.py": CALC, "test_calc.py": TEST})


def test_a_run_from_the_command_line_prints_progress_and_the_patch(
    cli_env: dict[str, str], repo: Path, tmp_path: Path, scripted_llm: ScriptedLLM
) -> None:
    fix_script(scripted_llm)
    head = git(repo, "rev-parse", "HEAD")
    result = run_codeforge(
        ["run", "--repo", str(repo), "--task", "Make add() add", "--model", "scripted"], cli_env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "→ read_file" in out
    assert "✓ edit" in out
    assert "✓ bash exit 0" in out
    assert "SUCCEEDED: add() now adds; the unit test passes" in out
    assert "4 model calls" in out
    patch = Path(out.split("patch: ", 1)[1].strip().splitlines()[0])
    assert patch.is_file()
    subprocess.run(["git", "apply", "--check", str(patch)], cwd=repo, check=True)
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == ""
    assert "Traceback" not in result.stderr


def test_json_mode_emits_one_object_per_line_ending_with_the_result(
    cli_env: dict[str, str], repo: Path, scripted_llm: ScriptedLLM
) -> None:
    fix_script(scripted_llm, test_command="echo checking; python3 -m unittest -q test_calc")
    result = run_codeforge(
        ["run", "--repo", str(repo), "--task", "Make add() add", "--model", "scripted", "--json"],
        cli_env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    events = [line["event"] for line in lines if line["type"] == "event"]
    assert events[0] == "RunRequested"
    assert events[-1] == "RunCompleted"
    assert events.count("ModelResponded") == 4
    seqs = [line["seq"] for line in lines if line["type"] == "event"]
    assert seqs == list(range(1, len(seqs) + 1))
    assert any(line["type"] == "delta" and "checking" in line["text"] for line in lines)
    assert lines[-1]["type"] == "result"
    assert lines[-1]["status"] == "succeeded"
    assert lines[-1]["patch"].endswith(".patch")


def test_commit_local_adds_only_the_runs_branch_to_the_users_repository(
    cli_env: dict[str, str], repo: Path, scripted_llm: ScriptedLLM
) -> None:
    fix_script(scripted_llm)
    (repo / "uncommitted.txt").write_text("the user's own work in progress\n")
    head = git(repo, "rev-parse", "HEAD")
    result = run_codeforge(
        ["run", "--repo", str(repo), "--task", "Make add() add", "--model", "scripted",
         "--deliver", "commit-local"],
        cli_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "your working tree, index and HEAD are untouched" in result.stdout
    branches = git(repo, "branch", "--list", "codeforge/run-*").split()
    assert len(branches) == 1
    assert "return a + b" in git(repo, "show", f"{branches[0]}:calc.py")
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == "?? uncommitted.txt"
    assert "return a - b" in (repo / "calc.py").read_text()


def test_a_failed_run_exits_non_zero_with_its_reason(
    cli_env: dict[str, str], repo: Path, scripted_llm: ScriptedLLM
) -> None:
    fix_script(scripted_llm)
    result = run_codeforge(
        [
            "run",
            "--repo",
            str(repo),
            "--task",
            "x",
            "--model",
            "scripted",
            "--max-cost",
            "0.000001",
        ],
        cli_env,
    )
    assert result.returncode == 1
    assert "FAILED: budget_exceeded" in result.stdout
    assert scripted_llm.chat_requests == []


def test_an_unknown_model_is_a_clear_error_not_a_traceback(
    cli_env: dict[str, str], repo: Path
) -> None:
    result = run_codeforge(["run", "--repo", str(repo), "--task", "x", "--model", "nope"], cli_env)
    assert result.returncode == 1
    assert "model 'nope' is not registered" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run_codeforge(["run", "--repo", "/no/such/dir", "--task", "x"], cli_env)
    assert missing.returncode == 2
    assert "is not a directory" in missing.stderr


def test_a_second_run_starts_from_the_repositorys_new_commits(
    cli_env: dict[str, str], repo: Path, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.reply(tool_calls=[("finish", {"summary": "nothing to do"})])
    first = run_codeforge(
        ["run", "--repo", str(repo), "--task", "x", "--model", "scripted"], cli_env
    )
    assert first.returncode == 0, first.stdout + first.stderr
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    git(repo, "commit", "-qam", "fixed by hand")
    scripted_llm.reply(tool_calls=[("read_file", {"path": "calc.py"})])
    scripted_llm.reply(tool_calls=[("finish", {"summary": "already fixed"})])
    second = run_codeforge(
        ["run", "--repo", str(repo), "--task", "x", "--model", "scripted", "--json"], cli_env
    )
    assert second.returncode == 0, second.stdout + second.stderr
    read = next(
        json.loads(line) for line in second.stdout.splitlines() if '"ToolCallCompleted"' in line
    )
    assert "return a + b" in read["data"]["output"]
