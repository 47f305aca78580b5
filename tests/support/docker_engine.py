"""A docker engine for the tests: the one at $DOCKER_HOST, or a private `dockerd` started here.

No engine runs by default on this machine. `engine()` (cached for the session, and the
`docker_engine` fixture) finds one, in this order:

1. $DOCKER_HOST, when it answers;
2. a private engine on `unix:///tmp/cf-docker-<uid>.sock` left by an earlier session;
3. as root, with `dockerd` installed (scripts/install-test-system-deps.sh installs
   docker.io), a private `dockerd` started in the background (no iptables, no bridge:
   sandboxes use network none or host), left running for the next session.

It then builds the test image with no registry: an empty rootfs imported with `docker
import` (holding only the links, such as /bin -> usr/bin, of a merged-/usr host), run
with the host's system directories bound read-only (`system_mounts()`). When no engine
can be had, `engine()` raises SandboxUnavailable saying why, and the docker cases skip
printing it.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from typing import Any

import pytest

from adapters.sandbox.docker import DockerSandboxFactory
from codeforge.ports.sandbox import SandboxFactory, SandboxUnavailable

IMAGE = "codeforge-sandbox-test:2"
# Merged-/usr hosts: /bin and friends are links into /usr, which the image must hold too.
SYSTEM_LINKS = ("/bin", "/lib", "/lib64", "/lib32", "/libx32")
# A real (empty) directory, not a link into the read-only /usr bind: docker binds its init
# at /sbin/docker-init, and through a link it would land under /usr and be hidden by it.
REAL_DIRS = ("sbin",)
START_TIMEOUT = 60.0


def private_socket() -> str:
    return f"unix:///tmp/cf-docker-{os.getuid()}.sock"


def system_mounts() -> list[str]:
    """The host's system directories that are real directories (not links into /usr)."""
    found = []
    for path in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc/alternatives"):
        if os.path.isdir(path) and not os.path.islink(path):
            found.append(path)
    return found


def answers(host: str) -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.DockerClient(base_url=host, timeout=5).ping()
    except Exception:
        return False
    return True


def start_dockerd(host: str) -> str | None:
    """Start a private dockerd answering at `host`; None when it does, else why not."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        return "dockerd is not installed (run scripts/install-test-system-deps.sh as root)"
    if os.getuid() != 0:
        return "dockerd is installed but the tests do not run as root, and $DOCKER_HOST is unset"
    uid = os.getuid()
    log = open(f"/tmp/cf-docker-{uid}.log", "ab")  # noqa: SIM115 - dockerd keeps it
    subprocess.Popen(
        [
            dockerd,
            "--host", host,
            "--data-root", "/tmp/cf-docker-data",
            "--exec-root", "/tmp/cf-docker-exec",
            "--pidfile", f"/tmp/cf-docker-{uid}.pid",
            "--iptables=false",
            "--bridge=none",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while not answers(host):
        if time.monotonic() > deadline:
            return (
                f"dockerd did not answer within {START_TIMEOUT:g} s (see /tmp/cf-docker-{uid}.log)"
            )
        time.sleep(0.2)
    return None


def build_image(host: str) -> None:
    import docker

    client = docker.DockerClient(base_url=host, timeout=60)
    try:
        client.images.get(IMAGE)
        return
    except docker.errors.ImageNotFound:
        pass
    empty = io.BytesIO()
    with tarfile.open(fileobj=empty, mode="w") as tar:
        for path in SYSTEM_LINKS:
            if os.path.islink(path):
                link = tarfile.TarInfo(path.lstrip("/"))
                link.type = tarfile.SYMTYPE
                link.linkname = os.readlink(path)
                tar.addfile(link)
        for name in REAL_DIRS:
            directory = tarfile.TarInfo(name)
            directory.type = tarfile.DIRTYPE
            directory.mode = 0o755
            tar.addfile(directory)
    repository, tag = IMAGE.split(":")
    client.api.import_image_from_data(empty.getvalue(), repository=repository, tag=tag)


@functools.cache
def engine() -> str:
    """The engine's URL, or raise SandboxUnavailable saying why there is none."""
    candidates = [h for h in (os.environ.get("DOCKER_HOST"), private_socket()) if h]
    host = next((h for h in candidates if answers(h)), None)
    if host is None:
        host = private_socket()
        problem = start_dockerd(host)
        if problem is not None:
            raise SandboxUnavailable(problem)
    build_image(host)
    return host


class _Unavailable:
    """A docker factory stand-in whose check() reports why no engine could be had."""

    kind = "docker"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.capabilities = DockerSandboxFactory().capabilities

    async def check(self) -> None:
        raise SandboxUnavailable(self.reason)

    async def start(self) -> None:
        raise SandboxUnavailable(self.reason)

    async def close(self) -> None:
        pass

    async def open(self, spec: object) -> None:
        raise SandboxUnavailable(self.reason)


def docker_factory(**options: Any) -> SandboxFactory:
    """A DockerSandboxFactory on the test engine and image (or one saying why there is
    none); `options` go to its constructor."""
    try:
        host = engine()
    except SandboxUnavailable as e:
        return _Unavailable(str(e))  # type: ignore[return-value]
    return DockerSandboxFactory(
        docker_host=host, image=IMAGE, system_mounts=system_mounts(), **options
    )


build_docker_factory: Callable[[], SandboxFactory] = docker_factory


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """The test engine's URL; skips (printing why) when there is none."""
    try:
        return engine()
    except SandboxUnavailable as e:
        pytest.skip(f"no docker engine: {e}")
