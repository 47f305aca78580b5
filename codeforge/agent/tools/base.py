"""What every agent tool is: a name, a JSON-schema'd argument Struct, a category, a run.

Tools act on the workspace only through the run's `Sandbox` (paths are checked there:
no `..`, no absolute paths, no link out of the workspace). A tool never raises for
something the model did wrong — a missing file, an edit that does not match — it
returns a failed `ToolResult` whose text tells the model what happened and what to do
instead, so the model can correct itself. Only the runtime's own failures (a closed
sandbox, a cancelled run) propagate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import msgspec
from msgspec import Struct

from codeforge.ports.llm import ToolSpec

if TYPE_CHECKING:
    from codeforge.agent.tools.context import CodeSearch
from codeforge.ports.policy import ToolCategory
from codeforge.ports.sandbox import (
    Sandbox,
    SandboxClosed,
    SandboxError,
    SandboxUnavailable,
    StreamName,
)

A = TypeVar("A", bound=Struct)

Emit = Callable[[StreamName, str], Awaitable[None]]


class ToolResult(Struct, frozen=True, kw_only=True):
    ok: bool
    # What the model is shown.
    output: str
    exit_code: int | None = None
    # Paths the tool wrote; None means "unknown" (a shell command may have changed any).
    touched: tuple[str, ...] | None = ()
    timed_out: bool = False
    truncated: bool = False
    diff: str = ""
    # Set by `finish`: the run is done, with this summary.
    finished: str | None = None


class ToolFailed(Exception):
    """Raised inside a tool for a mistake the model can fix; becomes a failed result."""


@dataclass(frozen=True)
class ToolContext:
    sandbox: Sandbox
    # Characters of output the model is shown (head and tail around a marker past it).
    output_chars: int
    # Default and largest timeout of one shell command, in seconds.
    bash_timeout: float
    bash_max_timeout: float
    # Live output (stdout/stderr of a command) as it is produced; never stored.
    emit: Emit
    # The code-intelligence engine over the run's worktree (None: not available).
    code: CodeSearch | None = None


class Tool(ABC, Generic[A]):
    name: ClassVar[str]
    description: ClassVar[str]
    category: ClassVar[ToolCategory]
    Args: type[A]

    def spec(self) -> ToolSpec:
        return ToolSpec(name=self.name, description=self.description, parameters=schema(self.Args))

    def decode(self, arguments: dict[str, Any]) -> A:
        try:
            return msgspec.convert(arguments, self.Args, strict=True)
        except msgspec.ValidationError as e:
            raise ToolFailed(f"invalid arguments for {self.name}: {e}") from None

    def paths(self, args: A) -> tuple[str, ...]:
        """The workspace paths the call reads or writes (for the policy gate)."""
        path = getattr(args, "path", None)
        return (path,) if isinstance(path, str) else ()

    def command(self, args: A) -> str | None:
        """The shell command the call runs (for the policy gate)."""
        return None

    async def __call__(self, args: A, context: ToolContext) -> ToolResult:
        try:
            return await self.run(args, context)
        except ToolFailed as e:
            return ToolResult(ok=False, output=str(e))
        except (SandboxClosed, SandboxUnavailable):
            raise  # the runtime's trouble, not the model's
        except SandboxError as e:
            # Path escapes, missing files, wrong file types: the model's to fix.
            return ToolResult(ok=False, output=f"{self.name} failed: {e.message}")

    @abstractmethod
    async def run(self, args: A, context: ToolContext) -> ToolResult: ...


def schema(args: type[Struct]) -> dict[str, Any]:
    """The JSON schema of an argument Struct, inlined (providers dislike `$ref`)."""
    full = msgspec.json.schema(args)
    defs = full.get("$defs", {})
    ref = full.get("$ref", "")
    body: dict[str, Any] = dict(defs[ref.rsplit("/", 1)[-1]]) if ref else dict(full)
    body.pop("title", None)
    body.setdefault("properties", {})
    body["additionalProperties"] = False
    return body


def cap(text: str, limit: int) -> tuple[str, bool]:
    """`text` kept to `limit` characters: its head and tail around a marker."""
    if len(text) <= limit:
        return text, False
    head = limit * 3 // 4
    tail = limit - head
    omitted = len(text) - head - tail
    return f"{text[:head]}\n[… {omitted} characters omitted …]\n{text[-tail:]}", True
