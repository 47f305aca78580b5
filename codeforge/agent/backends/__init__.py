"""Backends other than the native loop: external coding agents CodeForge drives (aider).

A backend does the "work" part of a run (`AgentExecutor` keeps planning, the worktree,
cost holds and delivery); it reaches the model only through the LLM proxy, so every
call is budgeted and recorded like the native loop's.
"""
