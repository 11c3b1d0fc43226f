"""OpenAI-shaped answer bodies and SSE events, with the TEE fields (pure)."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from .model import Answer


def _usage(answer: Answer) -> dict[str, int]:
    total = answer.prompt_tokens + answer.completion_tokens
    return {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
            "total_tokens": total}


def _envelope(kind: str, model: str, choice: dict[str, Any], answer: Answer,
              proof: dict[str, Any]) -> dict[str, Any]:
    prefix = "chatcmpl" if kind == "chat.completion" else "cmpl"
    return {"id": f"{prefix}-{uuid.uuid4()}", "object": kind, "created": int(time.time()),
            "model": model, "choices": [{"index": 0, **choice,
                                         "finish_reason": answer.finish_reason}],
            "usage": _usage(answer), **proof}


def chat_body(model: str, answer: Answer, proof: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion``: content ("" with tool calls) and ``tool_calls`` when any."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.content}
    if answer.tool_calls:
        message["tool_calls"] = answer.tool_calls
    return _envelope("chat.completion", model, {"message": message}, answer, proof)


def completion_body(model: str, answer: Answer, proof: dict[str, Any]) -> dict[str, Any]:
    """A ``text_completion``."""
    return _envelope("text_completion", model, {"text": answer.content}, answer, proof)


def _chunk(model: str, delta: dict[str, Any]) -> dict[str, Any]:
    delta = {**delta, "role": "assistant"}
    return {"choices": [{"delta": delta, "index": 0, "finish_reason": None}], "model": model}


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
    final = {"choices": [{"delta": {}, "index": 0, "finish_reason": answer.finish_reason}],
             "model": model, **proof, "usage": _usage(answer)}
    return [*events, final]
