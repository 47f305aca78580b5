"""`codeforge serve` with a policy gate that asks before shell commands, as a process.

No configuration can make the shipped gate ask yet (the policy layer, with its rules
and presets, is another issue's work), and the browser tests must answer an ask. So
this launcher runs the real command — `codeforge.cli` with its flags, configuration
from the environment, uvicorn, signals, the in-process worker — with one provider
replaced: the policy gate, by a policy a user could write ("shell commands need a
yes"), as tests/e2e/test_approvals.py does in-process. Once policies can be configured,
a policy file takes its place.

    python -m tests.support.serve_main serve --port 8123
"""

from __future__ import annotations

import sys

from dependency_injector import providers

from codeforge.cli import main
from codeforge.container import Container
from codeforge.ports.policy import Decision, PolicyDecision, ToolRequest


class AskBeforeCommands:
    async def decide(self, request: ToolRequest) -> PolicyDecision:
        if request.category == "bash":
            return PolicyDecision(
                decision=Decision.ASK, rule="Bash", scope="project", reason="commands need a yes"
            )
        return PolicyDecision(decision=Decision.ALLOW, rule="*", scope="default")


if __name__ == "__main__":
    # On the class: every container the command builds starts with this override.
    Container.policy_gate.override(providers.Object(AskBeforeCommands()))
    raise SystemExit(main(sys.argv[1:]))
