"""A small offline embedding so the LlamaIndex examples and the RAG tests need no model
download, network or API key.

Words are hashed into a fixed number of buckets and the counts normalised: retrieval by shared
words, deterministic and instant. Use a real embedding model in production.
"""

from __future__ import annotations

import hashlib
import math
import re

from llama_index.core.base.embeddings.base import BaseEmbedding

_IGNORED = frozenset(
    ["the", "and", "for", "are", "was", "with", "that", "this", "from", "into", "its", "what"]
)


class HashingEmbedding(BaseEmbedding):
    """Bag-of-words vectors: word counts hashed into ``dimensions`` buckets, unit length."""

    dimensions: int = 512

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            if len(word) > 2 and word not in _IGNORED:
                bucket = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest())
                vector[bucket % self.dimensions] += 1.0
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        return [x / norm for x in vector]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)
