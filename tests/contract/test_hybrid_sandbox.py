"""What only the hybrid sandbox does: its layer, merged all or nothing or discarded.

The compliance suite checks the port's guarantees on hybrid as on every adapter; these
cases check the layer (`LayeredSandbox`), for both kinds of layer (overlay, copy) with
bwrap underneath, and once with mount underneath. Each compares whole trees: what the
host workspace holds before and after, file by file, with kinds, modes and contents.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.sandbox import mounts
from adapters.sandbox.bwrap import BwrapSandboxFactory
from adapters.sandbox.hybrid import HybridSandbox, HybridSandboxFactory
from adapters.sandbox.layers import OverlayLayer
from adapters.sandbox.mount import MountSandboxFactory
from codeforge.container import Container
from codeforge.domain.runs import SandboxMode
from codeforge.ports.sandbox import (
    ISOLATION,
    LayerBusy,
    LayeredSandbox,
    MergeConflict,
    SandboxLimits,
    SandboxSpec,
    SandboxUnavailable,
)
from codeforge.services.sandbox_choice import choose_sandbox
from codeforge.settings import SandboxSettings, Settings

pytestmark = pytest.mark.contract

ROOT = Path(__file__).resolve().parents[2]
Tree = dict[str, tuple[str, int, bytes]]
OpenHybrid = Callable[..., Awaitable[HybridSandbox]]


def mounts_below(path: Path) -> list[str]:
    return mounts.mounts_under(os.path.realpath(path))


def run(argv: list[str], **options: Any) -> subprocess.CompletedProcess[bytes]:
    """A blocking subprocess, as a test helper (the sandbox is idle meanwhile)."""
    return subprocess.run(argv, capture_output=True, check=False, **options)


def tree_of(root: Path) -> Tree:
    """Every path below `root`: (kind, permission bits, content or link target)."""
    found: Tree = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        info = path.lstat()
        if path.is_symlink():
            found[rel] = ("symlink", 0, os.readlink(path).encode())
        elif path.is_dir():
            found[rel] = ("directory", info.st_mode & 0o7777, b"")
        else:
            found[rel] = ("file", info.st_mode & 0o7777, path.read_bytes())
    return found


def seed(root: Path) -> None:
    """A small project: text, a script, a binary, nested directories, a link."""
    (root / "src/pkg").mkdir(parents=True)
    (root / "src/pkg/app.py").write_text("def main():\n    return 1\n")
    (root / "src/pkg/util.py").write_text("X = 1\n")
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "run.sh").chmod(0o644)
    (root / "data.bin").write_bytes(bytes(range(256)) * 8)
    (root / "old/deep").mkdir(parents=True)
    (root / "old/deep/a.txt").write_text("a\n")
    (root / "old/b.txt").write_text("b\n")
    (root / "becomes-dir").write_text("file for now\n")
    (root / "becomes-file").mkdir()
    (root / "becomes-file/inner.txt").write_text("inner\n")
    (root / "README").write_text("readme\n")
    (root / "readme-link").symlink_to("README")


EDITS = """
set -e
printf 'def main():\\n    return 2\\n' > src/pkg/app.py
mkdir -p src/new/sub && echo fresh > src/new/sub/f.txt
rm src/pkg/util.py
rm -r old
chmod 755 run.sh
rm becomes-dir && mkdir becomes-dir && echo now-inside > becomes-dir/x
rm -r becomes-file && echo now-a-file > becomes-file
ln -s src/pkg/app.py app-link
head -c 3000 /dev/urandom > data.bin
"""


@pytest.fixture(scope="module")
async def bwrap_usable() -> None:
    try:
        await BwrapSandboxFactory().check()
    except SandboxUnavailable as e:
        pytest.skip(f"bwrap cannot run here: {e}")


@pytest.fixture(params=["overlay", "copy"])
async def factory(
    request: pytest.FixtureRequest, bwrap_usable: None, tmp_path: Path
) -> HybridSandboxFactory:
    made = HybridSandboxFactory(
        inner=BwrapSandboxFactory(), layer=request.param, layers_directory=str(tmp_path / "layers")
    )
    try:
        await made.check()
    except SandboxUnavailable as e:
        pytest.skip(f"{request.param} layers are unavailable here: {e}")
    assert made.layer_kind == request.param
    return made


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    seed(path)
    return path


@pytest.fixture
async def open_hybrid(factory: HybridSandboxFactory, workspace: Path) -> AsyncIterator[OpenHybrid]:
    opened: list[HybridSandbox] = []

    async def open_(**spec: Any) -> HybridSandbox:
        sandbox = await factory.open(
            SandboxSpec(workspace=str(workspace), limits=SandboxLimits(timeout=30), **spec)
        )
        opened.append(sandbox)
        return sandbox

    yield open_
    for sandbox in opened:
        await sandbox.close()


async def edited(open_hybrid: OpenHybrid) -> HybridSandbox:
    sandbox = await open_hybrid()
    result = await sandbox.exec(EDITS)
    assert result.ok, result
    return sandbox


# -- discard --------------------------------------------------------------------------------


async def test_discard_leaves_the_host_untouched_and_starts_a_fresh_layer(
    open_hybrid: OpenHybrid, workspace: Path
) -> None:
    before = tree_of(workspace)
    sandbox = await edited(open_hybrid)
    await sandbox.write_file("by-write-file.txt", "x")
    assert tree_of(workspace) == before
    assert not (await sandbox.changes()).empty
    await sandbox.discard()
    assert tree_of(workspace) == before
    assert (await sandbox.changes()).empty
    # The sandbox goes on, over the workspace as it is.
    assert await sandbox.read_file("src/pkg/util.py") == b"X = 1\n"
    assert (await sandbox.exec(["cat", "old/b.txt"])).stdout == "b\n"


async def test_closing_without_a_merge_discards(
    factory: HybridSandboxFactory, workspace: Path, tmp_path: Path
) -> None:
    before = tree_of(workspace)
    sandbox = await factory.open(SandboxSpec(workspace=str(workspace)))
    await sandbox.exec("echo lost > lost.txt && rm README")
    await sandbox.close()
    assert tree_of(workspace) == before
    assert os.listdir(tmp_path / "layers") == []
    assert mounts_below(tmp_path) == []


# -- merge ---------------------------------------------------------------------------------


async def test_merge_applies_adds_edits_deletes_kinds_and_modes_and_returns_the_diff(
    open_hybrid: OpenHybrid, workspace: Path, tmp_path: Path
) -> None:
    original = tmp_path / "original"
    shutil.copytree(workspace, original, symlinks=True)
    sandbox = await edited(open_hybrid)
    seen = await sandbox.changes()
    view = tmp_path / "view"
    await sandbox.exec(["true"])
    diff = await sandbox.merge()
    assert diff.changes == seen.changes
    assert diff.conflicts == ()
    assert set(diff.added) == {
        "app-link", "src/new", "src/new/sub", "src/new/sub/f.txt", "becomes-dir/x",
    }  # fmt: skip
    assert set(diff.modified) == {
        "src/pkg/app.py", "run.sh", "becomes-dir", "becomes-file", "data.bin",
    }  # fmt: skip
    assert set(diff.deleted) == {
        "src/pkg/util.py", "old", "old/deep", "old/deep/a.txt", "old/b.txt",
        "becomes-file/inner.txt",
    }  # fmt: skip
    mode = next(c for c in diff.changes if c.path == "run.sh")
    assert (mode.old_mode, mode.mode) == (0o644, 0o755)
    # The host now holds exactly what the sandbox saw.
    shutil.copytree(workspace, view, symlinks=True)
    after = tree_of(workspace)
    assert after["src/pkg/app.py"][2] == b"def main():\n    return 2\n"
    assert after["becomes-dir"][0] == "directory"
    assert after["becomes-file"] == ("file", 0o644, b"now-a-file\n")
    assert after["app-link"] == ("symlink", 0, b"src/pkg/app.py")
    assert after["run.sh"][1] == 0o755
    assert "old" not in after
    assert "src/pkg/util.py" not in after
    assert not [name for name in os.listdir(workspace) if name.startswith(".codeforge-merge")]
    # The patch is a real one: applied to the original tree it gives the merged tree
    # (binary content aside, which a text patch does not carry).
    assert "Binary files a/data.bin and b/data.bin differ" in diff.patch
    assert "-    return 1\n+    return 2\n" in diff.patch
    (original / "data.bin").write_bytes((workspace / "data.bin").read_bytes())
    text_only = "".join(
        "diff --git " + part
        for part in diff.patch.split("diff --git ")[1:]
        if not part.startswith("a/data.bin ")
    )
    applied = run(["git", "apply", "-"], input=text_only.encode(), cwd=original)
    assert applied.returncode == 0, applied.stderr.decode()
    expected = {k: v for k, v in tree_of(workspace).items() if v[0] != "directory"}
    assert {k: v for k, v in tree_of(original).items() if v[0] != "directory"} == expected
    # A fresh layer: nothing left to merge, and commands see the merged workspace.
    assert (await sandbox.changes()).empty
    assert (await sandbox.exec(["cat", "becomes-file"])).stdout == "now-a-file\n"


async def test_setuid_bits_are_dropped_at_merge(open_hybrid: OpenHybrid, workspace: Path) -> None:
    sandbox = await open_hybrid()
    await sandbox.exec("cp run.sh tool && chmod 4755 tool && chmod 2775 src")
    await sandbox.merge()
    assert (workspace / "tool").stat().st_mode & 0o7777 == 0o755
    assert (workspace / "src").stat().st_mode & 0o7777 == 0o775


async def test_a_merge_with_nothing_to_merge_changes_nothing(
    open_hybrid: OpenHybrid, workspace: Path
) -> None:
    before = tree_of(workspace)
    sandbox = await open_hybrid()
    # touch and an identical rewrite put copies in the layer; they are not changes.
    await sandbox.exec("touch README && echo readme > README && chmod 644 README")
    diff = await sandbox.merge()
    assert diff.empty
    assert diff.patch == ""
    assert tree_of(workspace) == before


# -- conflicts ------------------------------------------------------------------------------


async def test_a_path_changed_on_the_host_and_in_the_layer_is_a_conflict_nothing_merges(
    open_hybrid: OpenHybrid, workspace: Path
) -> None:
    sandbox = await edited(open_hybrid)
    # The host changes, after the layer began: a file the layer edits, a file inside a
    # directory the layer removes, a directory the layer adds into (removed on the host).
    (workspace / "src/pkg/app.py").write_text("host edit\n")
    (workspace / "old/deep/host-new.txt").write_text("host\n")
    host_state = tree_of(workspace)
    diff = await sandbox.changes()
    assert set(diff.conflicts) == {"src/pkg/app.py", "old/deep/host-new.txt"}
    with pytest.raises(MergeConflict) as raised:
        await sandbox.merge()
    assert set(raised.value.paths) == {"src/pkg/app.py", "old/deep/host-new.txt"}
    assert "src/pkg/app.py" in str(raised.value)
    assert tree_of(workspace) == host_state  # not one of the other changes went in
    # The layer is kept: resolve on the host (take the layer's side) and merge again.
    (workspace / "src/pkg/app.py").write_text("def main():\n    return 2\n")
    (workspace / "old/deep/host-new.txt").unlink()
    diff = await sandbox.merge()
    assert "src/pkg/app.py" not in diff.modified  # both sides agree: not a change
    assert (workspace / "becomes-file").read_text() == "now-a-file\n"


async def test_a_host_change_below_a_directory_the_layer_adds_into_is_a_conflict(
    open_hybrid: OpenHybrid, workspace: Path
) -> None:
    sandbox = await open_hybrid()
    await sandbox.exec("echo new > src/pkg/added.py")
    shutil.rmtree(workspace / "src/pkg")
    with pytest.raises(MergeConflict) as raised:
        await sandbox.merge()
    assert "src/pkg" in raised.value.paths
    assert not (workspace / "src/pkg").exists()


async def test_the_same_change_on_both_sides_is_not_a_conflict(
    open_hybrid: OpenHybrid, workspace: Path
) -> None:
    sandbox = await open_hybrid()
    await sandbox.exec("echo same > same.txt && rm README")
    (workspace / "same.txt").write_text("same\n")
    (workspace / "README").unlink()
    diff = await sandbox.merge()
    assert diff.empty
    assert (workspace / "same.txt").read_text() == "same\n"


# -- links and escapes at merge ------------------------------------------------------------


async def test_links_in_the_layer_and_on_the_host_never_lead_a_merge_outside(
    open_hybrid: OpenHybrid, workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside-secret")
    sandbox = await open_hybrid()
    # In the layer: a link out, a directory replaced by a link out, files beside them.
    script = (
        f"ln -s {outside} out-link && rm -r old && ln -s {outside} old && "
        "echo inside > src/pkg/new.py"
    )
    assert (await sandbox.exec(script)).ok
    # On the host, after the layer began: a directory the layer writes into becomes a
    # link to the outside directory.
    shutil.rmtree(workspace / "src/pkg")
    (workspace / "src/pkg").symlink_to(outside)
    with pytest.raises(MergeConflict) as raised:
        await sandbox.merge()
    assert "src/pkg" in raised.value.paths or "src/pkg/new.py" in raised.value.paths
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    # Without the host's link the merge goes through; the layer's links stay links.
    (workspace / "src/pkg").unlink()
    (workspace / "src/pkg").mkdir()
    (workspace / "src/pkg/app.py").write_text("def main():\n    return 1\n")
    (workspace / "src/pkg/util.py").write_text("X = 1\n")
    await sandbox.merge()
    assert os.readlink(workspace / "out-link") == str(outside)
    assert os.readlink(workspace / "old") == str(outside)
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "outside-secret"


async def test_special_files_in_the_layer_are_listed_as_skipped_never_merged(
    open_hybrid: OpenHybrid, workspace: Path
) -> None:
    sandbox = await open_hybrid()
    await sandbox.exec("mkfifo pipe && echo kept > kept.txt")
    diff = await sandbox.merge()
    assert diff.skipped == ("pipe",)
    assert diff.added == ("kept.txt",)
    assert not (workspace / "pipe").exists()


# -- busy, crashes, races --------------------------------------------------------------------


async def test_merge_and_discard_refuse_while_a_command_runs(open_hybrid: OpenHybrid) -> None:
    sandbox = await open_hybrid()
    running = asyncio.create_task(sandbox.exec("echo half > half.txt; sleep 1; echo done"))
    await asyncio.sleep(0.3)
    with pytest.raises(LayerBusy):
        await sandbox.merge()
    with pytest.raises(LayerBusy):
        await sandbox.discard()
    assert (await running).stdout == "done\n"
    assert (await sandbox.merge()).added == ("half.txt",)


CRASHING_MERGE = """
import os, sys
from adapters.sandbox import merge
from adapters.sandbox.hybrid import HybridSandbox

