"""`codeforge serve`: one process serving HTTP until a signal says stop.

Signals: SIGTERM and SIGINT start the graceful shutdown (a second one forces
the HTTP phase to stop waiting); SIGHUP reloads the reloadable settings. The
shutdown order is the ShutdownSequence's: HTTP first, so no new work arrives
while running work is suspended and the pool is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator

import structlog
import uvicorn

from codeforge.config import LoadedConfig, load_config
from codeforge.container import Container
from codeforge.http.app import create_app
from codeforge.log import LogWriter, configure_logging
from codeforge.runtime import Runtime
from codeforge.services.reload import Reloader
from codeforge.services.shutdown import Phase
from codeforge.settings import Settings

log = structlog.get_logger("codeforge.serve")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `serve` owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(loaded: LoadedConfig, *, with_worker: bool = True) -> int:
    writer = _configure_logging(loaded.settings)
    try:
        return await _serve(loaded, writer, with_worker=with_worker)
    finally:
        writer.close()


async def _serve(loaded: LoadedConfig, writer: LogWriter, *, with_worker: bool) -> int:
    settings = loaded.settings
    runtime = Runtime(Container(settings=settings))
    stop = asyncio.Event()
    reason = "signal"

    def on_stop(sig: signal.Signals) -> None:
        nonlocal reason
        if stop.is_set():
            server.force_exit = True
            return
        reason = sig.name
        log.info("shutdown requested", signal=sig.name)
        stop.set()

    server = _Server(
        uvicorn.Config(
            create_app(runtime),
            host=settings.http.host,
            port=settings.http.port,
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="on",
            timeout_graceful_shutdown=max(1, int(settings.shutdown.http_timeout)),
        )
    )
    with _signals(on_stop, _reloader(loaded, writer, runtime).reload):
        try:
            await runtime.start(with_worker=with_worker)
        except BaseException:
            await runtime.stop("start failed")
            raise

        serving = asyncio.create_task(_run_http(server), name="http")

        async def stop_http() -> None:
            server.should_exit = True
            # uvicorn stops listening, lets in-flight requests finish, then returns.
            await asyncio.shield(serving)

        runtime.shutdown.register(Phase.STOP_ACCEPTING_HTTP, "http server", stop_http)

        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        failed = serving.done() and not server.started
        if failed:
            # uvicorn logged why (usually: the port is taken) and exited its task.
            reason = "http server failed to start"
        elif serving.done():
            reason = "http server stopped"
        else:
            log.info("codeforge stopping", reason=reason)
        stopping.cancel()
        outcomes = await runtime.stop(reason)
    clean = not failed and all(not o.failures for o in outcomes)
    return 0 if clean else 1


async def _run_http(server: uvicorn.Server) -> None:
    # uvicorn logs a bind failure and calls sys.exit(1); keep that inside this task
    # so the shutdown sequence still runs and closes the pool.
    with contextlib.suppress(SystemExit):
        await server.serve()


async def work(loaded: LoadedConfig) -> int:
    """`codeforge worker`: take runs off the queue until a signal says stop; no HTTP."""
    writer = _configure_logging(loaded.settings)
    try:
        runtime = Runtime(Container(settings=loaded.settings))
        stop = asyncio.Event()

        def on_stop(sig: signal.Signals) -> None:
            log.info("shutdown requested", signal=sig.name)
            stop.set()

        with _signals(on_stop, _reloader(loaded, writer, runtime).reload):
            try:
                await runtime.start(issue_first_admin_key=False, with_worker=True)
                log.info("worker ready")
                await stop.wait()
            finally:
                outcomes = await runtime.stop("signal")
        return 0 if all(not o.failures for o in outcomes) else 1
    finally:
        writer.close()


def _configure_logging(settings: Settings) -> LogWriter:
    return configure_logging(
        level=settings.log.level,
        fmt=settings.log.format,
        service=settings.service_name,
        queue_size=settings.log.queue_size,
    )


def _reloader(loaded: LoadedConfig, writer: LogWriter, runtime: Runtime) -> Reloader:
    reloader = Reloader(lambda: _reload_settings(loaded))
    reloader.register("log level", lambda new: writer.set_level(new.log.level))
    reloader.register("rate limits and secrets", runtime.apply_reloaded)
    return reloader


@contextlib.contextmanager
def _signals(
    on_stop: Callable[[signal.Signals], None], on_reload: Callable[[], object]
) -> Iterator[None]:
    """TERM and INT stop, HUP reloads, for as long as the block runs."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop, sig)
    loop.add_signal_handler(signal.SIGHUP, on_reload)
    try:
        yield
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def _reload_settings(loaded: LoadedConfig) -> Settings:
    # Same file and flags as at start; the environment is read afresh.
    flags = {k: v for k, v in loaded.sources.items() if v.startswith("flag ")}
    current = {k: _get(loaded.settings, k) for k in flags}
    return load_config(config_file=loaded.config_file, flags=current).settings


def _get(settings: Settings, dotted: str) -> object:
    value: object = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value
