"""A hybrid sandbox's layer: where its writes land, and how to tell what it changed.

Two kinds, with one interface (`Layer`): `view` is the directory the sandbox works on,
`source` where the layer's changed content is read from at merge, `candidates()` which
paths it changed, `reset()` empties it, `remove()` deletes it.

- **overlay** (`OverlayLayer`): an overlayfs mount on the host, the workspace as its
  lower layer, a private upper and work directory; `view` is the mount. Commands read
  the workspace live (a host change shows through until the layer changes that path);
  changes are the upper directory's entries (whiteouts are deletions, opaque
  directories hide what the workspace had below them). Opening costs a stat of the
  workspace (the base) and one mount. Needs CAP_SYS_ADMIN (root). Mounted with
  `redirect_dir=off,metacopy=off,index=off`, so the upper directory says everything
  plainly: renaming a directory the workspace has fails with EXDEV (tools such as `mv`
  then copy), and a chmod copies the whole file up.
- **copy** (`CopyLayer`): a full copy of the workspace (`cp -a --reflink=auto`), for
  when overlay cannot be mounted. `view` is the copy; changes are what differs from the
  copy's own snapshot. Commands see the workspace as it was when the layer began (not
  live); opening, and every reset, costs a copy of the workspace.

Every layer directory is named after its owner process, so `remove_orphans` can unmount
and delete those of a crashed process.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import subprocess
from abc import ABC, abstractmethod
from typing import Final

from adapters.sandbox import mounts
from adapters.sandbox.merge import Candidates, Entry, Manifest, Tree, snapshot
from adapters.sandbox.owners import owner_tag, tag_is_gone
from codeforge.ports.sandbox import SandboxError

OPAQUE: Final = "trusted.overlay.opaque"
OVERLAY_OPTIONS: Final = "redirect_dir=off,metacopy=off,index=off"
COPY_TIMEOUT: Final = 600.0


def new_directory(base: str) -> str:
    """A fresh layer directory under `base`, named after this process."""
    os.makedirs(base, exist_ok=True)
    path = os.path.join(base, f"{owner_tag()}-{secrets.token_hex(6)}")
    os.mkdir(path, 0o700)
    return path


class Layer(ABC):
    kind: str

    def __init__(self, directory: str, workspace: str) -> None:
        self.directory = directory
        self.workspace = workspace

    @property
    @abstractmethod
    def view(self) -> str:
        """The directory the sandbox's commands and file operations work on."""

    @property
    @abstractmethod
    def source(self) -> str:
        """Where the layer's changed files are read from."""

    @abstractmethod
    def begin(self) -> None:
        """Start the layer (empty) over the workspace as it is now."""

    @abstractmethod
    def candidates(self) -> tuple[Candidates, set[str]]:
        """The paths the layer changed (None: deleted), and the directories among them
        that hide what the workspace had below them."""

    @abstractmethod
    def reset(self) -> None:
        """Drop everything in the layer and begin again over the workspace as it is now."""

    @abstractmethod
    def remove(self) -> None:
        """Delete the layer. Idempotent."""


class OverlayLayer(Layer):
    kind = "overlay"

    def __init__(self, directory: str, workspace: str) -> None:
        super().__init__(directory, workspace)
        self.upper = os.path.join(directory, "upper")
        self.work = os.path.join(directory, "work")
        self.merged = os.path.join(directory, "merged")

    @property
    def view(self) -> str:
        return self.merged

    @property
    def source(self) -> str:
        return self.upper

    def begin(self) -> None:
        for path in (self.upper, self.work, self.merged):
            os.makedirs(path, 0o700, exist_ok=True)
        mounts.mount("overlay", self.merged, "overlay", 0, overlay_options(
            self.workspace, self.upper, self.work))  # fmt: skip

    def candidates(self) -> tuple[Candidates, set[str]]:
        found: Candidates = {}
        hides: set[str] = set()
        with Tree(self.upper) as upper:
            for path, info in upper.walk():
                if _is_whiteout(info):
                    found[path] = None
                    continue
                entry = Entry.of(info)
                found[path] = entry
                if entry.kind == "directory" and _opaque(os.path.join(self.upper, path)):
                    hides.add(path)
        return found, hides

    def reset(self) -> None:
        self._unmount()
        for path in (self.upper, self.work):
            shutil.rmtree(path)
        self.begin()

    def remove(self) -> None:
        if not os.path.isdir(self.directory):
            return
        self._unmount()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _unmount(self) -> None:
        mounts.unmount_all_under(self.merged)
        if mounts.mounts_under(self.merged):
            # Never delete below a mount: the workspace shows through it.
            raise SandboxError(f"the layer at {self.merged} could not be unmounted")


