"""aider's venv: a configured one used as it is, a managed one made once, and failures
that say what went wrong (no hang, no half-made venv left to trust)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from codeforge.agent.backends.aider_install import (
    AiderEnv,
    AiderInstall,
    AiderProbe,
    AiderUnavailable,
)
from codeforge.settings import AiderSettings

pytestmark = pytest.mark.integration


async def test_a_configured_venv_is_used_as_it_is_and_mounted_with_its_python(
    aider_env: AiderEnv,
) -> None:
    python = await asyncio.to_thread(os.path.realpath, f"{aider_env.venv}/bin/python")
    install = AiderInstall(AiderSettings(venv=aider_env.venv), Path("/nonexistent/tools"))
    assert "version read at the first aider run" in await AiderProbe(install).check()
    env = await install.ensure()
    assert env.version == "0.86.2"
    assert env.executable == os.path.join(aider_env.venv, "bin", "aider")
    assert env.mounts[0] == aider_env.venv
    # The interpreter the venv links to is mounted too, unless it lives in /usr.
    assert any(python.startswith(m + "/") for m in env.mounts) or python.startswith("/usr/")
    assert await AiderProbe(install).check() == f"aider 0.86.2 at {aider_env.venv}"
    assert await install.ensure() is env  # read once


async def test_a_configured_venv_without_aider_is_reported_down_with_the_fix(
    tmp_path: Path,
) -> None:
    install = AiderInstall(AiderSettings(venv=str(tmp_path / "nothing")), tmp_path)
    with pytest.raises(AiderUnavailable, match="has no bin/aider"):
        await AiderProbe(install).check()
    with pytest.raises(AiderUnavailable, match=r"unset aider\.venv"):
        await install.ensure()


async def test_an_install_at_start_that_cannot_reach_the_index_fails_fast_and_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    install = AiderInstall(AiderSettings(), tmp_path / "tools")
    probe = AiderProbe(install)
    assert "not installed yet" in await probe.check()
    started = time.monotonic()
    install.start_background()
    await asyncio.sleep(0.5)
    assert "installing aider-chat 0.86.2" in await probe.check()
    while "installing" in (detail := await probe.check()):
        assert time.monotonic() - started < 120, detail
        await asyncio.sleep(0.2)
    assert detail.startswith("aider not installed: pip install failed")
    assert "aider-chat==0.86.2" in detail  # pip's own last lines say what it looked for
    assert not (tmp_path / "tools" / "aider-0.86.2").exists()
    # Runs asking now get the same answer at once, not a new attempt each.
    again = time.monotonic()
    with pytest.raises(AiderUnavailable, match="pip install failed"):
        await install.ensure()
    assert time.monotonic() - again < 0.5
    await install.close()
