"""The code graph: imports between files and calls/references between symbols.

Built from the same tags as the repo map, nothing re-parsed. A use of a name
inside a definition becomes an edge from that definition (or from the file's
top level) to the definitions of the name, resolved in order of trust: the same
file, then files it imports, then anywhere — unless more than AMBIGUOUS files
define it (`get`, `run`), when a guess would be noise and no edge is made.
Imports resolve module strings to files by language rules (relative paths,
dotted modules, `crate::` paths, include files), matched on path suffixes so
`src/` layouts work.

Queries: callers and callees of a symbol, importers of a module, and the
neighbourhood of symbols or files within k hops under a node budget.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable, Sequence

from codeforge.context.tags import FileTags
from codeforge.domain.code_graph import MODULE, GraphData, GraphHit, Symbol

__all__ = ["MODULE", "CodeGraph", "GraphData", "GraphHit", "ImportResolver", "build_graph"]

AMBIGUOUS = 3
# Languages whose files call each other's definitions.
FAMILY = {"c": "c", "cpp": "c", "javascript": "js", "typescript": "js", "tsx": "js"}


def build_graph(paths: Sequence[str], tags: Sequence[FileTags]) -> GraphData:
    symbols: list[Symbol] = []
    first_symbol: list[int] = []
    by_name: dict[str, list[int]] = defaultdict(list)
    for f, t in enumerate(tags):
        first_symbol.append(len(symbols))
        symbols.append(Symbol(f, -1, MODULE, "module", 1, max(t.lines, 1)))
        for i, d in enumerate(t.defs):
            by_name[d.name].append(len(symbols))
            symbols.append(Symbol(f, i, d.name, d.kind, d.line + 1, d.end + 1))
    resolver = ImportResolver(paths)
    imports: set[tuple[int, int]] = set()
    imported: dict[int, set[int]] = defaultdict(set)
    for f, t in enumerate(tags):
        for module in t.imports:
            for target in resolver.resolve(module, paths[f], t.language):
                if target != f:
                    imports.add((f, target))
                    imported[f].add(target)
    calls: dict[tuple[int, int], int] = defaultdict(int)
    family = [FAMILY.get(t.language, t.language) for t in tags]
    for f, t in enumerate(tags):
        if not t.ref_names:
            continue
        base = first_symbol[f]
        for name, owner, uses in t.uses():
            candidates = by_name.get(name)
            if not candidates:
                continue
            candidates = [s for s in candidates if family[symbols[s].file] == family[f]]
            targets = [s for s in candidates if symbols[s].file == f]
            if not targets:
                near = imported.get(f, ())
                targets = [s for s in candidates if symbols[s].file in near]
            if not targets and len({symbols[s].file for s in candidates}) <= AMBIGUOUS:
                targets = candidates
            caller = base + 1 + owner if owner >= 0 else base
            for target in targets:
                if target != caller:
                    calls[(caller, target)] += uses
    return GraphData(
        list(paths),
        symbols,
        [(a, b, n) for (a, b), n in calls.items()],
        sorted(imports),
    )


class CodeGraph:
    def __init__(self, data: GraphData) -> None:
        self.data = data
        self._out: dict[int, list[tuple[int, int]]] = defaultdict(list)
        self._in: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for a, b, n in data.calls:
            self._out[a].append((b, n))
            self._in[b].append((a, n))
        self._importers: dict[int, list[int]] = defaultdict(list)
        self._imports: dict[int, list[int]] = defaultdict(list)
        for a, b in data.imports:
            self._importers[b].append(a)
            self._imports[a].append(b)
        self._by_name: dict[str, list[int]] = defaultdict(list)
        self._module_of: dict[int, int] = {}
        for s, symbol in enumerate(data.symbols):
            if symbol.index < 0:
                self._module_of[symbol.file] = s
            else:
                self._by_name[symbol.name].append(s)
        self._file_of = {p: i for i, p in enumerate(data.paths)}

    # -- lookups -------------------------------------------------------------------

    def find(self, spec: str) -> list[int]:
        """Symbols named by `spec`: a file's path (its top level), `path:name` or `name`."""
        spec = spec.strip()
        if spec in self._file_of:
            return [self._module_of[self._file_of[spec]]]
        path, _, name = spec.rpartition(":")
        if path and path in self._file_of:
            f = self._file_of[path]
            return [s for s in self._by_name.get(name, ()) if self.data.symbols[s].file == f]
        return list(self._by_name.get(spec, ()))

    def hit(self, s: int, uses: int = 0, hops: int = 1) -> GraphHit:
        symbol = self.data.symbols[s]
        return GraphHit(
            self.data.paths[symbol.file],
            symbol.name,
            symbol.kind,
            symbol.line,
            symbol.end_line,
            uses,
            hops,
        )

    def file_hit(self, f: int, hops: int = 1) -> GraphHit:
        return GraphHit(self.data.paths[f], "", "file", 1, 1, 0, hops)

    # -- queries -------------------------------------------------------------------

    def callers(self, spec: str, limit: int = 50) -> list[GraphHit]:
        return self._edges(self.find(spec), self._in, limit)

    def callees(self, spec: str, limit: int = 50) -> list[GraphHit]:
        return self._edges(self.find(spec), self._out, limit)

    def _edges(
        self, sources: list[int], edges: dict[int, list[tuple[int, int]]], limit: int
    ) -> list[GraphHit]:
        counted: dict[int, int] = defaultdict(int)
        for s in sources:
            for other, uses in edges.get(s, ()):
                counted[other] += uses
        ranked = sorted(counted.items(), key=lambda kv: (-kv[1], *self._place(kv[0])))
        return [self.hit(s, uses) for s, uses in ranked[:limit]]

    def _place(self, s: int) -> tuple[str, int, str]:
        symbol = self.data.symbols[s]
        return self.data.paths[symbol.file], symbol.line, symbol.name

    def importers(self, module: str, limit: int = 50) -> list[GraphHit]:
        """Files importing `module` (a path, or a module name as source code spells it)."""
        targets = self._files_named(module)
        found = sorted({a for t in targets for a in self._importers.get(t, ())})
        # File indexes follow path order, so this is by path.
        return [self.file_hit(f) for f in found[:limit]]

    def imports_of(self, path: str, limit: int = 50) -> list[GraphHit]:
        f = self._file_of.get(path)
        found = sorted(self._imports.get(f, ())) if f is not None else []
        return [self.file_hit(t) for t in found[:limit]]

    def _files_named(self, module: str) -> list[int]:
        if module in self._file_of:
            return [self._file_of[module]]
        resolver = ImportResolver(self.data.paths)
        found: set[int] = set()
        for language in ("python", "javascript", "rust", "java", "c", "go", "php", "ruby"):
            found.update(resolver.resolve(module, "", language))
        return sorted(found)

    def neighbourhood(
        self, seeds: Sequence[str], hops: int = 2, budget: int = 50
    ) -> list[GraphHit]:
        """Symbols within `hops` of the seeds (symbols or files), nearest first, at most
        `budget` of them. Calls count both ways; imports link files' top levels."""
        start = {s for spec in seeds for s in self.find(spec)}
        return self.around(start, hops, budget)

    def around(self, start: set[int], hops: int, budget: int) -> list[GraphHit]:
        """Symbols within `hops` of `start` (not in it), nearest first, at most `budget`."""
        seen: dict[int, int] = {s: 0 for s in start}
        frontier = sorted(start)
        for distance in range(1, hops + 1):
            following: list[int] = []
            for s in frontier:
                for other in self._neighbours(s):
                    if other not in seen:
                        seen[other] = distance
                        following.append(other)
            frontier = following
        found = sorted((d, *self._place(s), s) for s, d in seen.items() if d > 0)
        return [self.hit(s, hops=d) for d, _, _, _, s in found[:budget]]

    def _neighbours(self, s: int) -> list[int]:
        out = [b for b, _ in self._out.get(s, ())]
        out += [a for a, _ in self._in.get(s, ())]
        symbol = self.data.symbols[s]
        if symbol.index < 0:
            f = symbol.file
            out += [self._module_of[t] for t in self._imports.get(f, ())]
            out += [self._module_of[a] for a in self._importers.get(f, ())]
        return out


