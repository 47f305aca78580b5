"""A language model that answers with the responses recorded in a run's log, in order.

What makes a replay deterministic: the same prompt, the same recorded replies, the
same tools — so a run re-executed with it does what it did, unless something it
depends on changed (the repository, the sandbox, the policy), which is exactly what a
replay is for finding. Streams the recorded text and tool calls to `on_delta` like a
provider would. Runs out with `LlmScriptExhausted`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from codeforge.domain.events import ModelResponded
from codeforge.ports.llm import (
    ChatDelta,
    ChatMessage,
    ChatRequest,
    ChatResponse,
    DeltaCallback,
    LlmBadRequest,
    LlmScriptExhausted,
    ModelEndpoint,
    ToolCall,
    Usage,
)


class ReplayModel:
    def __init__(self, recorded: Sequence[ModelResponded]) -> None:
        self._left = deque(recorded)
        self.served = 0

    async def chat(
        self, request: ChatRequest, *, on_delta: DeltaCallback | None = None
    ) -> ChatResponse:
        if not self._left:
            raise LlmScriptExhausted(
                f"the recorded run has no model response left after {self.served}"
            )
        reply = self._left.popleft()
        self.served += 1
        calls = tuple(
            ToolCall(
                id=str(c.get("id", "")),
                name=str(c.get("name", "")),
                arguments=str(c.get("arguments", "")),
            )
            for c in reply.tool_calls
        )
        if on_delta is not None:
            if reply.content:
                await on_delta(ChatDelta(content=reply.content))
            for index, call in enumerate(calls):
                await on_delta(
                    ChatDelta(
                        tool_call_index=index,
                        tool_call_id=call.id,
                        tool_name=call.name,
                        arguments=call.arguments,
                    )
                )
        return ChatResponse(
            message=ChatMessage(role="assistant", content=reply.content or None, tool_calls=calls),
            usage=Usage(
                input_tokens=reply.input_tokens,
                output_tokens=reply.output_tokens,
                reported=reply.usage_reported,
            ),
            finish_reason=reply.finish_reason,
            model=reply.model,
        )

    async def list_models(self, endpoint: ModelEndpoint) -> list[dict[str, Any]]:
        return [{"id": "replay", "object": "model", "owned_by": "codeforge"}]

    async def embed(self, endpoint: ModelEndpoint, inputs: Sequence[str]) -> list[list[float]]:
        raise LlmBadRequest("a replay answers chat calls only; it has no embeddings")

    async def close(self) -> None:
        return None
