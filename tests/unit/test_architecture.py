"""The hexagon's rules, checked on every run.

- codeforge/domain imports no framework, no I/O library and nothing from the
  outer layers; pure libraries (msgspec, a glob matcher, a shell lexer) are fine.
- Only codeforge/container.py imports adapters/.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Outer layers of our own that the domain must not see.
OUTER_LAYERS = {
    "codeforge.services",
    "codeforge.http",
    "codeforge.web",
    "codeforge.agent",
    "codeforge.context",
    "codeforge.container",
    "codeforge.runtime",
    "codeforge.serve",
    "codeforge.cli",
    "codeforge.config",
    "codeforge.log",
    "codeforge.ports",
    "adapters",
}
# Frameworks and I/O: web, database, HTTP, queue, docker, git, logging backends, processes.
IO_AND_FRAMEWORKS = {
    "litestar", "starlette", "uvicorn", "fastapi", "aiohttp", "httpx", "requests", "urllib",
    "http", "socket", "ssl", "psycopg", "psycopg_pool", "asyncpg", "sqlite3", "yoyo", "nats",
    "docker", "git", "subprocess", "structlog", "logging", "dependency_injector", "jinja2",
    "asyncio", "threading", "multiprocessing", "os", "shutil", "tempfile", "pathlib", "io",
    "yaml", "tree_sitter", "tree_sitter_languages", "signal", "select", "selectors",
}  # fmt: skip


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: use absolute imports")
    return found


def under(module: str, packages: set[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def python_files(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def test_the_domain_imports_no_framework_io_library_or_outer_layer() -> None:
    violations = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in python_files("codeforge/domain")
        for line, module in imports_of(path)
        if under(module, OUTER_LAYERS | IO_AND_FRAMEWORKS)
    ]
    assert violations == []


def test_ports_depend_only_on_the_domain_and_pure_libraries() -> None:
    allowed_outer = {"codeforge.domain", "codeforge.ports"}
    violations = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in python_files("codeforge/ports")
        for line, module in imports_of(path)
        if (module.startswith("codeforge") and not under(module, allowed_outer))
        or under(module, IO_AND_FRAMEWORKS - {"asyncio"} | {"adapters"})
    ]
    assert violations == []


def test_only_the_container_imports_adapters() -> None:
    violations = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in python_files("codeforge")
        if path != ROOT / "codeforge" / "container.py"
        for line, module in imports_of(path)
        if under(module, {"adapters"})
    ]
    assert violations == []


def test_adapters_never_import_the_outer_application_layers() -> None:
    forbidden = {
        "codeforge.container", "codeforge.http", "codeforge.web", "codeforge.cli",
        "codeforge.serve", "codeforge.runtime",
    }  # fmt: skip
    violations = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in python_files("adapters")
        for line, module in imports_of(path)
        if under(module, forbidden)
    ]
    assert violations == []


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "model.py"
    bad.write_text("import psycopg\nfrom codeforge.services import x\n")
    modules = [m for _, m in imports_of(bad)]
    assert [m for m in modules if under(m, OUTER_LAYERS | IO_AND_FRAMEWORKS)] == modules
