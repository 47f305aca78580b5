"""The environment a sandboxed command sees: a small safe base, never the host's by default.

The host process holds API keys, tokens and database URLs in its environment; a command
an agent runs must not see them. So a command's environment is built, not inherited:

    base      PATH (a fixed system PATH), HOME (private to the sandbox), LANG, TERM,
              plus what the adapter adds (TMPDIR where it has a private one)
    host      the host's variables named in `SandboxSpec.env_whitelist`, as they were
              when the sandbox was opened
    spec      `SandboxSpec.env`
    call      `exec(env=...)`

each layer overriding the one before. Nothing else of the host's comes through.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from codeforge.ports.sandbox import check_env

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LANG = "C.UTF-8"
# Agents read output as text: no colours, no pagers waiting for a key, no cursor tricks.
TERM = "dumb"


def whitelisted(name: str, whitelist: Sequence[str]) -> bool:
    """Whether `name` matches an entry: an exact name, or a prefix ending in `*`."""
    return any(
        name.startswith(entry[:-1]) if entry.endswith("*") else name == entry for entry in whitelist
    )


def sandbox_environment(
    *,
    home: str,
    whitelist: Sequence[str] = (),
    spec_env: Mapping[str, str] | None = None,
    extra_base: Mapping[str, str] | None = None,
    host: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment every command of one sandbox starts from (base, host, spec).

    `host` defaults to this process's environment; tests pass their own.
    """
    env = {"PATH": SAFE_PATH, "HOME": home, "LANG": LANG, "TERM": TERM, **(extra_base or {})}
    source = os.environ if host is None else host
    env.update((name, value) for name, value in source.items() if whitelisted(name, whitelist))
    env.update(spec_env or {})
    return env


def command_environment(
    sandbox_env: Mapping[str, str], call_env: Mapping[str, str] | None
) -> dict[str, str]:
    """One exec's environment: the sandbox's, overridden by the call's (validated) values."""
    if not call_env:
        return dict(sandbox_env)
    check_env(call_env, "env")
    return {**sandbox_env, **call_env}
