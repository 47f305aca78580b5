"""The conversation with the model, and how it is rebuilt from a run's events.

Everything the model has been shown is in the log: `PromptAssembled` (system and
first user message), `ModelResponded` (each assistant message), `ToolCallCompleted`
(each tool result, as shown), `AgentNudged` (messages the runtime added) and
`ContextCompacted` (tool results cut to fit the window). `Conversation.from_events`
folds them back into the same messages, which is what resume, rewind and replay
start from.

Compaction keeps the task (system and first user message), every assistant message
(the model's own plan and reasoning) and the most recent tool results, and replaces
older tool output with a one-line notice. The message structure stays valid: every
tool call keeps its (shortened) result.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from codeforge.domain.events import (
    AgentNudged,
    ContextCompacted,
    Event,
    ModelResponded,
    PromptAssembled,
    ToolCallCompleted,
)
from codeforge.ports.llm import ChatMessage, ToolCall

# Characters per token when estimating: conservative for code (tokenizers do ~3.5-4).
CHARS_PER_TOKEN = 3.5
# Tool results kept whole when compacting.
KEEP_RECENT_RESULTS = 6


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


def elided(tool: str, size: int) -> str:
    return f"[output of {tool} elided to fit the context window ({size} characters)]"


class Conversation:
    def __init__(self, system: str, user: str) -> None:
        self.messages: list[ChatMessage] = [
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=user),
        ]

    # -- growing it -------------------------------------------------------------------

    def add_assistant(self, content: str, tool_calls: Iterable[ToolCall]) -> None:
        self.messages.append(
            ChatMessage(role="assistant", content=content or None, tool_calls=tuple(tool_calls))
        )

    def add_tool_result(self, call_id: str, tool: str, output: str) -> None:
        self.messages.append(
            ChatMessage(
                role="tool", content=output or "(no output)", tool_call_id=call_id, name=tool
            )
        )

    def add_user(self, text: str) -> None:
        self.messages.append(ChatMessage(role="user", content=text))

    # -- keeping it in the window -------------------------------------------------------

    def estimated_tokens(self) -> int:
        total = 0
        for message in self.messages:
            total += estimate_tokens(message.content or "") + 4
            for call in message.tool_calls:
                total += estimate_tokens(call.name + call.arguments) + 4
        return total

    def compactable(self, keep_recent: int = KEEP_RECENT_RESULTS) -> list[str]:
        """Call ids of tool results that compaction would shorten (oldest first)."""
        results = [
            m
            for m in self.messages
            if m.role == "tool"
            and m.tool_call_id
            and not (m.content or "").startswith("[output of")
        ]
        older = results[: max(0, len(results) - keep_recent)]
        return [m.tool_call_id for m in older if m.tool_call_id and len(m.content or "") > 200]

    def elide(self, call_ids: Iterable[str]) -> None:
        wanted = set(call_ids)
        self.messages = [
            msgspec.structs.replace(m, content=elided(m.name or "a tool", len(m.content or "")))
            if m.role == "tool" and m.tool_call_id in wanted
            else m
            for m in self.messages
        ]

    # -- from the log -------------------------------------------------------------------

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> Conversation:
        conversation: Conversation | None = None
        for event in events:
            match event:
                case PromptAssembled(system=system, user=user):
                    conversation = cls(system, user)
                case _ if conversation is None:
                    continue
                case ModelResponded(content=content, tool_calls=calls):
                    conversation.add_assistant(content, [_call(c) for c in calls])
                case ToolCallCompleted(call_id=call_id, tool=tool, output=output):
                    conversation.add_tool_result(call_id, tool, output)
                case AgentNudged(message=message):
                    conversation.add_user(message)
                case ContextCompacted(elided_calls=calls):
                    conversation.elide(calls)
        if conversation is None:
            raise ValueError("the events hold no PromptAssembled: nothing to rebuild")
        return conversation


def _call(raw: dict[str, Any]) -> ToolCall:
    return ToolCall(
        id=str(raw.get("id", "")),
        name=str(raw.get("name", "")),
        arguments=str(raw.get("arguments", "")),
    )


def calls_as_dicts(calls: Iterable[ToolCall]) -> list[dict[str, Any]]:
    return [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]
