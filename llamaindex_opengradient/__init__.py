"""LlamaIndex integration of OpenGradient's TEE-verified, x402-paid LLMs.

``OpenGradient`` is a LlamaIndex ``FunctionCallingLLM`` (chat, completion, streaming, async,
tools, structured output); every response carries its verified TEE proof and payment receipt
in ``additional_kwargs``. ``collect_proofs()`` / ``ProofCollector`` gather the proofs of the
answers behind a query engine, chat engine or agent run.
"""

from ._proofs import ProofCollector, collect_proofs
from .base import OpenGradient

__all__ = ["OpenGradient", "ProofCollector", "collect_proofs"]
