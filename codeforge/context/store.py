"""The engine's persistent cache: one SQLite file under the data dir.

    tags     content key -> encoded FileTags    (shared by every folder: same bytes, one parse)
    ranks    content key -> encoded RankRow     (the part of the tags ranking reads: a map
                                                 after an edit decodes these for every file
                                                 and full tags only for files it shows)
    chunks   content key -> encoded FileChunks  (search chunks, made on the first search)
    vectors  chunk text key -> float32 vector   (embeddings, per model)
    folders  folder path -> its file index      (path, stat signature, content key)
    results  request key -> an encoded result   (a rendered map, for a file set + focus + budget)

The content key is the git blob SHA-1 of the bytes with the language and the
query version, so a change to a query re-parses, and copies of a file in many
worktrees are parsed once. SQLite in WAL mode lets several processes (CLI, API
workers) read while one writes; writes are short transactions. Results are
pruned to the most recent RESULTS_KEPT.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import msgspec

from codeforge.context.tags import FileTags

RESULTS_KEPT = 256
_BATCH = 500
Table = Literal["tags", "ranks", "chunks", "vectors"]


class FileEntry(msgspec.Struct, array_like=True, frozen=True):
    path: str
    mtime_ns: int
    ctime_ns: int
    size: int
    inode: int
    key: str


class FolderIndex(msgspec.Struct, array_like=True):
    entries: list[FileEntry]
    # When the index was taken: files changed within the clock's granularity of it
    # are hashed again next time (git's "racy" rule), since their stat may not show it.
    taken_ns: int = 0


_tags_encoder = msgspec.msgpack.Encoder()
_tags_decoder = msgspec.msgpack.Decoder(FileTags)
_index_decoder = msgspec.msgpack.Decoder(FolderIndex)


def encode_tags(tags: FileTags) -> bytes:
    return _tags_encoder.encode(tags)


def decode_tags(data: bytes) -> FileTags:
    return _tags_decoder.decode(data)


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        with self._connection() as db:
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS tags (key TEXT PRIMARY KEY, data BLOB NOT NULL);
                CREATE TABLE IF NOT EXISTS ranks (key TEXT PRIMARY KEY, data BLOB NOT NULL);
                CREATE TABLE IF NOT EXISTS chunks (key TEXT PRIMARY KEY, data BLOB NOT NULL);
                CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, data BLOB NOT NULL);
                CREATE TABLE IF NOT EXISTS folders (root TEXT PRIMARY KEY, data BLOB NOT NULL);
                CREATE TABLE IF NOT EXISTS results (
                    key TEXT PRIMARY KEY, data BLOB NOT NULL, used REAL NOT NULL);
                """
            )

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        yield db

    # -- content-keyed blobs: tags, chunks, vectors ---------------------------------

    def blobs(self, table: Table, keys: Iterable[str]) -> dict[str, bytes]:
        """The blobs held in `table` for `keys` (missing keys are left out)."""
        wanted = list(keys)
        out: dict[str, bytes] = {}
        with self._connection() as db:
            for i in range(0, len(wanted), _BATCH):
                batch = wanted[i : i + _BATCH]
                marks = ",".join("?" * len(batch))
                sql = f"SELECT key, data FROM {table} WHERE key IN ({marks})"  # noqa: S608
                out.update(db.execute(sql, batch))
        return out

    def put_blobs(self, table: Table, items: Iterable[tuple[str, bytes]]) -> None:
        with self._connection() as db:
            db.execute("BEGIN")
            try:
                db.executemany(
                    f"INSERT OR REPLACE INTO {table} (key, data) VALUES (?, ?)",  # noqa: S608
                    items,
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def count(self, table: Table) -> int:
        with self._connection() as db:
            row = db.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
        return int(row[0])

    def tags(self, keys: Iterable[str]) -> dict[str, bytes]:
        return self.blobs("tags", keys)

    def put_tags(self, items: Iterable[tuple[str, bytes]]) -> None:
        self.put_blobs("tags", items)

    # -- folders -------------------------------------------------------------------

    def folder(self, root: str) -> FolderIndex | None:
        with self._connection() as db:
            row = db.execute("SELECT data FROM folders WHERE root = ?", (root,)).fetchone()
        return _index_decoder.decode(row[0]) if row else None

    def put_folder(self, root: str, index: FolderIndex) -> None:
        with self._connection() as db:
            db.execute(
                "INSERT OR REPLACE INTO folders (root, data) VALUES (?, ?)",
                (root, msgspec.msgpack.encode(index)),
            )

    # -- results -------------------------------------------------------------------

    def result(self, key: str) -> bytes | None:
        with self._connection() as db:
            row = db.execute("SELECT data FROM results WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put_result(self, key: str, data: bytes) -> None:
        with self._connection() as db:
            db.execute(
                "INSERT OR REPLACE INTO results (key, data, used) VALUES (?, ?, ?)",
                (key, data, time.time()),
            )
            db.execute(
                "DELETE FROM results WHERE key NOT IN "
                "(SELECT key FROM results ORDER BY used DESC LIMIT ?)",
                (RESULTS_KEPT,),
            )

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
