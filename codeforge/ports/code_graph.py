"""Where a project's code graph is kept for the API: symbols and edges, queried in place.

Adapters: PostgreSQL (`adapters/postgres/code_graph.py`, migration 0020) and memory
(`adapters/memory/code_graph.py`). The CLI keeps graphs in the engine's data-dir
cache instead; both answer the same queries the same way.

Contract (one suite, `tests/contract/test_code_graph_store.py`, runs it against every
adapter):

- `replace` swaps a project's whole graph at once: a reader sees the old graph or the
  new one, never a mix. `fingerprint` returns the fingerprint given to the last
  `replace` (None before any), which callers compare to the folder's to skip rebuilding.
- A symbol spec is `name`, `path:name`, or a file's `path` (its top level).
- `callers`/`callees` list the symbols with an edge into/out of any symbol the spec
  names, most uses first (ties by path, then line), each with the summed uses.
- `importers` lists the files importing the file at `path`, by path.
- `neighbourhood` lists symbols within `hops` edges of the spec's symbols (calls in
  either direction; imports between files' top levels), nearest first (ties by path,
  then line), at most `limit`, never the starting symbols themselves.
- Unknown projects and specs give empty lists, not errors. Limits are 1-500.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from codeforge.domain.code_graph import GraphData, GraphHit
from codeforge.domain.errors import ValidationFailed

__all__ = ["CodeGraphStore", "check_graph_limit"]


def check_graph_limit(limit: int, hops: int = 1) -> None:
    if not 1 <= limit <= 500:
        raise ValidationFailed("limit is 1-500", field="limit")
    if not 1 <= hops <= 5:
        raise ValidationFailed("hops is 1-5", field="hops")


class CodeGraphStore(Protocol):
    async def fingerprint(self, project_id: uuid.UUID) -> str | None: ...

    async def replace(
        self, tenant_id: uuid.UUID, project_id: uuid.UUID, fingerprint: str, data: GraphData
    ) -> None: ...

    async def callers(self, project_id: uuid.UUID, spec: str, limit: int) -> list[GraphHit]: ...

    async def callees(self, project_id: uuid.UUID, spec: str, limit: int) -> list[GraphHit]: ...

    async def importers(self, project_id: uuid.UUID, path: str, limit: int) -> list[GraphHit]: ...

    async def neighbourhood(
        self, project_id: uuid.UUID, spec: str, hops: int, limit: int
    ) -> list[GraphHit]: ...
