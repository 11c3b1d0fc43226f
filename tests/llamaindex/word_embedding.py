"""A small deterministic embedding for the RAG tests: no model download, no network.

Each content word adds one to a bucket chosen by a stable hash; vectors are unit length, so the
similarity of two texts grows with the words they share.
"""

from __future__ import annotations

import math
import re
import zlib

from llama_index.core.base.embeddings.base import BaseEmbedding

_SKIP = frozenset({"the", "a", "an", "of", "in", "on", "at", "to", "and", "or", "is", "are"})


class WordEmbedding(BaseEmbedding):
    """Bag-of-words vectors of ``size`` buckets."""

    size: int = 256

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.size
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            if word not in _SKIP:
                vector[zlib.crc32(word.encode()) % self.size] += 1.0
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        return [x / norm for x in vector]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)
