"""`codeforge` — the command line.

    codeforge serve [--host H] [--port P] [--no-worker]   API + admin pages + workers
    codeforge worker                         execute runs from the queue (no HTTP)
    codeforge run --repo PATH --task TEXT    one run on a local repository, no server
    codeforge migrate up|down|status         database schema
    codeforge config show [--json]           the effective configuration and its sources
    codeforge keys create|list|revoke        API keys
    codeforge secrets set|list|delete        the file secret store under the data dir
    codeforge repomap PATH [--tokens N] [--focus F ...] [--json]   ranked signatures of a folder
    codeforge search PATH QUERY [--limit N] [--regex] [--pack] [--json]   hybrid code search
    codeforge graph PATH callers|callees|importers|neighbours SPEC [--json]   the code graph

Every command takes `--config FILE` (or CODEFORGE_CONFIG). Problems a user can
fix (bad config, unreachable database) end with one line on stderr and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from codeforge import __version__
from codeforge.config import ConfigError, LoadedConfig, effective_items, load_config
from codeforge.domain.errors import DomainError
from codeforge.domain.runs import SandboxMode
from codeforge.ports.errors import PortError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="a YAML config file layered over the defaults (env: CODEFORGE_CONFIG)",
    )
    parser = argparse.ArgumentParser(
        prog="codeforge",
        description="Run LLM coding agents on your git repositories, safely and observably.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"codeforge {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve", parents=[common], help="serve the HTTP API and admin pages"
    )
    serve.add_argument("--host", help="address to listen on (http.host)")
    serve.add_argument("--port", type=int, help="port to listen on (http.port)")
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="serve the API only; `codeforge worker` processes execute the runs",
    )
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser(
        "worker", parents=[common], help="execute runs from the queue (no HTTP)"
    )
    worker.set_defaults(handler=_work)

    run = commands.add_parser(
        "run",
        parents=[common],
        help="run an agent on a local repository, without a server",
        description=(
            "Register REPO (CodeForge works on its own clone; your checkout is never "
            "touched), run the task with the native agent, print progress, and end with "
            "the result and the patch's path. Exit status 0 when the run succeeded."
        ),
    )
    run.add_argument("--repo", required=True, type=Path, help="the git repository to work on")
    run.add_argument("--task", required=True, help="what to do ('-' reads it from stdin)")
    run.add_argument("--title", default="", help="a short title (default: the task's first line)")
    run.add_argument(
        "--model", default="", help="a registered model's name (default: llm.default_model)"
    )
    run.add_argument(
        "--deliver",
        choices=["patch", "commit-local"],
        default="patch",
        help="commit-local also copies the run's branch into REPO (a new ref only)",
    )
    run.add_argument("--mode", choices=[m.value for m in SandboxMode], help="the sandbox kind")
    run.add_argument("--max-cost", type=Decimal, metavar="USD", help="stop before spending more")
    run.add_argument("--max-steps", type=int, metavar="N", help="at most N model calls")
    run.add_argument("--json", action="store_true", help="one JSON object per line")
    run.set_defaults(handler=_run)

    migrate = commands.add_parser("migrate", parents=[common], help="manage the database schema")
    migrate.add_argument("action", choices=["up", "down", "status"])
    migrate.add_argument(
        "--steps", type=int, default=None, help="with `down`: how many to roll back (default: all)"
    )
    migrate.set_defaults(handler=_migrate)

    config = commands.add_parser("config", parents=[common], help="inspect the configuration")
    config.add_argument("action", choices=["show"])
    config.add_argument("--json", action="store_true", help="print JSON instead of a table")
    config.set_defaults(handler=_config)

    keys = commands.add_parser("keys", parents=[common], help="manage API keys")
    keys.add_argument("action", choices=["create", "list", "revoke"])
    keys.add_argument("key_id", nargs="?", help="with `revoke`: the key's id")
    keys.add_argument("--role", choices=["admin", "member", "viewer"], default="member")
    keys.add_argument("--name", default="cli", help="a label for the key")
    keys.add_argument(
        "--tenant", default="default", help="tenant name (created if missing); default: default"
    )
    keys.set_defaults(handler=_keys)

    secrets = commands.add_parser(
        "secrets", parents=[common], help="manage secrets in the file store (data_dir/secrets)"
    )
    secrets.add_argument("action", choices=["set", "list", "delete"])
    secrets.add_argument("name", nargs="?", help="the secret's name, e.g. OPENAI_API_KEY")
    secrets.add_argument(
        "--value-from-stdin",
        action="store_true",
        help="with `set`: read the value from standard input instead of prompting",
    )
    secrets.set_defaults(handler=_secrets)
    _add_context_commands(commands, common)
    return parser


# -- code intelligence: repomap, search, graph -------------------------------------------


def _add_context_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    repomap = commands.add_parser(
        "repomap", parents=[common], help="the most relevant signatures of a folder, ranked"
    )
    repomap.add_argument("path", help="a folder (a git work tree or any source folder)")
    repomap.add_argument("--tokens", type=int, default=1024, help="token budget (default 1024)")
    repomap.add_argument(
        "--focus",
        nargs="+",
        default=[],
        metavar="FILE|SYMBOL",
        help="files (paths relative to PATH) or symbol names to rank around",
    )
    repomap.add_argument("--query", default="", help="task text: names in it are boosted")
    repomap.add_argument("--json", action="store_true", help="print the structured map as JSON")
    repomap.set_defaults(handler=_repomap)

    search = commands.add_parser(
        "search", parents=[common], help="search code: keyword, semantic, repo map and graph"
    )
    search.add_argument("path", help="a folder to search")
    search.add_argument("query", help="what to look for (with --regex: a pattern)")
    search.add_argument("--limit", type=int, default=20, help="results to show (default 20)")
    search.add_argument(
        "--regex", action="store_true", help="grep for an extended regular expression"
    )
    search.add_argument("--fixed", action="store_true", help="with --regex: a literal string")
    search.add_argument(
        "--pack", action="store_true", help="print a context pack (the text) within --tokens"
    )
    search.add_argument("--tokens", type=int, default=4000, help="with --pack: token budget")
    search.add_argument("--focus", nargs="+", default=[], metavar="FILE|SYMBOL")
    search.add_argument("--json", action="store_true", help="print JSON")
    search.set_defaults(handler=_search)

    graph = commands.add_parser("graph", parents=[common], help="query the code graph")
    graph.add_argument("path", help="a folder")
    graph.add_argument("query", choices=["callers", "callees", "importers", "neighbours"])
    graph.add_argument("spec", help="a symbol (name, Class.name or path:name), a file or module")
    graph.add_argument("--hops", type=int, default=2, help="with neighbours: how far")
    graph.add_argument("--limit", type=int, default=50, help="results at most")
    graph.add_argument("--json", action="store_true", help="print JSON")
    graph.set_defaults(handler=_graph)


class _ProgressBar:
    """Parsing progress on stderr: a bar on a terminal, two lines elsewhere."""

    SHOWN_FROM = 25  # items; a small update is not worth a bar

    def __init__(self, verb: str = "indexed", unit: str = "files") -> None:
        self._verb, self._unit = verb, unit
        self._tty = sys.stderr.isatty()
        self._started: float | None = None
        self._total = 0

    def __call__(self, done: int, total: int) -> None:
        import time

        if total < self.SHOWN_FROM:
            return
        if self._started is None:
            self._started, self._total = time.perf_counter(), total
            if not self._tty:
                print(f"codeforge: {self._verb} 0 of {total} {self._unit}…", file=sys.stderr)
        if self._tty:
            filled = int(30 * done / total)
            bar = "#" * filled + "." * (30 - filled)
            print(f"\r[{bar}] {done}/{total} {self._unit}", end="", file=sys.stderr, flush=True)
        if done == total:
            seconds = time.perf_counter() - self._started
            end = "\n" if self._tty else ""
            print(
                f"{end}codeforge: {self._verb} {total} {self._unit} in {seconds:.1f} s",
                file=sys.stderr,
            )
            self._started = None


def _engine(loaded: LoadedConfig) -> Any:
    return _container(loaded).context_engine()


def _print_json(value: Any) -> None:
    import msgspec

    print(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())


def _repomap(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    result = _engine(loaded).repo_map(
        args.path, tokens=args.tokens, focus=args.focus, query=args.query, progress=_ProgressBar()
    )
    if args.json:
        _print_json(result)
        return EXIT_OK
    print(result.text, end="" if result.text.endswith("\n") else "\n")
    print(
        f"codeforge: {result.tokens} of {result.budget} tokens, "
        f"{len(result.files)} of {result.files_total} files",
        file=sys.stderr,
    )
    return EXIT_OK


def _search(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    engine = _engine(loaded)
    if args.regex:
        found = engine.grep(args.path, args.query, limit=args.limit, fixed=args.fixed)
        if args.json:
            _print_json(found)
            return EXIT_OK
        for m in found.matches:
            print(f"{m.path}:{m.line}: {m.text}")
        if found.truncated:
            print(f"codeforge: stopped at {args.limit} matches (--limit)", file=sys.stderr)
        return EXIT_OK
    progress = _ProgressBar()
    if args.pack:
        pack = asyncio.run(
            engine.context_pack(
                args.path,
                args.query,
                focus=args.focus,
                token_budget=args.tokens,
                progress=progress,
                embed_progress=_ProgressBar("embedded", "chunks"),
            )
        )
        for notice in pack.notices:
            print(f"codeforge: {notice}", file=sys.stderr)
        if args.json:
            _print_json(pack)
            return EXIT_OK
        for item in pack.items:
            print(f"--- {item.path}:{item.start_line}-{item.end_line}  {'; '.join(item.why)}")
            print(item.text)
        print(f"codeforge: {pack.tokens} of {pack.token_budget} tokens", file=sys.stderr)
        return EXIT_OK
    results = asyncio.run(
        engine.search(
            args.path,
            args.query,
            limit=args.limit,
            focus=args.focus,
            progress=progress,
            embed_progress=_ProgressBar("embedded", "chunks"),
        )
    )
    for notice in results.notices:
        print(f"codeforge: {notice}", file=sys.stderr)
    if args.json:
        _print_json(results)
        return EXIT_OK
    for hit in results.hits:
        symbol = f"  {hit.symbol}" if hit.symbol else ""
        print(f"{hit.path}:{hit.start_line}-{hit.end_line}{symbol}  [{', '.join(hit.why)}]")
        if hit.preview:
            print(f"    {hit.preview}")
    if not results.hits:
        print("codeforge: nothing found", file=sys.stderr)
    return EXIT_OK


def _graph(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    graph = _engine(loaded).graph(args.path, progress=_ProgressBar())
    if args.query == "callers":
        hits = graph.callers(args.spec, args.limit)
    elif args.query == "callees":
        hits = graph.callees(args.spec, args.limit)
    elif args.query == "importers":
        hits = graph.importers(args.spec, args.limit)
    else:
        hits = graph.neighbourhood([args.spec], args.hops, args.limit)
    if args.json:
        _print_json(hits)
        return EXIT_OK
    for hit in hits:
        where = f"{hit.path}:{hit.line}" if hit.name else hit.path
        extra = f"  x{hit.uses}" if hit.uses else (f"  ({hit.hops} hops)" if hit.hops > 1 else "")
        print(f"{where}  {hit.name}{extra}".rstrip())
    if not hits:
        print(f"codeforge: no {args.query} found for {args.spec!r}", file=sys.stderr)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    flags = {"http.host": getattr(args, "host", None), "http.port": getattr(args, "port", None)}
    config_file = getattr(args, "config", None)
    try:
        loaded = load_config(config_file=config_file, flags=flags)
    except ConfigError as e:
        print(f"codeforge: {e}", file=sys.stderr)
        return EXIT_USAGE
    handler: Callable[[LoadedConfig, argparse.Namespace], int] = args.handler
    try:
        return handler(loaded, args)
    except PortError as e:
        print(f"codeforge: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except DomainError as e:
        print(f"codeforge: {e.message}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _config(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    rows = effective_items(loaded)
    if args.json:
        print(json.dumps({k: {"value": v, "source": s} for k, v, s in rows}, indent=2))
        return EXIT_OK
    width = max(len(k) for k, _, _ in rows)
    for key, value, source in rows:
        print(f"{key:<{width}}  {_show(value):<30}  # {source}")
    return EXIT_OK


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str | bool) or value is None else str(value)


def _migrate(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    from codeforge.log import configure_logging

    writer = configure_logging(
        level=loaded.settings.log.level, fmt=loaded.settings.log.format, stream=sys.stderr
    )
    try:
        return asyncio.run(_run_migrations(loaded, args.action, args.steps))
    finally:
        writer.close()


async def _run_migrations(loaded: LoadedConfig, action: str, steps: int | None) -> int:
    from codeforge.container import Container

    container = Container(settings=loaded.settings)
    try:
        migrator = await container.migrator()
        if action == "status":
            states = await asyncio.to_thread(migrator.status)
            for state in states:
                print(f"{'applied' if state.applied else 'pending':<8} {state.id}")
            if not states:
                print("no migrations found")
        elif action == "up":
            applied = await asyncio.to_thread(migrator.apply)
            print("\n".join(f"applied  {m}" for m in applied) or "nothing to apply")
        else:
            rolled = await asyncio.to_thread(migrator.rollback, steps)
            print("\n".join(f"rolled back {m}" for m in rolled) or "nothing to roll back")
        return EXIT_OK
    finally:
        result = container.shutdown_resources()
        if result is not None:
            await result


def _keys(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    from codeforge.log import configure_logging

    writer = configure_logging(level="warning", fmt="console", stream=sys.stderr)
    try:
        return asyncio.run(_run_keys(loaded, args))
    finally:
        writer.close()


async def _run_keys(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    import uuid

    from codeforge.domain.keys import Principal, Role
    from codeforge.runtime import Runtime

    runtime = Runtime(_container(loaded))
    try:
        await runtime.start(issue_first_admin_key=False)
        keys = runtime.services.api_keys
        if args.action == "create":
            issued = await keys.create_for_tenant_name(
                name=args.name, role=Role(args.role), tenant=args.tenant
            )
            print(f"created {args.role} key {issued.key.id} for tenant {args.tenant}")
            print("store it now: it is shown only once")
            print(issued.secret)
            return EXIT_OK
        tenant_id = await keys.tenant_id_of(args.tenant)
        # Whoever can run the CLI on this host owns the install: it acts as the tenant's admin.
        cli = Principal(tenant_id=tenant_id, key_id=uuid.UUID(int=0), role=Role.ADMIN)
        if args.action == "list":
            page = await keys.list(cli, limit=200)
            for key in page.items:
                state = "revoked" if key.revoked_at else "active"
                print(f"{key.id}  {key.role.value:<7} {state:<8} cf_{key.prefix}_…  {key.name}")
            return EXIT_OK
        if not args.key_id:
            print("codeforge: keys revoke needs the key's id", file=sys.stderr)
            return EXIT_USAGE
        try:
            key_id = uuid.UUID(args.key_id)
        except ValueError:
            print(f"codeforge: {args.key_id!r} is not a key id", file=sys.stderr)
            return EXIT_USAGE
        revoked = await keys.revoke(cli, key_id)
        print(f"revoked {revoked.id}")
        return EXIT_OK
    finally:
        await runtime.stop("cli finished")


def _run(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    from codeforge.log import configure_logging

    task = sys.stdin.read() if args.task == "-" else args.task
    if not task.strip():
        print("codeforge: the task is empty", file=sys.stderr)
        return EXIT_USAGE
    if args.max_cost is not None and (not args.max_cost.is_finite() or args.max_cost < 0):
        print("codeforge: --max-cost must be an amount >= 0", file=sys.stderr)
        return EXIT_USAGE
    if args.max_steps is not None and args.max_steps < 1:
        print("codeforge: --max-steps must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if not args.repo.is_dir():
        print(f"codeforge: {args.repo} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    # Progress goes to stdout; only problems are logged (to stderr).
    writer = configure_logging(level="warning", fmt="console", stream=sys.stderr)
    try:
        return asyncio.run(_run_headless(loaded, args, task))
    finally:
        writer.close()


async def _run_headless(loaded: LoadedConfig, args: argparse.Namespace, task: str) -> int:
    from codeforge.domain.runs import DeliverMode
    from codeforge.headless import RunRequest, run_headless
    from codeforge.runtime import Runtime

    runtime = Runtime(_container(loaded))
    try:
        return await run_headless(
            runtime,
            RunRequest(
                repo=args.repo,
                task=task,
                title=args.title,
                model=args.model,
                deliver=DeliverMode(args.deliver),
                mode=SandboxMode(args.mode) if args.mode else None,
                max_cost_usd=args.max_cost,
                max_steps=args.max_steps,
                as_json=args.json,
            ),
        )
    finally:
        await runtime.stop("run finished")


def _secrets(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    import getpass

    from codeforge.log import register_secret

    secrets = _container(loaded).secrets()
    if args.action == "list":
        for name in secrets.names():
            print(name)
        return EXIT_OK
    if not args.name:
        print(f"codeforge: secrets {args.action} needs a NAME", file=sys.stderr)
        return EXIT_USAGE
    if args.action == "delete":
        removed = secrets.delete(args.name)
        print(f"deleted {args.name.upper()}" if removed else f"no secret {args.name.upper()}")
        return EXIT_OK
    value = (
        sys.stdin.readline().rstrip("\n")
        if args.value_from_stdin
        else getpass.getpass(f"value of {args.name.upper()}: ")
    )
    register_secret(value)
    secrets.set(args.name, value)
    print(f"stored {args.name.upper()}; a running server picks it up on SIGHUP")
    return EXIT_OK


def _container(loaded: LoadedConfig) -> Any:
    from codeforge.container import Container

    return Container(settings=loaded.settings)


def _serve(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    from codeforge.serve import serve

    return asyncio.run(serve(loaded, with_worker=not args.no_worker))


def _work(loaded: LoadedConfig, args: argparse.Namespace) -> int:
    from codeforge.serve import work

    if loaded.settings.queue.kind == "memory":
        print(
            "codeforge: `codeforge worker` takes runs from a queue shared between processes; "
            "set queue.kind: nats (CODEFORGE_QUEUE__KIND=nats) — with the in-process queue, "
            "`codeforge serve` runs the workers itself",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return asyncio.run(work(loaded))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
