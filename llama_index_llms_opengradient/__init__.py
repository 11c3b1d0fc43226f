"""LlamaIndex's conventional import path: ``from llama_index.llms.opengradient import OpenGradient``."""

from llamaindex_opengradient import OpenGradient, ProofCollector, collect_proofs

__all__ = ["OpenGradient", "ProofCollector", "collect_proofs"]
