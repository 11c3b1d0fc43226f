"""Context windows (tokens, input and output together) of the models OpenGradient serves, as
their providers publish them; LlamaIndex sizes its prompts (e.g. RAG context) by them."""

from __future__ import annotations

from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW

CONTEXT_WINDOWS: dict[str, int] = {
    "openai/gpt-4.1-2025-04-14": 1_047_576,
    "openai/gpt-4.1": 1_047_576,
    "openai/o4-mini": 200_000,
    "openai/gpt-5": 400_000,
    "openai/gpt-5-mini": 400_000,
    "openai/gpt-5.2": 400_000,
    "anthropic/claude-sonnet-4-5": 200_000,
    "anthropic/claude-sonnet-4-6": 200_000,
    "anthropic/claude-haiku-4-5": 200_000,
    "anthropic/claude-opus-4-5": 200_000,
    "anthropic/claude-opus-4-6": 200_000,
    "anthropic/claude-4.0-sonnet": 200_000,
    "google/gemini-2.5-flash": 1_048_576,
    "google/gemini-2.5-pro": 1_048_576,
    "google/gemini-2.5-flash-lite": 1_048_576,
    "google/gemini-3-flash-preview": 1_048_576,
    "x-ai/grok-4": 256_000,
    "x-ai/grok-4-fast": 2_000_000,
    "x-ai/grok-4.1-fast": 2_000_000,
    "x-ai/grok-4-1-fast-non-reasoning": 2_000_000,
    "x-ai/grok-3-mini-beta": 131_072,
    "x-ai/grok-3-beta": 131_072,
}


def context_window_of(model: str) -> int:
    """The context window of ``model`` ("provider/model"); LlamaIndex's conservative default
    (3,900 tokens) for a model not in the table."""
    return CONTEXT_WINDOWS.get(model, DEFAULT_CONTEXT_WINDOW)
