"""Sandboxes behind `codeforge.ports.sandbox.SandboxFactory`, one module per kind.

    mount.py        commands run on the host in the workspace: fast, no isolation
    bwrap.py        commands run in bubblewrap namespaces: read-only system, no network

and what they share, for workspaces that are host directories:

    paths.py        every path resolved inside the workspace (openat-style)
    files.py        read, write, list, delete, stat on the workspace
    environment.py  the scrubbed environment commands see
    processes.py    one command as a host process: session, capped output, sure kill
    host.py         the Sandbox implementation the adapters specialise

docs/sandbox.md says what each kind guarantees and what it does not.
"""
