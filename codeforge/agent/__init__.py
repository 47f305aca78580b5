"""The agent runtime: the native tool-calling loop, its tools, and the executor workers run."""
