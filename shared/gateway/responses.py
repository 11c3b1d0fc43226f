"""OpenAI-shaped answer bodies and SSE events, with the TEE fields (pure)."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from .model import Answer


def _usage(answer: Answer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
    }


def message_of(answer: Answer) -> dict[str, Any]:
    """The assistant message: content ("" with tool calls) and ``tool_calls`` when any."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.content}
    if answer.tool_calls:
        message["tool_calls"] = answer.tool_calls
    return message


def chat_body(model: str, answer: Answer, proof: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    return {
        "id": f"chatcmpl-{uuid.uuid4()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message_of(answer), "finish_reason": answer.finish_reason}
        ],
        "usage": _usage(answer),
        **proof,
    }


def completion_body(model: str, answer: Answer, proof: dict[str, Any]) -> dict[str, Any]:
    """A ``text_completion`` object."""
    return {
        "id": f"cmpl-{uuid.uuid4()}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": answer.content, "finish_reason": answer.finish_reason}],
        "usage": _usage(answer),
        **proof,
    }


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _chunk(model: str, delta: dict[str, Any]) -> dict[str, Any]:
    return {
        "choices": [{"delta": {**delta, "role": "assistant"}, "index": 0, "finish_reason": None}],
        "model": model,
    }


def stream_events(model: str, answer: Answer, proof: dict[str, Any]) -> list[dict[str, Any]]:
    """The SSE ``data:`` objects of a streamed answer: text word by word, each tool call's
    arguments in pieces (``index``, ``id``, ``type``, ``function.name`` on the first piece),
    then the final chunk with ``finish_reason``, the TEE fields and ``usage``."""
    words = re.findall(r"\s*\S+(?:\s+$)?", answer.content)
    if "".join(words) != answer.content:
        words = [answer.content]
    events = [_chunk(model, {"content": word}) for word in words if word]
    for index, call in enumerate(answer.tool_calls):
        function = call["function"]
        for n, piece in enumerate(_pieces(function["arguments"], 12)):
            entry: dict[str, Any] = {"index": index, "function": {"arguments": piece}}
            if n == 0:
                entry = {
                    "index": index,
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": function["name"], "arguments": piece},
                }
            events.append(_chunk(model, {"tool_calls": [entry]}))
    final = {
        "choices": [{"delta": {}, "index": 0, "finish_reason": answer.finish_reason}],
        "model": model,
        **proof,
        "usage": _usage(answer),
    }
    return [*events, final]
