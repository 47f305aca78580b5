"""The first prompt of a run: who the agent is, the task, the repository's own rules.

Parts, in order: CodeForge's instructions for the native loop; the agent's own
instructions; the project's instruction files (`AGENTS.md`, then `CODEFORGE.md`, at the
repository root, each capped); the context pack (a file tree now, the repo map and
retrieval once the code-intelligence engine is plugged in). The user message is the
task: title, prompt and acceptance criteria. The whole is stored as `PromptAssembled`.
"""

from __future__ import annotations

from collections.abc import Sequence

from msgspec import Struct

from codeforge.agent.tools.base import cap
from codeforge.domain.agents import Agent
from codeforge.domain.tasks import Task
from codeforge.ports.context import ContextPack
from codeforge.ports.sandbox import Sandbox, SandboxError

INSTRUCTION_FILES = ("AGENTS.md", "CODEFORGE.md")
INSTRUCTION_CHARS = 20_000

SYSTEM = """\
You are a software engineer working on a git repository through tools. You change the \
code to complete the task you are given, check your work, and finish.

How to work:
- Explore before you edit: list folders, grep for names, read the files you will change.
- Make focused changes with `edit` (exact text replacement) or `write_file` (new or \
rewritten files). Keep the project's style.
- Run the project's tests or checks with `bash` to see that your change works. Fix \
what fails.
- When the task is done, call `finish` with a short summary of what you changed and \
how you checked it. Do not stop without calling `finish`.

Rules:
- Paths are relative to the repository root. You cannot leave the repository.
- Commands run in a sandbox ({sandbox}) without a terminal; never start interactive \
programs or servers that do not exit. A command is killed after its timeout.
- Do not commit, push or change git configuration: CodeForge delivers your changes.
"""


class AssembledPrompt(Struct, frozen=True, kw_only=True):
    system: str
    user: str
    sources: dict[str, object]


async def assemble(
    *,
    task: Task,
    agent: Agent,
    sandbox: Sandbox,
    context: ContextPack | None,
    extra_instructions: Sequence[str] = (),
) -> AssembledPrompt:
    parts = [SYSTEM.format(sandbox=sandbox.kind)]
    sources: dict[str, object] = {}
    if agent.instructions.strip():
        parts.append(f"Instructions for you as agent {agent.name!r}:\n{agent.instructions.strip()}")
        sources["agent_instructions"] = agent.name
    files: list[str] = []
    for name in INSTRUCTION_FILES:
        text = await _read(sandbox, name)
        if text:
            body, truncated = cap(text.strip(), INSTRUCTION_CHARS)
            parts.append(f"The repository's {name} (its maintainers' rules for agents):\n{body}")
            files.append(name + (" (truncated)" if truncated else ""))
    if files:
        sources["instruction_files"] = files
    parts.extend(extra_instructions)
    if context is not None and context.text.strip():
        parts.append(f"What the repository looks like:\n{context.text.strip()}")
        sources["context"] = {
            "provider": context.provider,
            "tokens": context.token_count,
            "items": len(context.items),
            "notices": context.notices,
        }
    return AssembledPrompt(system="\n\n".join(parts), user=task_message(task), sources=sources)


def task_message(task: Task) -> str:
    lines = [f"Task: {task.title}", "", task.prompt.strip()]
    if task.acceptance_criteria:
        lines += ["", "It is done when:"]
        lines += [f"- {criterion}" for criterion in task.acceptance_criteria]
    return "\n".join(lines)


async def _read(sandbox: Sandbox, path: str) -> str:
    try:
        data = await sandbox.read_file(path)
    except SandboxError:
        return ""  # absent, a folder, or a link out of the workspace: not instructions
    return data.decode("utf-8", errors="replace")
