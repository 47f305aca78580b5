"""The engine on real repositories in every language: tags, references, map, cache, search."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from adapters.embeddings.hashing import HashingEmbedder
from codeforge.context.engine import ContextEngine
from codeforge.domain.errors import ValidationFailed
from tests.support.polyglot import EXPECTED, SOURCES, write_polyglot
from tests.support.repos import commit_file


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return write_polyglot(tmp_path / "repo")


@pytest.fixture
def engine(tmp_path: Path) -> ContextEngine:
    # workers=2 with more than POOL_THRESHOLD files would fork; the polyglot repo is
    # small enough to parse in this process, which keeps the parse count exact.
    return ContextEngine(tmp_path / "cache")


def test_every_language_yields_its_definitions_and_references(
    engine: ContextEngine, repo: Path
) -> None:
    snapshot = engine.snapshot(repo)
    by_path = dict(zip(snapshot.paths, snapshot.tags, strict=True))
    for language, files in SOURCES.items():
        *libraries, user = list(files)
        defined = {d.name for p in libraries for d in by_path[p].defs}
        referenced = set(by_path[user].ref_names)
        want_defs, want_refs = EXPECTED[language]
        assert want_defs <= defined, f"{language}: missing definitions {want_defs - defined}"
        assert want_refs <= referenced, f"{language}: missing references {want_refs - referenced}"
        assert all(t.language == language for p, t in by_path.items() if p in files)


def test_references_resolve_across_files_in_each_language(
    engine: ContextEngine, repo: Path
) -> None:
    graph = engine.graph(repo)
    for language, files in SOURCES.items():
        *libraries, user = list(files)
        _, used = EXPECTED[language]
        for name in used:
            callers = {h.path for h in graph.callers(name)}
            assert user in callers, f"{language}: {user} should call {name}"
        if language not in {"go", "c_sharp"}:  # package/namespace imports name no file
            importers = {h.path for lib in libraries for h in graph.importers(lib)}
            assert user in importers, f"{language}: {user} should import {libraries}"


def test_graph_queries_answer_callers_callees_and_neighbours(
    engine: ContextEngine, repo: Path
) -> None:
    graph = engine.graph(repo)
    callees = {(h.path, h.name) for h in graph.callees("py/app.py:main_entry")}
    assert callees == {("py/widgets.py", "make_widget"), ("py/widgets.py", "render_widget")}
    callers = graph.callers("py/widgets.py:make_widget")
    assert [(h.path, h.name) for h in callers] == [
        ("py/app.py", "<module>"),
        ("py/app.py", "main_entry"),
    ]
    near = graph.neighbourhood(["py/widgets.py:make_widget"], hops=1, budget=10)
    assert {(h.path, h.name) for h in near} >= {("py/app.py", "main_entry")}
    assert all(h.hops == 1 for h in near)
    two = graph.neighbourhood(["py/widgets.py:make_widget"], hops=2, budget=3)
    assert len(two) == 3
    assert [h.hops for h in two] == sorted(h.hops for h in two)
    assert graph.callers("no_such_symbol") == []


def test_the_map_fits_every_budget_and_ranks_the_library_first(
    engine: ContextEngine, repo: Path
) -> None:
    for budget in (40, 120, 400, 2000):
        result = engine.repo_map(repo, tokens=budget)
        assert 0 < result.tokens <= budget
    focused = engine.repo_map(repo, tokens=400, focus=["py/app.py"])
    assert focused.focus_files == ["py/app.py"]
    assert focused.files[0].path == "py/widgets.py"  # what the focus file uses
    assert "py/app.py" not in {f.path for f in focused.files}  # the agent has it open
    assert "class Widget" in focused.text
    assert "def make_widget(name):" in focused.text
    symbols = {s.name for f in focused.files for s in f.symbols}
    assert {"Widget", "make_widget"} <= symbols


def test_a_symbol_focus_and_the_task_text_steer_the_map(engine: ContextEngine, repo: Path) -> None:
    by_symbol = engine.repo_map(repo, tokens=60, focus=["WidgetPanel"])
    assert by_symbol.mentioned_symbols == ["WidgetPanel"]
    assert by_symbol.files[0].path == "tsx/Panel.tsx"
    by_task = engine.repo_map(repo, tokens=60, query="add a colour field to WidgetShape")
    assert "WidgetShape" in by_task.mentioned_symbols
    assert by_task.files[0].path == "ts/widgets.ts"


def test_the_map_shows_signatures_inside_their_scopes(engine: ContextEngine, repo: Path) -> None:
    text = engine.repo_map(repo, tokens=4000, focus=["rs/main.rs"]).text
    assert "rs/widgets.rs:\n" in text
    # The method appears under its impl block, elided lines marked.
    assert "│impl Widget {\n│    pub fn render_widget(&self, depth: u32) -> String {\n" in text
    assert "⋮" in text


def test_an_unchanged_folder_parses_nothing_and_one_edit_parses_one_file(
    engine: ContextEngine, repo: Path, tmp_path: Path
) -> None:
    total = sum(len(f) for f in SOURCES.values())
    first = engine.repo_map(repo, tokens=300)
    assert engine.indexer.parse_count == total
    again = ContextEngine(tmp_path / "cache")  # a new process reading the same cache
    assert again.repo_map(repo, tokens=300) == first
    assert again.indexer.parse_count == 0

    commit_file(
        repo,
        "py/widgets.py",
        SOURCES["python"]["py/widgets.py"] + "\n\ndef extra_tool():\n    pass\n",
    )
    edited = again.repo_map(repo, tokens=3000)
    assert again.indexer.parse_count == 1
    assert "def extra_tool():" in edited.text

    (repo / "py" / "more.py").write_text("def another_one():\n    return extra_tool()\n")
    again.repo_map(repo, tokens=3000)
    assert again.indexer.parse_count == 2  # untracked files count (git ls-files -o)
    (repo / "py" / "more.py").unlink()
    assert "more.py" not in again.repo_map(repo, tokens=3000).text
    assert again.indexer.parse_count == 2


def test_the_cache_is_keyed_by_content_so_a_copy_parses_nothing(
    engine: ContextEngine, repo: Path, tmp_path: Path
) -> None:
    engine.repo_map(repo, tokens=300)
    parsed = engine.indexer.parse_count
    copy = tmp_path / "copy"
    shutil.copytree(repo, copy)
    assert engine.repo_map(copy, tokens=300).tokens > 0
    assert engine.indexer.parse_count == parsed


def test_a_folder_without_git_is_walked_and_dependency_folders_are_skipped(
    engine: ContextEngine, tmp_path: Path
) -> None:
    plain = write_polyglot(tmp_path / "plain", git=False)
    (plain / "node_modules" / "dep").mkdir(parents=True)
    (plain / "node_modules" / "dep" / "index.js").write_text("function hidden() {}\n")
    paths = engine.snapshot(plain).paths
    assert "py/widgets.py" in paths
    assert not any(p.startswith("node_modules") for p in paths)


def test_a_missing_folder_or_bad_budget_is_a_clear_error(
    engine: ContextEngine, tmp_path: Path, repo: Path
) -> None:
    with pytest.raises(ValidationFailed, match="does not exist"):
        engine.repo_map(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValidationFailed, match="not a folder"):
        engine.repo_map(tmp_path / "file.txt")
    with pytest.raises(ValidationFailed, match="tokens"):
        engine.repo_map(repo, tokens=0)


async def test_search_without_embeddings_says_so_and_still_finds(
    engine: ContextEngine, repo: Path
) -> None:
    results = await engine.search(repo, "make widget", limit=5)
    assert results.notices
    assert "pip install 'codeforge[embeddings]'" in results.notices[0]
    assert "semantic" not in results.signals
    assert "keyword" in results.signals
    top = [h for h in results.hits if h.symbol.lower().replace("_", "") == "makewidget"]
    assert top, "a make_widget definition is among the first five"
    assert any(w.startswith("keyword #") for w in top[0].why)
    assert "widget" in top[0].preview.lower()


async def test_search_with_an_embedder_fuses_the_semantic_signal(
    repo: Path, tmp_path: Path
) -> None:
    engine = ContextEngine(tmp_path / "cache", HashingEmbedder())
    results = await engine.search(repo, "render widget depth", limit=10)
    assert results.notices == []
    assert results.signals[:2] == ["keyword", "semantic"]
    assert any(any(w.startswith("semantic #") for w in h.why) for h in results.hits)
    # Vectors are cached by (model, text): a second engine embeds nothing new.
    held = engine.store.count("vectors")
    assert held > 0
    calls: list[int] = []

    class Counting(HashingEmbedder):
        async def embed(self, texts):  # type: ignore[no-untyped-def]
            calls.append(len(texts))
            return await super().embed(texts)

    again = ContextEngine(tmp_path / "cache", Counting())
    assert (await again.search(repo, "render widget depth", limit=10)).hits == results.hits
    assert calls == [1]  # only the query
    assert again.store.count("vectors") == held


async def test_a_context_pack_stays_within_its_budget_and_carries_the_code(
    engine: ContextEngine, repo: Path
) -> None:
    pack = await engine.context_pack(repo, "how is a widget rendered", token_budget=150)
    assert 0 < pack.tokens <= 150
    assert pack.items
    assert all(i.text and i.why for i in pack.items)
    assert sum(i.tokens for i in pack.items) == pack.tokens
    first = pack.items[0]
    lines = (repo / first.path).read_text().split("\n")[first.start_line - 1 : first.end_line]
    assert first.text == "\n".join(lines)


async def test_concurrent_searches_share_one_index(engine: ContextEngine, repo: Path) -> None:
    found = await asyncio.gather(*(engine.search(repo, "widget", limit=3) for _ in range(4)))
    assert len({tuple((h.path, h.start_line) for h in r.hits) for r in found}) == 1
    assert engine.indexer.parse_count == sum(len(f) for f in SOURCES.values())


def test_grep_respects_its_budget_and_refuses_bad_patterns(
    engine: ContextEngine, repo: Path
) -> None:
    found = engine.grep(repo, r"Widget|widget", limit=3)
    assert len(found.matches) == 3
    assert found.truncated
    every = engine.grep(repo, "make_widget", limit=100)
    assert not every.truncated
    assert {m.path for m in every.matches} >= {"py/widgets.py", "py/app.py"}
    assert all(m.line > 0 for m in every.matches)
    # Shell metacharacters are just characters: nothing runs.
    assert engine.grep(repo, "$(touch pwned); `id`", limit=5).matches == []
    assert not (repo / "pwned").exists()
    with pytest.raises(ValidationFailed, match="search failed"):
        engine.grep(repo, "(unclosed", limit=5)
    with pytest.raises(ValidationFailed, match="one line"):
        engine.grep(repo, "a\nb")


async def test_a_slow_first_semantic_index_does_not_hold_up_a_search(
    repo: Path, tmp_path: Path
) -> None:
    release = asyncio.Event()

    class Slow(HashingEmbedder):
        async def embed(self, texts):  # type: ignore[no-untyped-def]
            if len(texts) > 1:  # chunks, not the query
                await release.wait()
            return await super().embed(texts)

    engine = ContextEngine(tmp_path / "cache", Slow())
    early = await engine.search(repo, "render widget", limit=5, wait_for_vectors=0.05)
    assert "semantic" not in early.signals
    assert early.notices
    assert "semantic index is being built" in early.notices[0]
    assert early.hits  # keyword, repo map and graph still answer
    release.set()
    later = await engine.search(repo, "render widget", limit=5, wait_for_vectors=5)
    assert "semantic" in later.signals
    assert later.notices == []


async def test_odd_text_in_a_query_is_searched_not_an_error(
    engine: ContextEngine, repo: Path
) -> None:
    for query in ["\ud800widget", "widget\0render", "'; DROP TABLE x; --", "ü" * 500]:
        results = await engine.search(repo, query, limit=3)
        assert results.query
    with pytest.raises(ValidationFailed, match="empty"):
        await engine.search(repo, "   ", limit=3)
    with pytest.raises(ValidationFailed, match="longer"):
        await engine.search(repo, "x" * 5000, limit=3)
    assert engine.repo_map(repo, tokens=100, query="\udfff Widget").tokens > 0


def test_worker_processes_make_the_tags_and_chunks_this_process_makes(
    tmp_path: Path,
) -> None:
    # Enough files of uneven sizes to go to two worker processes in several batches.
    repo = write_polyglot(tmp_path / "repo", git=False)
    for i in range(40):
        body = "".join(
            f"def helper_{i}_{j}(x):\n    return make_widget(x) + {j}\n" for j in range(i)
        )
        (repo / "py" / f"gen_{i}.py").write_text(f"from widgets import make_widget\n{body}")
    pooled = ContextEngine(tmp_path / "pooled", workers=2)
    inline = ContextEngine(tmp_path / "inline", workers=1)
    ours, theirs = pooled.snapshot(repo), inline.snapshot(repo)
    assert ours.paths == theirs.paths
    assert ours.tags == theirs.tags
    assert pooled.indexer.parse_count == inline.indexer.parse_count == len(ours.paths)
    assert pooled.indexer.chunks(ours) == inline.indexer.chunks(theirs)
    assert pooled.repo_map(repo, tokens=500) == inline.repo_map(repo, tokens=500)
