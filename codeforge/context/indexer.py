"""Bringing a folder's tags up to date: stat everything, hash what changed, parse what is new.

A file whose stat signature (mtime, ctime, size, inode) matches the folder index
keeps its content key without being read. Anything else is read and hashed; only
content keys the cache does not hold are parsed — in worker processes, one per
core, when there are many (a cold run), in this process when there are few (an
edit). `Snapshot.parsed` counts the files parsed, which tests use to prove that a
one-file change re-parses one file.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from codeforge.context.chunks import FileChunks, chunk
from codeforge.context.files import Stat, list_files
from codeforge.context.languages import language_of, parser_and_query, query_version
from codeforge.context.store import FileEntry, FolderIndex, Store, decode_tags, encode_tags
from codeforge.context.tags import (
    Definition,
    FileTags,
    RankRow,
    content_key,
    empty,
    extract,
    rank_row,
)

Progress = Callable[[int, int], None]

# Below this many files to parse, worker processes cost more than they save.
POOL_THRESHOLD = 24
# Work goes to the workers in batches of about 1/SHARE of what is left per worker, at
# least MIN_BATCH_BYTES and at most MAX_BATCH files (fewer round trips, an even finish).
SHARE = 4
MIN_BATCH_BYTES = 32_000
MAX_BATCH = 64
# A file modified this close to when the index was taken may have changed unseen.
RACY_NS = 2_000_000_000


@dataclass
class Snapshot:
    """A folder's source files at one moment: paths (sorted), content keys and tags."""

    root: Path
    paths: list[str]
    keys: list[str]
    fingerprint: str
    sizes: list[int] = field(default_factory=list, repr=False)  # bytes, per path
    parsed: int = 0  # files parsed to make this snapshot
    hashed: int = 0  # files read and hashed (stat changed or new)
    _tags: list[FileTags] | None = field(default=None, repr=False)
    _rows: list[RankRow] | None = field(default=None, repr=False)
    _indexer: Indexer | None = field(default=None, repr=False)
    _progress: Progress | None = field(default=None, repr=False)

    @property
    def tags(self) -> list[FileTags]:
        """Every file's tags, loaded (and parsed where new) on first use."""
        if self._tags is None:
            assert self._indexer is not None
            self._tags = self._indexer.tags_for(self, self._progress)
        return self._tags

    @property
    def rank_rows(self) -> list[RankRow]:
        """What ranking reads of every file; parses new files like `tags`."""
        if self._rows is None:
            assert self._indexer is not None
            self._rows = self._indexer.rank_rows_for(self, self._progress)
        return self._rows

    def file_tags(self, i: int) -> FileTags:
        """One file's tags (after `rank_rows`, without decoding the others)."""
        if self._tags is not None:
            return self._tags[i]
        assert self._indexer is not None
        return self._indexer.one(self.keys[i])


def full_key(path: str, blob: str) -> str:
    return f"{language_of(path)}:{query_version()}:{blob}"


def fingerprint_of(paths: list[str], keys: list[str]) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    for path, key in zip(paths, keys, strict=True):
        digest.update(f"{path}\0{key}\n".encode())
    return digest.hexdigest()


