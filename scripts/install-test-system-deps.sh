#!/bin/sh
# Install the system tools the tests use: bubblewrap (bwrap), util-linux (prlimit),
# chromium (the browser tests drive /usr/bin/chromium through Playwright's driver: its
# own browser download cannot work here) and, as an optional extra, docker.io (dockerd
# and the docker CLI: the tests start a private engine, see
# tests/support/docker_engine.py). Idempotent: does nothing when they are installed.
#
# Works as root on a fresh Debian/Ubuntu machine, or as a user with passwordless sudo.
# `apt-get update` runs only when an install fails without it (a fresh image has no
# package lists), and then once. Where apt-get is unavailable, or we may not use it,
# this says so and exits 0: the bwrap tests then skip, printing why.
set -eu

say() { printf 'install-test-system-deps: %s\n' "$*"; }

missing=""
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
command -v prlimit >/dev/null 2>&1 || missing="$missing util-linux"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
# Optional: without it the docker sandbox tests skip, saying so. CODEFORGE_SKIP_DOCKER=1
# leaves it out.
if [ "${CODEFORGE_SKIP_DOCKER:-0}" != 1 ] && ! command -v dockerd >/dev/null 2>&1; then
    missing="$missing docker.io"
fi

if [ -z "$missing" ]; then
    say "bubblewrap, prlimit, chromium and dockerd are installed (or docker is left out)"
else
    if ! command -v apt-get >/dev/null 2>&1; then
        say "apt-get is not available; install these yourself:$missing (the tests that need them will skip)"
        exit 0
    fi
    if [ "$(id -u)" -eq 0 ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root="sudo -n"
    else
        say "not root and no passwordless sudo; install these yourself:$missing (the tests that need them will skip)"
        exit 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    install() {
        # shellcheck disable=SC2086 # word splitting of $as_root and $missing is intended
        $as_root apt-get install -y -q --no-install-recommends $missing
    }
    say "installing:$missing"
    if ! install; then
        say "install failed; updating the package lists once and retrying"
        $as_root apt-get update -q || true
        if ! install; then
            say "install failed:$missing (the tests that need them will skip, saying why)"
            exit 0
        fi
    fi
fi

# Installed is not the same as usable: a container may forbid the namespaces bwrap needs.
if command -v bwrap >/dev/null 2>&1; then
    if bwrap --ro-bind / / --unshare-all --die-with-parent --new-session true 2>/dev/null; then
        say "bwrap works here"
    else
        say "bwrap is installed but cannot create namespaces here (unprivileged user namespaces disabled, or a container without the privilege); bwrap tests will skip"
    fi
fi
