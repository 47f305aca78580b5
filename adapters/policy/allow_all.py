"""The policy gate that allows everything: what runs get until policies are configured.

It still answers through the gate's final signature, so every decision is recorded
(`PolicyDecided`, rule "*", scope "default") and a real policy slots in without any
change to the runtime.
"""

from __future__ import annotations

from codeforge.ports.policy import Decision, PolicyDecision, ToolRequest

ALLOW_ALL = PolicyDecision(
    decision=Decision.ALLOW, rule="*", scope="default", reason="no policy restricts this run"
)


class AllowAllGate:
    async def decide(self, request: ToolRequest) -> PolicyDecision:
        return ALLOW_ALL
