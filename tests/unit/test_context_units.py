"""The engine's pure parts: tokenizer, BM25, PageRank, budget fitting, fusion."""

from __future__ import annotations

import networkx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeforge.context.bm25 import Bm25Index
from codeforge.context.budget import count_tokens
from codeforge.context.chunks import chunk, spans
from codeforge.context.languages import LANGUAGES, language_of, parser_and_query
from codeforge.context.pack import fuse
from codeforge.context.pagerank import pagerank
from codeforge.context.render import Entry, fit
from codeforge.context.tags import Definition, extract, ident_factor
from codeforge.context.terms import term_hash, terms


def test_the_tokenizer_keeps_identifiers_whole_and_splits_them_into_words() -> None:
    found = terms("def parse_header(rawHeader, HTTPServer): return self.max_size2")
    assert "parse_header" in found
    assert {"parse", "header"} <= set(found)
    assert "rawheader" in found
    assert {"raw", "header"} <= set(found)
    assert "httpserver" in found
    assert {"http", "server"} <= set(found)
    assert "max_size2" in found
    assert {"max", "size"} <= set(found)
    assert "self" not in found
    assert "def" not in found


def test_term_hashes_are_stable_across_processes() -> None:
    # Python's own hash is salted per process; this one is BLAKE2b, the same everywhere.
    assert term_hash("parse_header") == -4043210860542920462


def test_bm25_ranks_the_chunk_that_uses_the_query_words_most_specifically() -> None:
    source = (
        b"def parse_header(line):\n    return line.split(':')\n\n"
        b"def render_page(page):\n    return page.title\n\n"
        b"def header_size(header):\n    return len(header)\n"
    )
    tags = extract("m.py", source)
    assert tags is not None
    index = Bm25Index([chunk(source, tags.defs, tags.lines)])
    ranked = [index.chunks[i].symbol for i, _ in index.search("parse header", 10)]
    assert ranked[0] == "parse_header"
    assert "render_page" not in ranked
    assert index.search("nothing_like_this", 10) == []


def test_bm25_returns_at_most_limit_results_best_first() -> None:
    source = "".join(f"def fn_{i}(x):\n    return x + value\n\n" for i in range(30)).encode()
    tags = extract("m.py", source)
    assert tags is not None
    index = Bm25Index([chunk(source, tags.defs, tags.lines)])
    found = index.search("value", 5)
    assert len(found) == 5
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=2, max_value=12).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(
                st.tuples(
                    st.integers(0, n - 1),
                    st.integers(0, n - 1),
                    st.floats(0.1, 10.0, allow_nan=False),
                ),
                min_size=1,
                max_size=40,
            ),
            st.lists(st.floats(0.0, 5.0, allow_nan=False), min_size=n, max_size=n),
        )
    )
)
def test_pagerank_agrees_with_networkx(
    case: tuple[int, list[tuple[int, int, float]], list[float]],
) -> None:
    n, edges, personal = case
    graph = networkx.MultiDiGraph()
    graph.add_nodes_from(range(n))
    for a, b, w in edges:
        graph.add_edge(a, b, weight=w)
    p = np.asarray(personal)
    expected_args = {}
    if p.sum() > 0:
        pers = {i: personal[i] for i in range(n)}
        expected_args = {"personalization": pers, "dangling": pers}
    expected = networkx.pagerank(graph, weight="weight", **expected_args)
    src = np.asarray([a for a, _, _ in edges])
    dst = np.asarray([b for _, b, _ in edges])
    weight = np.asarray([w for _, _, w in edges])
    ours = pagerank(n, src, dst, weight, p if p.sum() > 0 else None)
    assert ours.sum() == pytest.approx(1.0)
    for i in range(n):
        assert ours[i] == pytest.approx(expected[i], abs=1e-4)


def test_fit_takes_the_longest_prefix_within_the_budget() -> None:
    entries = [Entry(i, i, 1.0) for i in range(200)]

    def render(chosen: list[Entry]) -> str:
        return "".join(f"word{e.file} " for e in chosen)

    for budget in (1, 7, 50, 333):
        fitted = fit(entries, render, budget)
        assert fitted.tokens <= budget
        longer = render(entries[: len(fitted.entries) + 1])
        # Either everything fits, or one more entry would not (or is within 5% anyway).
        assert (
            len(fitted.entries) == len(entries)
            or count_tokens(longer) > budget
            or fitted.tokens >= budget * 0.95
        )
    assert fit(entries, render, 0).entries == []


def test_token_counts_grow_with_text_and_count_punctuation() -> None:
    assert count_tokens("") == 0
    assert count_tokens("def f(x):") == 6
    assert count_tokens("a_very_long_identifier_name") > count_tokens("name")


def test_fusion_prefers_agreement_and_says_why() -> None:
    fused = fuse([("keyword", [(1, "bm25 9"), (2, "")]), ("semantic", [(2, "cos .9"), (3, "")])])
    assert [f.chunk for f in fused] == [2, 1, 3]
    assert fused[0].why == ["keyword #2", "semantic #1 (cos .9)"]


def test_compound_and_private_names_weigh_as_aider_weighs_them() -> None:
    assert ident_factor("parse_header") == 10
    assert ident_factor("RepoMap") == 1  # compound but shorter than 8
    assert ident_factor("RepositoryMap") == 10
    assert ident_factor("_private_helper") == pytest.approx(1.0)  # x10 and x0.1
    assert ident_factor("_x") == pytest.approx(0.1)
    assert ident_factor("get") == 1


def test_chunks_are_whole_symbols_where_they_fit_and_windows_elsewhere() -> None:
    small = Definition("f", "function", 10, 10, 20, "def f():")
    inner = Definition("g", "function", 12, 12, 14, "def g():")
    huge = Definition("Big", "class", 100, 100, 400, "class Big:")
    method = Definition("m", "function", 110, 110, 130, "def m():")
    found = spans([small, inner, huge, method], 500)
    assert (10, 20, "f") in found
    assert not any(s == "g" for _, _, s in found)  # inside f's chunk
    assert (110, 130, "m") in found
    assert not any(s == "Big" for _, _, s in found)
    covered = sorted(line for a, b, _ in found for line in range(a, b + 1))
    assert covered == list(range(500))  # every line in exactly one chunk


def test_every_language_has_a_query_that_compiles() -> None:
    assert set(LANGUAGES) >= {
        "python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp",
        "c_sharp", "ruby", "php",
    }  # fmt: skip
    for language in LANGUAGES:
        parser, query = parser_and_query(language)
        assert parser is not None
        assert query is not None
    assert language_of("a/b.tsx") == "tsx"
    assert language_of("README.md") is None


def test_a_binary_or_huge_file_is_listed_but_not_parsed() -> None:
    binary = extract("x.c", b"\0\0\0int main() {}")
    assert binary is not None
    assert binary.defs == []
    assert "binary" in binary.error
    assert extract("notes.txt", b"hello") is None