class Indexer:
    def __init__(self, store: Store, *, workers: int | None = None) -> None:
        self._store = store
        self._workers = workers or os.cpu_count() or 1
        # Decoded tags and chunks by content key, kept between calls in a long-lived process.
        self._memo: dict[str, FileTags] = {}
        self._chunk_memo: dict[str, FileChunks] = {}
        self._rows: dict[str, RankRow] = {}
        self.parse_count = 0  # every file parsed by this indexer, for tests and figures

    def snapshot(self, root: Path, progress: Progress | None = None) -> Snapshot:
        root = root.resolve()
        root_key = str(root)
        files = list_files(root)
        index = self._store.folder(root_key)
        known = {e.path: e for e in index.entries} if index else {}
        racy_before = (index.taken_ns if index else 0) - RACY_NS
        paths = sorted(files)
        keys: list[str] = []
        hashed = 0
        changed = index is None or len(known) != len(files)
        for path in paths:
            st = files[path]
            entry = known.get(path)
            if entry is not None and _same(entry, st) and entry.mtime_ns < racy_before:
                keys.append(entry.key)
                continue
            try:
                data = (root / path).read_bytes()
            except OSError:
                data = b""
            key = full_key(path, content_key(data))
            hashed += 1
            changed = True
            keys.append(key)
        if changed:
            taken = time.time_ns()
            self._store.put_folder(
                root_key,
                FolderIndex(
                    [
                        FileEntry(
                            p,
                            files[p].mtime_ns,
                            files[p].ctime_ns,
                            files[p].size,
                            files[p].inode,
                            k,
                        )
                        for p, k in zip(paths, keys, strict=True)
                    ],
                    taken,
                ),
            )
        snapshot = Snapshot(
            root,
            paths,
            keys,
            fingerprint_of(paths, keys),
            sizes=[files[p].size for p in paths],
            hashed=hashed,
        )
        snapshot._indexer = self
        snapshot._progress = progress
        return snapshot

    def one(self, key: str) -> FileTags:
        tags = self._memo.get(key)
        if tags is None:
            tags = self._memo[key] = decode_tags(self._store.tags([key])[key])
        return tags

    def rank_rows_for(self, snapshot: Snapshot, progress: Progress | None) -> list[RankRow]:
        rows = self._rows
        missing = [k for k in set(snapshot.keys) if k not in rows]
        if missing:
            for key, data in self._store.blobs("ranks", missing).items():
                rows[key] = _rank_decoder.decode(data)
        wanted = {k for k in snapshot.keys if k not in rows}
        if wanted:
            # Tags cached before rank rows were: derive the rows from them.
            for key, data in self._store.tags(wanted).items():
                tags = self._memo[key] = decode_tags(data)
                rows[key] = rank_row(tags)
                wanted.discard(key)
        if wanted:
            for key, (_, row) in self._parse(snapshot, wanted, progress).items():
                rows[key] = row
        _forget_all_but(rows, snapshot.keys)
        return [rows[k] for k in snapshot.keys]

    def tags_for(self, snapshot: Snapshot, progress: Progress | None) -> list[FileTags]:
        memo = self._memo
        wanted = {k for k in snapshot.keys if k not in memo}
        if wanted:
            for key, data in self._store.tags(wanted).items():
                memo[key] = decode_tags(data)
                wanted.discard(key)
        if wanted:
            for key, (data, _) in self._parse(snapshot, wanted, progress).items():
                memo[key] = decode_tags(data)
        _forget_all_but(memo, snapshot.keys)
        return [memo[k] for k in snapshot.keys]

    def _parse(
        self, snapshot: Snapshot, keys: set[str], progress: Progress | None
    ) -> dict[str, tuple[bytes, RankRow]]:
        """Parse the files of `keys`, store their tags and rank rows; both, by key.

        Workers send encoded tags, which go into the cache as they are: the parent
        decodes only the small rank rows (a cold map never needs most files' tags).
        """
        to_parse = [
            (p, k, size)
            for p, k, size in zip(snapshot.paths, snapshot.keys, snapshot.sizes, strict=True)
            if k in keys
        ]
        parsed = self._run(
            _parse_batch,
            snapshot.root,
            [p for p, _, _ in to_parse],
            progress,
            inline=lambda path: _parse_encoded(snapshot.root, path),
            sizes=[size for _, _, size in to_parse],
        )
        out: dict[str, tuple[bytes, RankRow]] = {}
        verified = []
        for (path, key, _), (blob, (data, row)) in zip(to_parse, parsed, strict=True):
            out[key] = (data, row)
            # Cached under its content key only when the bytes parsed are the bytes hashed
            # (the file may have changed in between; the next snapshot will see it).
            if full_key(path, blob) == key:
                verified.append((key, data, row))
        self._store.put_tags((key, data) for key, data, _ in verified)
        self._store.put_blobs(
            "ranks", ((key, msgspec.msgpack.encode(row)) for key, _, row in verified)
        )
        snapshot.parsed += len(to_parse)
        self.parse_count += len(to_parse)
        return out

    def _run(
        self,
        batch_worker: Callable[[str, list[Any]], list[tuple[str, bytes]]],
        root: Path,
        items: list[Any],
        progress: Progress | None,
        *,
        inline: Callable[[Any], tuple[str, Any]],
        sizes: list[int],
    ) -> list[tuple[str, Any]]:
        """(blob SHA of the bytes read, result) per item, in order: in worker processes
        when there are many items, in this process when there are few. `sizes`: each
        item's file size, for sharing the work out evenly."""
        total = len(items)
        if total < POOL_THRESHOLD or self._workers == 1:
            results: list[tuple[str, Any]] = []
            for done, item in enumerate(items, 1):
                results.append(inline(item))
                if progress:
                    progress(done, total)
            return results
        batches = _batches(sizes, self._workers)
        # Forked workers inherit the grammars and compiled queries.
        for path in {_path_of(item) for item in items}:
            language = language_of(path)
            if language:
                parser_and_query(language)
        # fork is the fastest start and safe while this process has one thread (the CLI);
        # a threaded server forks a clean server process instead.
        method = "fork" if threading.active_count() == 1 else "forkserver"
        context = multiprocessing.get_context(method)
        out: list[tuple[str, Any] | None] = [None] * total
        done = 0
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=min(self._workers, len(batches)), mp_context=context
        ) as pool:
            futures = {
                pool.submit(batch_worker, str(root), [items[i] for i in batch]): batch
                for batch in batches
            }
            for future in concurrent.futures.as_completed(futures):
                batch = futures[future]
                for i, (blob, data) in zip(batch, future.result(), strict=True):
                    out[i] = (blob, _decode(data))
                done += len(batch)
                if progress:
                    progress(done, total)
        return [result for result in out if result is not None]

    def chunks(self, snapshot: Snapshot, progress: Progress | None = None) -> list[FileChunks]:
        """Search chunks of every file in `snapshot`, made (in parallel) where not cached."""
        memo = self._chunk_memo
        tags = snapshot.tags
        missing = [k for k in set(snapshot.keys) if k not in memo]
        if missing:
            for key, data in self._store.blobs("chunks", missing).items():
                memo[key] = _chunks_decoder.decode(data)
        todo = [
            (p, k, _outline(t), size)
            for p, k, t, size in zip(
                snapshot.paths, snapshot.keys, tags, snapshot.sizes, strict=True
            )
            if k not in memo
        ]
        if todo:
            made = self._run(
                _chunk_batch,
                snapshot.root,
                [(p, outline) for p, _, outline, _ in todo],
                progress,
                inline=lambda item: _chunk_one(snapshot.root, *item),
                sizes=[size for *_, size in todo],
            )
            self._store.put_blobs(
                "chunks",
                (
                    (key, msgspec.msgpack.encode(chunks))
                    for (path, key, _, _), (blob, chunks) in zip(todo, made, strict=True)
                    if full_key(path, blob) == key
                ),
            )
            for (_, key, _, _), (_, chunks) in zip(todo, made, strict=True):
                memo[key] = chunks
        _forget_all_but(memo, snapshot.keys)
        return [memo[k] for k in snapshot.keys]


