"""LlamaIndex's conventional import path: ``from llama_index.llms.opengradient import OpenGradient``."""

from llamaindex_opengradient import OpenGradient

__all__ = ["OpenGradient"]
