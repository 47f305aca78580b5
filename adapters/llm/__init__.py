"""Language model adapters: any OpenAI-compatible HTTP endpoint (`openai.py`)."""

from adapters.llm.openai import LlmCircuitOpen, OpenAICompatibleModel

__all__ = ["LlmCircuitOpen", "OpenAICompatibleModel"]