def _is_whiteout(info: os.stat_result) -> bool:
    """overlayfs marks a deletion with a character device numbered 0:0."""
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def overlay_options(lower: str, upper: str, work: str) -> str:
    def escape(path: str) -> str:
        # The option parser splits at "," (options) and ":" (lower layers).
        return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")

    return (
        f"lowerdir={escape(lower)},upperdir={escape(upper)},workdir={escape(work)},"
        f"{OVERLAY_OPTIONS}"
    )


class CopyLayer(Layer):
    kind = "copy"

    def __init__(self, directory: str, workspace: str) -> None:
        super().__init__(directory, workspace)
        self.copy = os.path.join(directory, "copy")
        self._manifest: Manifest = {}

    @property
    def view(self) -> str:
        return self.copy

    @property
    def source(self) -> str:
        return self.copy

    def begin(self) -> None:
        os.mkdir(self.copy, 0o700)
        try:
            subprocess.run(
                ["cp", "-a", "--reflink=auto", "--", f"{self.workspace}/.", self.copy],
                check=True,
                capture_output=True,
                timeout=COPY_TIMEOUT,
            )
        except subprocess.CalledProcessError as e:
            said = e.stderr.decode(errors="replace").strip()
            raise SandboxError(f"copying the workspace into the layer failed: {said}") from e
        except subprocess.TimeoutExpired as e:
            raise SandboxError(
                f"copying the workspace into the layer took over {COPY_TIMEOUT:g} s"
            ) from e
        with Tree(self.copy) as copy:
            self._manifest = snapshot(copy)

    def candidates(self) -> tuple[Candidates, set[str]]:
        found: Candidates = {}
        seen = set()
        with Tree(self.copy) as copy:
            for path, info in copy.walk():
                seen.add(path)
                now = Entry.of(info)
                if self._manifest.get(path) != now:
                    found[path] = now
        for path in self._manifest.keys() - seen:
            found[path] = None
        return found, set()

    def reset(self) -> None:
        shutil.rmtree(self.copy)
        self.begin()

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def overlay_problem(base: str) -> str | None:
    """Why an overlay cannot be mounted in `base` here (None: it can): a real trial."""
    try:
        probe = new_directory(base)
    except OSError as e:
        return f"the layers directory {base} cannot be used: {e}"
    layer = OverlayLayer(probe, os.path.join(probe, "lower"))
    try:
        os.mkdir(layer.workspace)
        layer.begin()
    except OSError as e:
        return f"an overlay cannot be mounted here ({e}); it needs CAP_SYS_ADMIN (root)"
    finally:
        with contextlib.suppress(SandboxError):
            layer.remove()
        shutil.rmtree(probe, ignore_errors=True)
    return None


def remove_orphans(base: str) -> list[str]:
    """Unmount and delete the layers under `base` whose owner process is gone."""
    removed: list[str] = []
    try:
        entries = os.listdir(base)
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not tag_is_gone(entry):
            continue
        path = os.path.join(base, entry)
        mounts.unmount_all_under(path)
        if mounts.mounts_under(path):
            continue  # still mounted: deleting would reach through into a workspace
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
