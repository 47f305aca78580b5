"""Asking the code-intelligence engine: find_context and code_graph."""

from __future__ import annotations

from typing import Annotated, ClassVar, Protocol

from msgspec import Meta, Struct

from codeforge.agent.tools.base import Tool, ToolContext, ToolFailed, ToolResult, cap


class CodeSearch(Protocol):
    """What the tools need of the engine (`codeforge.context.retrieval.EngineCodeSearch`)."""

    async def find_context(self, query: str, focus: list[str], token_budget: int) -> str: ...

    async def graph(self, symbol: str, relation: str, limit: int = 30) -> str: ...


class FindArgs(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    query: Annotated[str, Meta(description="What you are looking for, in words and identifiers")]
    focus: Annotated[
        list[str], Meta(description="Files or symbols you are working on (optional)")
    ] = []
    token_budget: Annotated[int, Meta(ge=200, le=16000)] = 3000


class FindContext(Tool[FindArgs]):
    name: ClassVar[str] = "find_context"
    description: ClassVar[str] = (
        "Find the code relevant to a question: several searches at once (keyword, "
        "semantic, the repository map and the code graph), fused into one compact set "
        "of code excerpts with file paths and line numbers, within a token budget. "
        "Prefer it to many greps when you do not know where something lives."
    )
    category = "read"
    Args = FindArgs

    def paths(self, args: FindArgs) -> tuple[str, ...]:
        return ()

    async def run(self, args: FindArgs, context: ToolContext) -> ToolResult:
        if context.code is None:
            raise ToolFailed("code search is not available in this run; use grep and glob")
        if not args.query.strip():
            raise ToolFailed("the query is empty")
        found = await context.code.find_context(args.query, args.focus, args.token_budget)
        body, truncated = cap(found, context.output_chars)
        return ToolResult(ok=True, output=body, truncated=truncated)


class GraphArgs(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    symbol: Annotated[
        str, Meta(description='A symbol ("parse"), "path:symbol", a file path or a module')
    ]
    relation: Annotated[
        str, Meta(description="callers | callees | importers | imports | neighbours")
    ] = "callers"


class CodeGraphTool(Tool[GraphArgs]):
    name: ClassVar[str] = "code_graph"
    description: ClassVar[str] = (
        "Ask the code graph: who calls a symbol (callers), what it calls (callees), which "
        "files import a module (importers), what a file imports (imports), or what is "
        "near it (neighbours, two hops). Answers with paths and line ranges."
    )
    category = "read"
    Args = GraphArgs

    def paths(self, args: GraphArgs) -> tuple[str, ...]:
        return ()

    async def run(self, args: GraphArgs, context: ToolContext) -> ToolResult:
        if context.code is None:
            raise ToolFailed("the code graph is not available in this run; use grep")
        answer = await context.code.graph(args.symbol.strip(), args.relation.strip())
        body, truncated = cap(answer, context.output_chars)
        return ToolResult(ok=True, output=body, truncated=truncated)
