"""OpenAI-shaped answer bodies and SSE events, with the TEE fields (pure)."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from .model import Answer


def body(model: str, answer: Answer, proof: dict[str, Any], *, completion: bool) -> dict[str, Any]:
    """A ``text_completion``, or a ``chat.completion`` whose message has the content ("" with
    tool calls) and ``tool_calls`` when any."""
    choice: dict[str, Any]
    if completion:
        kind, prefix, choice = "text_completion", "cmpl", {"text": answer.content}
    else:
        message: dict[str, Any] = {"role": "assistant", "content": answer.content}
        if answer.tool_calls:
            message["tool_calls"] = answer.tool_calls
        kind, prefix, choice = "chat.completion", "chatcmpl", {"message": message}
    return {
        "id": f"{prefix}-{uuid.uuid4()}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, **choice, "finish_reason": answer.finish_reason}],
        "usage": answer.usage,
        **proof,
    }


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    choice = {"delta": {**delta, "role": "assistant"}, "index": 0, "finish_reason": finish_reason}
    return {"choices": [choice], "model": model}


def stream_events(model: str, answer: Answer, proof: dict[str, Any]) -> list[dict[str, Any]]:
    """The SSE ``data:`` objects of a streamed answer: the text word by word, each tool call's
    arguments in pieces (``index``, ``id``, ``type``, ``function.name`` on the first piece),
    then the final chunk with ``finish_reason``, the TEE fields and ``usage``."""
    words = re.findall(r"\s*\S+(?:\s+$)?", answer.content)
    events = [_chunk(model, {"content": w}) for w in words or [answer.content] if w]
    for index, call in enumerate(answer.tool_calls):
        arguments = call["function"]["arguments"]
        for start in range(0, max(len(arguments), 1), 12):
            text = arguments[start : start + 12]
            piece: dict[str, Any] = {"index": index, "function": {"arguments": text}}
            if start == 0:
                piece.update(id=call["id"], type="function")
                piece["function"]["name"] = call["function"]["name"]
            events.append(_chunk(model, {"tool_calls": [piece]}))
    return [*events, {**_chunk(model, {}, answer.finish_reason), **proof, "usage": answer.usage}]
