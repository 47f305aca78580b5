"""The native backend's tools, and the toolbox that finds them by name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from codeforge.agent.tools.base import Tool, ToolContext, ToolFailed, ToolResult, cap
from codeforge.agent.tools.context import CodeGraphTool, CodeSearch, FindContext
from codeforge.agent.tools.files import Edit, ListDir, ReadFile, WriteFile
from codeforge.agent.tools.search import Glob, Grep
from codeforge.agent.tools.shell import Bash, Finish
from codeforge.ports.llm import ToolSpec

__all__ = [
    "CodeSearch",
    "Tool",
    "ToolContext",
    "ToolFailed",
    "ToolResult",
    "Toolbox",
    "cap",
    "default_toolbox",
]


class Toolbox:
    def __init__(self, tools: Iterable[Tool[Any]]) -> None:
        self._tools = {tool.name: tool for tool in tools}

    def get(self, name: str) -> Tool[Any] | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(tool.spec() for tool in self._tools.values())


def default_toolbox(*, code_intelligence: bool = False) -> Toolbox:
    """The native tools; with `code_intelligence`, also find_context and code_graph."""
    tools: list[Tool[Any]] = [ReadFile(), WriteFile(), Edit(), ListDir(), Glob(), Grep()]
    if code_intelligence:
        tools += [FindContext(), CodeGraphTool()]
    return Toolbox([*tools, Bash(), Finish()])
