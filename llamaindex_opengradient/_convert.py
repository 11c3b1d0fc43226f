"""Mapping between LlamaIndex messages and responses and the transport's OpenAI-shaped dicts and
outputs (pure, no I/O)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    ContentBlock,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from opengradient_shared.errors import InvalidRequestError
from opengradient_shared.openai_schema import join_text, provider_model
from opengradient_shared.protocol import StreamAccumulator
from opengradient_shared.types import StreamChunk, TextGenerationOutput

_ROLES = {
    MessageRole.SYSTEM: "system",
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    MessageRole.TOOL: "tool",
}

# ---- requests ----------------------------------------------------------------------------


def _text(message: ChatMessage, where: str) -> tuple[str, list[ToolCallBlock]]:
    """The message's text blocks joined (by the shared rule, :func:`join_text`), and its tool
    call blocks (assistant messages only); any other block is refused."""
    texts, calls = [], []
    assistant = message.role == MessageRole.ASSISTANT
    for block in message.blocks:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif assistant and isinstance(block, ToolCallBlock):
            calls.append(block)
        else:
            kind = getattr(block, "block_type", None) or type(block).__name__
            raise InvalidRequestError(
                f"{where} has a {kind!r} block ({type(block).__name__}); OpenGradient models "
                "take text only (TextBlock)"
            )
    return join_text(texts), calls


def _call(call_id: Any, name: Any, arguments: Any, where: str) -> dict[str, Any]:
    """One OpenAI tool call, with the arguments as JSON text."""
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(f"{where} has a tool call without a tool name")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError(
            f"{where}: the call of {name!r} has no id; the tool message answering it must "
            "name that id"
        )
    if arguments is None:
        arguments = "{}"
    elif isinstance(arguments, Mapping):
        arguments = json.dumps(arguments, ensure_ascii=False)
    elif not isinstance(arguments, str):
        raise InvalidRequestError(
            f"{where}: the arguments of the call of {name!r} are a {type(arguments).__name__}; "
            "give a dict or JSON text"
        )
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def call_fields(call: Any) -> tuple[Any, Any, Any]:
    """(id, name, arguments) of an OpenAI tool call: a dict, or an object with ``id`` and
    ``function`` (as LlamaIndex's OpenAI LLM stores them)."""
    if isinstance(call, Mapping):
        function = call.get("function") or {}
        return call.get("id"), function.get("name"), function.get("arguments")
    function = getattr(call, "function", None)
    return (
        getattr(call, "id", None),
        getattr(function, "name", None),
        getattr(function, "arguments", None),
    )


def _tool_calls(message: ChatMessage, blocks: list[ToolCallBlock], where: str) -> list[Any]:
    """An assistant message's calls: its ``ToolCallBlock``s, else the OpenAI-style
    ``additional_kwargs["tool_calls"]``."""
    if blocks:
        return [_call(b.tool_call_id, b.tool_name, b.tool_kwargs, where) for b in blocks]
    calls = message.additional_kwargs.get("tool_calls") or []
    return [_call(*call_fields(call), where) for call in calls]


def to_openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """LlamaIndex messages as the transport's OpenAI dicts.

    Raises :class:`InvalidRequestError` (before anything is sent) for a role, block or tool
    message the OpenGradient API cannot take.
    """
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence):
        raise InvalidRequestError(
            f"messages must be a list of ChatMessage, got {type(messages).__name__}"
        )
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, ChatMessage):
            raise InvalidRequestError(
                f"message {i} is a {type(message).__name__}, not a ChatMessage"
            )
        role = _ROLES.get(message.role)
        where = f"message {i} ({message.role.value})"
        if role is None:
            hint = " (use 'system')" if message.role == MessageRole.DEVELOPER else ""
            raise InvalidRequestError(
                f"message {i} has role {message.role.value!r}{hint}; OpenGradient takes system, "
                "user, assistant and tool messages"
            )
        text, blocks = _text(message, where)
        entry: dict[str, Any] = {"role": role, "content": text}
        extra = message.additional_kwargs
        if role == "assistant":
            calls = _tool_calls(message, blocks, where)
            if calls:
                entry["tool_calls"] = calls
        elif role == "tool":
            call_id = extra.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequestError(
                    f"{where} needs additional_kwargs['tool_call_id']: the id of the tool call "
                    "it answers"
                )
            entry["tool_call_id"] = call_id
        if isinstance(extra.get("name"), str) and role != "tool":
            entry["name"] = extra["name"]
        out.append(entry)
    return out