workspace, layer_source, base_file = sys.argv[1:4]  # argv[4]: the journal's owner
import pickle
with open(base_file, "rb") as f:
    candidates, hides, base = pickle.load(f)
with merge.Tree(workspace) as host, merge.Tree(layer_source) as layer:
    plan = merge.evaluate(candidates, hides, base, host, layer)
    assert not plan.conflicts, plan.conflicts
    print(len(plan.steps), flush=True)

    def crash(step):
        if step == len(plan.steps) // 2:
            os._exit(3)

    merge.apply(plan, host, layer, owner=sys.argv[4], on_step=crash)
"""


async def test_a_merge_interrupted_by_a_crash_is_undone_when_the_workspace_next_opens(
    open_hybrid: OpenHybrid, factory: HybridSandboxFactory, workspace: Path, tmp_path: Path
) -> None:
    import pickle

    before = tree_of(workspace)
    dead = f"{socket.gethostname()}:999999999:0"  # a process of this host that is gone
    sandbox = await edited(open_hybrid)
    layer = sandbox._layer  # the crash is staged with the merge machinery itself
    candidates, hides = layer.candidates()
    state = tmp_path / "state.pickle"
    state.write_bytes(pickle.dumps((candidates, hides, sandbox._base)))
    crashed = run(
        [sys.executable, "-c", CRASHING_MERGE, str(workspace), layer.source, str(state), dead],
        cwd=ROOT,
    )
    assert crashed.returncode == 3, crashed.stderr.decode()
    assert int(crashed.stdout) > 4
    halfway = tree_of(workspace)
    assert halfway != before  # some steps were taken
    assert any(name.startswith(".codeforge-merge-") for name in os.listdir(workspace))
    # The journal's owner is gone: the next open undoes the merge.
    await sandbox.discard()
    reopened = await factory.open(SandboxSpec(workspace=str(workspace)))
    await reopened.close()
    assert tree_of(workspace) == before


async def test_a_host_change_racing_the_merge_undoes_every_step(
    open_hybrid: OpenHybrid, workspace: Path
) -> None:
    from adapters.sandbox import merge

    before = tree_of(workspace)
    sandbox = await edited(open_hybrid)
    with merge.Tree(str(workspace)) as host, merge.Tree(sandbox._layer.source) as layer:
        plan = sandbox._plan(host, layer)
        last = plan.steps[-1].path

        def racer(step: int) -> None:
            if step == 0:  # a writer changes the last path after the plan was made
                target = workspace / last
                if target.is_dir() and not target.is_symlink():
                    (target / "racer.txt").write_text("racer\n")
                    target.chmod(0o700)
                else:
                    target.unlink(missing_ok=True)
                    target.write_text("racer\n")

        with pytest.raises(MergeConflict) as raised:
            await asyncio.to_thread(merge.apply, plan, host, layer, owner="t", on_step=racer)
    assert raised.value.paths == (last,)
    after = tree_of(workspace)
    racer_paths = {p for p in after if p not in before or after[p] != before[p]}
    assert racer_paths <= {last, f"{last}/racer.txt"}
    assert not [name for name in os.listdir(workspace) if name.startswith(".codeforge-merge")]


# -- what the layer shows ---------------------------------------------------------------------


async def test_commands_see_host_changes_live_over_overlay_and_as_opened_over_a_copy(
    open_hybrid: OpenHybrid, factory: HybridSandboxFactory, workspace: Path
) -> None:
    sandbox = await open_hybrid()
    (workspace / "late.txt").write_text("late\n")
    seen = await sandbox.exec("cat late.txt 2>/dev/null || echo missing")
    if factory.layer_kind == "overlay":
        assert seen.stdout == "late\n"
    else:
        assert seen.stdout == "missing\n"
    assert (await sandbox.changes()).empty  # a host change is not the layer's


async def test_the_layers_of_a_crashed_process_are_removed_at_check(
    bwrap_usable: None, workspace: Path, tmp_path: Path
) -> None:
    before = tree_of(workspace)
    base = tmp_path / "layers"
    left = base / "999999999-0-abc"
    left.mkdir(parents=True)
    layer = OverlayLayer(str(left), str(workspace))
    try:
        layer.begin()
    except OSError as e:
        pytest.skip(f"overlay cannot be mounted here: {e}")
    (Path(layer.merged) / "through-the-layer.txt").write_text("x")
    factory = HybridSandboxFactory(inner=BwrapSandboxFactory(), layers_directory=str(base))
    await factory.check()
    assert not left.exists()
    assert mounts_below(base) == []
    assert tree_of(workspace) == before


# -- the inner sandbox ------------------------------------------------------------------------


async def test_hybrid_over_mount_layers_writes_but_claims_no_isolation(
    workspace: Path, tmp_path: Path
) -> None:
    factory = HybridSandboxFactory(
        inner=MountSandboxFactory(), layers_directory=str(tmp_path / "layers")
    )
    await factory.check()
    assert factory.capabilities.layered_writes
    assert factory.capabilities.missing(ISOLATION) == list(ISOLATION)
    before = tree_of(workspace)
    async with await factory.open(SandboxSpec(workspace=str(workspace))) as sandbox:
        assert isinstance(sandbox, LayeredSandbox)
        await sandbox.exec("echo layered > new.txt")
        assert tree_of(workspace) == before
        assert (await sandbox.merge()).added == ("new.txt",)
    assert (workspace / "new.txt").read_text() == "layered\n"


async def test_choose_sandbox_takes_hybrid_and_says_how_to_fix_it(tmp_path: Path) -> None:
    working = HybridSandboxFactory(
        inner=MountSandboxFactory(), layers_directory=str(tmp_path / "a")
    )
    chosen = await choose_sandbox("hybrid", {SandboxMode.HYBRID: working})
    assert chosen.kind is SandboxMode.HYBRID
    assert chosen.usable
    broken = HybridSandboxFactory(
        inner=BwrapSandboxFactory(bwrap=None), layers_directory=str(tmp_path / "b")
    )
    refused = await choose_sandbox("hybrid", {SandboxMode.HYBRID: broken})
    assert not refused.usable
    assert refused.problem is not None
    assert "hybrid_isolation" in refused.problem


def test_the_container_builds_the_hybrid_sandbox_from_its_settings(tmp_path: Path) -> None:
    settings = Settings(
        sandbox=SandboxSettings(
            hybrid_isolation="mount", hybrid_layer="copy", hybrid_layers_dir=str(tmp_path)
        )
    )
    hybrid = Container(settings=settings).sandbox_factories()[SandboxMode.HYBRID]
    assert isinstance(hybrid, HybridSandboxFactory)
    assert hybrid.capabilities == msgspec.structs.replace(
        MountSandboxFactory().capabilities, layered_writes=True
    )
    asyncio.run(hybrid.check())
    assert hybrid.layer_kind == "copy"
