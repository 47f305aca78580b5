"""Protocols for everything outside CodeForge: stores, queue, sandbox, LLM, VCS, probes."""