def _batches(sizes: list[int], workers: int) -> list[list[int]]:
    """Item indices in batches for `workers` processes: largest files first, each batch
    about a `SHARE`th of what is left per worker, so that the last batches are small and
    every worker finishes at about the same time."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    left = sum(sizes)
    batches: list[list[int]] = []
    batch: list[int] = []
    held = 0
    for i in order:
        batch.append(i)
        held += sizes[i]
        if held >= max(left // (workers * SHARE), MIN_BATCH_BYTES) or len(batch) >= MAX_BATCH:
            batches.append(batch)
            left -= held
            batch, held = [], 0
    if batch:
        batches.append(batch)
    return batches


def _same(entry: FileEntry, st: Stat) -> bool:
    return (
        entry.mtime_ns == st.mtime_ns
        and entry.ctime_ns == st.ctime_ns
        and entry.size == st.size
        and entry.inode == st.inode
    )


def _forget_all_but(memo: dict[str, Any], keys: list[str]) -> None:
    # Keep only what this folder uses, so a long-lived process does not grow forever.
    if len(memo) > 2 * len(keys) + 1024:
        live = set(keys)
        for key in [k for k in memo if k not in live]:
            del memo[key]


def _path_of(item: Any) -> str:
    return item if isinstance(item, str) else item[0]


def parse_file(root: Path, path: str) -> tuple[str, FileTags]:
    """(blob SHA of the bytes read, their tags)."""
    language = language_of(path) or "unknown"
    try:
        data = (root / path).read_bytes()
    except OSError as e:
        return "", empty(language, 0, f"unreadable: {e.strerror}")
    return content_key(data), extract(path, data) or empty(language, 0, "no grammar")


Outline = list[tuple[int, int, str]]  # (start, end, name) of each definition, in order


def _outline(tags: FileTags) -> tuple[Outline, int]:
    return [(d.start, d.end, d.name) for d in tags.defs], tags.lines


def _chunk_one(root: Path, path: str, outline: tuple[Outline, int]) -> tuple[str, FileChunks]:
    try:
        data = (root / path).read_bytes()
    except OSError:
        return "", FileChunks([])
    defs = [Definition(name, "", start, start, end, "") for start, end, name in outline[0]]
    lines = data.count(b"\n") + 1
    return content_key(data), chunk(data, defs, lines)


# Worker-process entry points: results cross the process boundary as msgpack bytes,
# tagged so the parent knows which decoder to use.


def _parse_encoded(root: Path, path: str) -> tuple[str, tuple[bytes, RankRow]]:
    blob, tags = parse_file(root, path)
    return blob, (encode_tags(tags), rank_row(tags))


def _parse_batch(root: str, paths: list[str]) -> list[tuple[str, bytes]]:
    base = Path(root)
    out = []
    for path in paths:
        blob, tags = parse_file(base, path)
        encoded = encode_tags(tags)
        row = msgspec.msgpack.encode(rank_row(tags))
        out.append((blob, b"T" + len(encoded).to_bytes(4, "little") + encoded + row))
    return out


def _chunk_batch(
    root: str, items: list[tuple[str, tuple[Outline, int]]]
) -> list[tuple[str, bytes]]:
    base = Path(root)
    out = []
    for path, outline in items:
        blob, chunks = _chunk_one(base, path, outline)
        out.append((blob, b"C" + msgspec.msgpack.encode(chunks)))
    return out


def _decode(data: bytes) -> Any:
    if data[:1] == b"T":
        size = int.from_bytes(data[1:5], "little")
        return data[5 : 5 + size], _rank_decoder.decode(data[5 + size :])
    return _chunks_decoder.decode(data[1:])


_chunks_decoder = msgspec.msgpack.Decoder(FileChunks)
_rank_decoder = msgspec.msgpack.Decoder(RankRow)
