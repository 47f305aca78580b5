"""Errors every adapter translates its driver's exceptions into.

    PortError                 an adapter could not do what was asked
    +-- DependencyUnavailable a service it needs (database, queue, engine) is out of reach

Nothing above adapters/ catches a psycopg, nats, docker or aiohttp exception:
adapters raise these `from` the original, with a message fit for an operator.
"""

from __future__ import annotations


class PortError(Exception):
    """An adapter failed; str() says what and, where it can, how to fix it."""


class DependencyUnavailable(PortError):
    """An outside service cannot be reached or started."""
