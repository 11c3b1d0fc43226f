"""LangChain integration of OpenGradient's TEE-verified, x402-paid LLMs.

``ChatOpenGradient`` is a LangChain chat model (tools, streaming, async, structured output);
``OpenGradientLLM`` does text completion. Both carry each answer's verified TEE proof and
payment receipt in their metadata.
"""

from ._config import CutAnswerWarning
from .chat_models import ChatOpenGradient
from .llms import OpenGradientLLM

__all__ = ["ChatOpenGradient", "CutAnswerWarning", "OpenGradientLLM"]
