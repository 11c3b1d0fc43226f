"""LlamaIndex integration of OpenGradient's TEE-verified, x402-paid LLMs.

``OpenGradient`` is a LlamaIndex ``FunctionCallingLLM`` (chat, completion, streaming, async,
tools, structured output); every response carries its verified TEE proof and payment receipt
in ``additional_kwargs``.
"""

from .base import OpenGradient

__all__ = ["OpenGradient"]
