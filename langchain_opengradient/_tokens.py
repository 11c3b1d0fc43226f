"""An approximate, dependency-free token counter (pure), so that ``get_num_tokens`` and
``trim_messages(token_counter=model)`` work without ``transformers`` or ``tiktoken``.

How it counts: the text is cut the way byte-pair tokenizers pre-split it, into runs of
letters (with one leading space), runs of up to three digits, runs of other symbols and runs
of whitespace; a letter run counts one token per six letters begun (common words are one
token, long ones several), every other piece one token. Each piece's id is its CRC-32, so
equal text gives equal ids. It is an estimate of what OpenAI-family tokenizers report for
English prose (the gateway's own ``usage`` is the exact count), meant for budgeting and
trimming, not for billing.

Messages count as OpenAI documents for its chat models: 3 tokens per message plus its role,
content and name (1 more for a name), the JSON of any tool calls, and 3 for the reply's
priming; bound tools add the JSON of their schemas.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_PIECES = re.compile(r" ?[^\W\d_]+|\d{1,3}| ?[^\s\w]+|_+|\s+")
_LETTERS_PER_TOKEN = 6
PER_MESSAGE = 3
PER_NAME = 1
REPLY_PRIMING = 3


def token_ids(text: str) -> list[int]:
    """Approximate token ids of ``text`` (see the module's docstring for how it counts)."""
    ids: list[int] = []
    for piece in _PIECES.findall(text):
        word = piece.lstrip(" ")
        if word[:1].isalpha():
            for start in range(0, len(word), _LETTERS_PER_TOKEN):
                chunk = word[start : start + _LETTERS_PER_TOKEN]
                ids.append(zlib.crc32((piece[:1] if start == 0 else "").encode() + chunk.encode()))
        else:
            ids.append(zlib.crc32(piece.encode()))
    return ids


def count(text: str) -> int:
    """Approximate number of tokens in ``text``."""
    return len(token_ids(text))


def content_text(content: Any) -> str:
    """The text of a message's content (a string, or the text of its blocks)."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, Mapping) and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "".join(parts)


def count_messages(messages: Iterable[Any], tools: Sequence[Any] | None = None) -> int:
    """Approximate prompt tokens of LangChain ``messages`` (and bound ``tools``)."""
    total = REPLY_PRIMING
    for message in messages:
        total += PER_MESSAGE + count(str(getattr(message, "type", "")))
        total += count(content_text(getattr(message, "content", "")))
        name = getattr(message, "name", None)
        if name:
            total += PER_NAME + count(name)
        calls = getattr(message, "tool_calls", None)
        if calls:
            total += count(json.dumps(calls, default=str))
    for tool in tools or ():
        total += count(json.dumps(tool, default=str))
    return total