_SOURCE_EXTENSIONS = {
    "javascript": (".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx"),
    "typescript": (".ts", ".tsx", ".d.ts", ".js"),
    "tsx": (".tsx", ".ts", ".js", ".jsx"),
}


class ImportResolver:
    """Module strings, as each language writes them, to files of the folder."""

    def __init__(self, paths: Sequence[str]) -> None:
        self._index = {p: i for i, p in enumerate(paths)}
        self._suffix: dict[str, list[int]] = defaultdict(list)
        self._dirs: dict[str, list[int]] = defaultdict(list)
        for i, p in enumerate(paths):
            parts = p.split("/")
            for k in range(1, len(parts) + 1):
                self._suffix["/".join(parts[-k:])].append(i)
            directory = parts[:-1]
            for k in range(1, len(directory) + 1):
                self._dirs["/".join(directory[-k:])].append(i)

    def resolve(self, module: str, importer: str, language: str) -> list[int]:
        module = module.strip()
        if not module or len(module) > 300:
            return []
        here = posixpath.dirname(importer)
        match language:
            case "python":
                return self._python(module, here)
            case "javascript" | "typescript" | "tsx":
                if not module.startswith("."):
                    return []
                base = posixpath.normpath(posixpath.join(here, module))
                candidates = [base] + [base + e for e in _SOURCE_EXTENSIONS[language]]
                candidates += [f"{base}/index{e}" for e in _SOURCE_EXTENSIONS[language]]
                return self._first_exact(candidates)
            case "c" | "cpp":
                exact = self._first_exact([posixpath.normpath(posixpath.join(here, module))])
                return exact or self._by_suffix(module)
            case "ruby":
                name = module if module.endswith(".rb") else module + ".rb"
                exact = self._first_exact([posixpath.normpath(posixpath.join(here, name))])
                return exact or self._by_suffix(name)
            case "rust":
                parts = [
                    p
                    for p in module.split("{")[0].split("::")
                    if p and p not in {"crate", "self", "super", "*"}
                ]
                for k in range(len(parts), 0, -1):
                    stem = "/".join(parts[:k])
                    found = self._by_suffix(stem + ".rs") or self._by_suffix(stem + "/mod.rs")
                    if found:
                        return found
                return []
            case "java" | "c_sharp":
                extension = ".java" if language == "java" else ".cs"
                parts = [p for p in module.replace("static ", "").split(".") if p]
                if parts and parts[-1] == "*":
                    return self._dirs.get("/".join(parts[:-1]), [])
                for k in range(len(parts), 0, -1):
                    found = self._by_suffix("/".join(parts[-k:]) + extension)
                    if found:
                        return found
                return []
            case "go":
                return list(self._dirs.get(module.strip('"').rstrip("/"), [])) or list(
                    self._dirs.get(module.strip('"').rsplit("/", 1)[-1], [])
                )
            case "php":
                if module.endswith(".php"):
                    exact = self._first_exact([posixpath.normpath(posixpath.join(here, module))])
                    return exact or self._by_suffix(module)
                parts = [p for p in module.split("\\") if p]
                for k in range(len(parts), 0, -1):
                    found = self._by_suffix("/".join(parts[-k:]) + ".php")
                    if found:
                        return found
                return []
        return []

    def _python(self, module: str, here: str) -> list[int]:
        dots = len(module) - len(module.lstrip("."))
        parts = [p for p in module[dots:].split(".") if p]
        if dots:
            base = here
            for _ in range(dots - 1):
                base = posixpath.dirname(base)
            stem = "/".join([base, *parts]).strip("/") if base else "/".join(parts)
            return self._first_exact([f"{stem}.py", f"{stem}/__init__.py"])
        if not parts:
            return []
        stem = "/".join(parts)
        exact = self._first_exact([f"{stem}.py", f"{stem}/__init__.py"])
        return exact or self._by_suffix(stem + ".py") or self._by_suffix(stem + "/__init__.py")

    def _first_exact(self, candidates: Iterable[str]) -> list[int]:
        for c in candidates:
            if c in self._index:
                return [self._index[c]]
        return []

    def _by_suffix(self, suffix: str) -> list[int]:
        found = self._suffix.get(suffix.lstrip("/"), [])
        return list(found) if len(found) <= AMBIGUOUS else []
