"""The outside world: one package per technology. Only codeforge/container.py imports these."""
