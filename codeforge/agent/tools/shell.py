"""Running commands (bash) and ending the run (finish)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from msgspec import Meta, Struct

from codeforge.agent.tools.base import Tool, ToolContext, ToolFailed, ToolResult, cap
from codeforge.ports.sandbox import OutputChunk


class BashArgs(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    command: Annotated[str, Meta(description="A shell command, run with /bin/sh -c")]
    timeout: (
        Annotated[int, Meta(ge=1, description="Seconds before the command is killed")] | None
    ) = None


class Bash(Tool[BashArgs]):
    name: ClassVar[str] = "bash"
    description: ClassVar[str] = (
        "Run a shell command in the repository root (inside the run's sandbox) and get "
        "its exit code, stdout and stderr. Use it to run tests, linters and build tools. "
        "It is killed after its timeout; it has no network unless the run allows it, and "
        "no terminal: never start interactive programs."
    )
    category = "bash"
    Args = BashArgs

    def paths(self, args: BashArgs) -> tuple[str, ...]:
        return ()

    def command(self, args: BashArgs) -> str | None:
        return args.command

    async def run(self, args: BashArgs, context: ToolContext) -> ToolResult:
        if not args.command.strip():
            raise ToolFailed("the command is empty")
        if "\0" in args.command:
            raise ToolFailed("the command holds a NUL character")
        timeout = min(float(args.timeout or context.bash_timeout), context.bash_max_timeout)

        async def relay(chunk: OutputChunk) -> None:
            await context.emit(chunk.stream, chunk.text)

        result = await context.sandbox.exec(args.command, timeout=timeout, on_output=relay)
        parts = [f"exit code {result.exit_code}"]
        if result.timed_out:
            parts[0] += f" (killed after {timeout:g} s)"
        if result.killed_by_limit:
            parts[0] += f" (killed: {result.killed_by_limit} limit)"
        if result.stdout:
            parts.append(f"[stdout]\n{result.stdout.rstrip()}")
        if result.stderr:
            parts.append(f"[stderr]\n{result.stderr.rstrip()}")
        output, truncated = cap("\n".join(parts), context.output_chars)
        return ToolResult(
            ok=result.exit_code == 0 and not result.timed_out,
            output=output,
            exit_code=result.exit_code,
            touched=None,
            timed_out=result.timed_out,
            truncated=truncated or result.truncated,
        )


class FinishArgs(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    summary: Annotated[str, Meta(description="What was done and how it was checked")]


class Finish(Tool[FinishArgs]):
    name: ClassVar[str] = "finish"
    description: ClassVar[str] = (
        "Call when the task is done (and checked, e.g. tests pass), with a short summary "
        "of what changed. The run ends; nothing after this call is executed."
    )
    category = "control"
    Args = FinishArgs

    def paths(self, args: FinishArgs) -> tuple[str, ...]:
        return ()

    async def run(self, args: FinishArgs, context: ToolContext) -> ToolResult:
        summary = args.summary.strip() or "done"
        return ToolResult(ok=True, output="finished", finished=summary)
