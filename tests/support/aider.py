"""aider's virtual environment for the tests: made once per checkout, by CodeForge's own code.

The venv is created with `AiderInstall` (the path a managed install takes) under
`<repo>/.cache/aider/` (or `$CODEFORGE_TEST_CACHE/aider/`), so a fresh clone in CI pays
for it once and later test sessions reuse it; tests then name it as a configured
`aider.venv`. When it truly cannot be created (no package index reachable), the tests
that need it are skipped, saying why — in CI on this machine they must run.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from codeforge.agent.backends.aider_install import AiderEnv, AiderInstall, AiderUnavailable
from codeforge.settings import AiderSettings

ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    configured = os.environ.get("CODEFORGE_TEST_CACHE")
    return (Path(configured) if configured else ROOT / ".cache") / "aider"


@pytest.fixture(scope="session")
def aider_env() -> AiderEnv:
    install = AiderInstall(AiderSettings(install_timeout=1200), cache_dir())
    started = time.monotonic()
    try:
        env = asyncio.run(install.ensure())
    except AiderUnavailable as e:
        reason = f"aider's venv cannot be created here: {e}"
        print(reason)
        pytest.skip(reason)
    print(f"aider {env.version} ready at {env.venv} in {time.monotonic() - started:.1f} s")
    return env
