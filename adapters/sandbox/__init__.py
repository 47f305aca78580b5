"""Sandboxes behind `codeforge.ports.sandbox.SandboxFactory`, one module per kind.

    mount.py        commands run on the host in the workspace: fast, no isolation
    bwrap.py        commands run in bubblewrap namespaces: read-only system, no network
    docker.py       one container per sandbox, one `docker exec` per command
    docker_pool.py  docker's warm pool: started containers, workspaces bound in at open
    hybrid.py       writes land in a layer over the workspace, merged on success

what they share, for workspaces that are host directories:

    paths.py        every path resolved inside the workspace (openat-style)
    files.py        read, write, list, delete, stat on the workspace
    environment.py  the scrubbed environment commands see
    processes.py    one command as a host process: session, capped output, sure kill
    host.py         the Sandbox implementation the adapters specialise
    llm_relay.py    network mode llm: a loopback port relayed to the LLM proxy's socket
    llm_forwarder.py  that relay inside a sandbox (run by the sandbox's own python3)
    mounts.py       the mount(2) calls of the hybrid layers and the warm pool
    owners.py       which process left a container, slot, layer or merge behind

and the hybrid's layer:

    layers.py       overlay (a host overlayfs mount) or copy layers
    merge.py        the plan, the diff, one all-or-nothing apply, crash recovery

docs/sandbox.md says what each kind guarantees and what it does not.
"""
