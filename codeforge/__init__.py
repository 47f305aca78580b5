"""CodeForge: run LLM coding agents on real repositories, safely and observably."""

__version__ = "0.1.0"
