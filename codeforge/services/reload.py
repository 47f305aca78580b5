"""SIGHUP: re-read the configuration and apply the parts that can change live."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from codeforge.settings import Settings

Applier = Callable[[Settings], None]

log = structlog.get_logger("codeforge.reload")


class Reloader:
    """Holds the appliers of reloadable settings (log level, rate limits, secrets).

    `reload()` loads a fresh configuration with the loader it was given; when the
    new configuration is invalid, nothing is applied and the error is logged,
    so a typo in a live config file never takes a running service down.
    """

    def __init__(self, load: Callable[[], Settings]) -> None:
        self._load = load
        self._appliers: list[tuple[str, Applier]] = []

    def register(self, name: str, applier: Applier) -> None:
        self._appliers.append((name, applier))

    def reload(self) -> bool:
        try:
            settings = self._load()
        except Exception as e:  # a bad file must not stop a running service
            log.error("config reload rejected", error=str(e))
            return False
        applied: list[str] = []
        for name, applier in self._appliers:
            try:
                applier(settings)
                applied.append(name)
            except Exception as e:  # one part failing must not block the others
                log.error("config reload part failed", part=name, error=str(e))
        log.info("config reloaded", applied=applied)
        return True