# ---- answers -----------------------------------------------------------------------------


def metadata(
    answer: TextGenerationOutput | StreamChunk, finish_reason: str | None, requested: str
) -> dict[str, Any]:
    """A response's ``additional_kwargs``: TEE proof, payment receipt and hash, usage, finish
    reason and model (plain dicts and strings)."""
    return {
        "tee_proof": asdict(answer.tee_proof) if answer.tee_proof else None,
        "tee_origin": asdict(answer.tee_origin) if answer.tee_origin else None,
        "payment": asdict(answer.payment) if answer.payment else None,
        "payment_hash": answer.payment_hash,
        "usage": asdict(answer.usage) if answer.usage else None,
        "finish_reason": finish_reason,
        "model": provider_model(answer.model, requested),
    }


def assistant_message(content: str, calls: Sequence[Mapping[str, Any]]) -> ChatMessage:
    """The assistant's message: its text, and each tool call both as a ``ToolCallBlock`` and
    in ``additional_kwargs["tool_calls"]`` (OpenAI dicts), as LlamaIndex's OpenAI LLM does."""
    blocks: list[ContentBlock] = [TextBlock(text=content)]
    extra: dict[str, Any] = {}
    if calls:
        blocks += [
            ToolCallBlock(
                tool_call_id=call.get("id"),
                tool_name=(call.get("function") or {}).get("name") or "",
                tool_kwargs=(call.get("function") or {}).get("arguments") or "",
            )
            for call in calls
        ]
        extra["tool_calls"] = copy.deepcopy(list(calls))
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=extra)


def chat_response(output: TextGenerationOutput, requested: str) -> ChatResponse:
    """The ``ChatResponse`` of a chat answer; ``raw`` is the transport's output as a dict."""
    chat = output.chat_output or {}
    return ChatResponse(
        message=assistant_message(str(chat.get("content") or ""), chat.get("tool_calls") or []),
        raw=asdict(output),
        additional_kwargs=metadata(output, output.finish_reason, requested),
    )


def completion_response(output: TextGenerationOutput, requested: str) -> CompletionResponse:
    """The ``CompletionResponse`` of a completion answer."""
    return CompletionResponse(
        text=output.completion_output or "",
        raw=asdict(output),
        additional_kwargs=metadata(output, output.finish_reason, requested),
    )


class ChatStream:
    """Folds a transport stream's chunks into LlamaIndex's streamed responses: each carries its
    ``delta`` and the whole message so far (text and tool calls); the final one also the
    metadata of :func:`metadata`."""

    def __init__(self, requested: str) -> None:
        self._requested = requested
        self._so_far = StreamAccumulator()

    def response(self, chunk: StreamChunk) -> ChatResponse:
        """The ``ChatResponse`` after ``chunk``."""
        delta, finish = "", None
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta += choice.delta.content or ""
            finish = choice.finish_reason or finish
        self._so_far.add(
            {
                "choices": [
                    {"index": c.index, "delta": {"content": c.delta.content,
                                                 "tool_calls": c.delta.tool_calls}}
                    for c in chunk.choices
                ]
            }
        )  # fmt: skip
        return ChatResponse(
            message=assistant_message(self._so_far.content, self._so_far.tool_calls or []),
            delta=delta,
            raw=asdict(chunk),
            additional_kwargs=metadata(chunk, finish, self._requested) if chunk.is_final else {},
        )

    def completion(self, chunk: StreamChunk) -> CompletionResponse:
        """The ``CompletionResponse`` after ``chunk`` (text so far and delta)."""
        response = self.response(chunk)
        return CompletionResponse(
            text=self._so_far.content,
            delta=response.delta,
            raw=response.raw,
            additional_kwargs=response.additional_kwargs,
        )
