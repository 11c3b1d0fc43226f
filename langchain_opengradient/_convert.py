"""Mapping between LangChain types and the transport's OpenAI-shaped dicts (pure, no I/O)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.outputs import ChatGenerationChunk
from opengradient_shared.errors import InvalidRequestError
from opengradient_shared.openai_schema import join_text, provider_model
from opengradient_shared.types import StreamChunk, TextGenerationOutput, Usage

# Blocks of an AI message that restate its ``tool_calls`` (Anthropic ``tool_use``, LangChain v1
# ``tool_call``): the calls travel in ``tool_calls``, so these are not content.
_TOOL_CALL_BLOCKS = frozenset({"tool_use", "tool_call", "tool_call_chunk", "invalid_tool_call"})


# ---- requests ----------------------------------------------------------------------------


def _text(content: str | list[Any], where: str, *, ai: bool = False) -> str:
    """Flatten string content or text blocks to one string; any other block is refused."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
            continue
        kind = block.get("type") if isinstance(block, Mapping) else type(block).__name__
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif not (ai and kind in _TOOL_CALL_BLOCKS):
            raise InvalidRequestError(
                f"{where} has a content block of type {kind!r}; OpenGradient models take "
                "text only (strings or {'type': 'text', 'text': ...} blocks)"
            )
    return join_text(parts)


def _assistant(message: AIMessage, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": _text(message.content, where, ai=True)}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": json.dumps(call["args"], ensure_ascii=False),
                },
            }
            for call in message.tool_calls
        ]
    return out


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as the transport's OpenAI dicts.

    Raises :class:`InvalidRequestError` (before anything is sent) for message or content types
    the gateway cannot take.
    """
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"message {i} ({type(message).__name__})"
        if isinstance(message, AIMessage):
            out.append(_assistant(message, where))
        elif isinstance(message, SystemMessage):
            out.append({"role": "system", "content": _text(message.content, where)})
        elif isinstance(message, HumanMessage):
            out.append({"role": "user", "content": _text(message.content, where)})
        elif isinstance(message, ToolMessage):
            out.append(
                {
                    "role": "tool",
                    "content": _text(message.content, where),
                    "tool_call_id": message.tool_call_id,
                }
            )
        elif isinstance(message, ChatMessage):
            out.append({"role": message.role, "content": _text(message.content, where)})
        else:
            raise InvalidRequestError(
                f"{where}: message type {message.type!r} is not supported; use System, Human, "
                "AI or Tool messages"
            )
        if message.name and not isinstance(message, ToolMessage):
            out[-1]["name"] = message.name
    return out


def tool_choice_of(choice: Any, tools: Sequence[Mapping[str, Any]]) -> str | dict[str, Any] | None:
    """Normalise LangChain's tool_choice spellings to the transport's."""
    names = [
        tool["function"]["name"] for tool in tools if isinstance(tool.get("function"), Mapping)
    ]
    if choice is None or isinstance(choice, dict):
        return choice
    if choice is True or choice in ("any", "required"):
        return "required"
    if choice is False:
        return "none"
    if choice in ("auto", "none"):
        return str(choice)
    if isinstance(choice, str) and choice in names:
        return {"type": "function", "function": {"name": choice}}
    raise InvalidRequestError(
        f"tool_choice {choice!r} is neither 'auto', 'none', 'any'/'required' nor the name of a "
        f"bound tool ({', '.join(names) or 'no tools bound'})"
    )


# ---- answers -----------------------------------------------------------------------------


def _usage(usage: Usage | None) -> UsageMetadata | None:
    if usage is None:
        return None
    return UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


def metadata(
    answer: TextGenerationOutput | StreamChunk, finish_reason: str | None, requested: str
) -> dict[str, Any]:
    """``response_metadata``: model, finish reason, payment hash, receipt and TEE proof."""
    return {
        "model_name": provider_model(answer.model, requested),
        "finish_reason": finish_reason,
        "payment_hash": answer.payment_hash,
        "payment": asdict(answer.payment) if answer.payment else None,
        "tee_proof": asdict(answer.tee_proof) if answer.tee_proof else None,
        "tee_origin": asdict(answer.tee_origin) if answer.tee_origin else None,
    }


def _calls(raw: Sequence[Mapping[str, Any]]) -> tuple[list[Any], list[Any]]:
    calls, invalid = [], []
    for call in raw:
        function = call.get("function") or {}
        name, arguments = function.get("name"), function.get("arguments") or ""
        try:
            args = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            invalid.append(
                invalid_tool_call(
                    name=name,
                    args=arguments,
                    id=call.get("id"),
                    error=f"arguments are not JSON: {exc}",
                )
            )
            continue
        if not isinstance(args, dict):
            invalid.append(
                invalid_tool_call(
                    name=name,
                    args=arguments,
                    id=call.get("id"),
                    error="arguments are not a JSON object",
                )
            )
            continue
        calls.append(tool_call(name=str(name or ""), args=args, id=call.get("id")))
    return calls, invalid


def ai_message(output: TextGenerationOutput, requested: str) -> AIMessage:
    """The ``AIMessage`` of a chat answer."""
    chat = output.chat_output or {}
    calls, invalid = _calls(chat.get("tool_calls") or [])
    return AIMessage(
        content=chat.get("content") or "",
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata=_usage(output.usage),
        id=output.id,
        response_metadata=metadata(output, output.finish_reason, requested),
    )


def first_tool_call_only(message: AIMessage) -> AIMessage:
    """``message`` with its first tool call only (``parallel_tool_calls=False``); the number
    dropped is in ``response_metadata["dropped_tool_calls"]``."""
    calls = [*message.tool_calls, *message.invalid_tool_calls]
    if len(calls) <= 1:
        return message
    first = message.tool_calls[:1]
    invalid = [] if first else message.invalid_tool_calls[:1]
    metadata = {**message.response_metadata, "dropped_tool_calls": len(calls) - 1}
    return message.model_copy(
        update={"tool_calls": first, "invalid_tool_calls": invalid, "response_metadata": metadata}
    )


def generation_chunk(chunk: StreamChunk, requested: str) -> ChatGenerationChunk:
    """The LangChain chunk of one stream chunk; only the final one carries usage and metadata
    (LangChain sums usage and concatenates strings when chunks are added)."""
    text, pieces, finish = "", [], None
    for choice in chunk.choices:
        if choice.index != 0:
            continue
        text += choice.delta.content or ""
        finish = choice.finish_reason or finish
        for piece in choice.delta.tool_calls or []:
            function = piece.get("function") or {}
            pieces.append(
                tool_call_chunk(
                    name=function.get("name"),
                    args=function.get("arguments"),
                    id=piece.get("id"),
                    index=piece.get("index"),
                )
            )
    if not chunk.is_final:
        return ChatGenerationChunk(message=AIMessageChunk(content=text, tool_call_chunks=pieces))
    message = AIMessageChunk(
        content=text,
        tool_call_chunks=pieces,
        usage_metadata=_usage(chunk.usage),
        response_metadata=metadata(chunk, finish, requested),
        chunk_position="last",
    )
    return ChatGenerationChunk(message=message)
