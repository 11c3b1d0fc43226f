"""Function calling between LlamaIndex and the transport (pure): tool specs, ``tool_choice``,
and reading the calls of a response as ``ToolSelection``s."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatResponse, ToolCallBlock
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.utils import parse_partial_json
from opengradient_shared.errors import InvalidRequestError

from ._convert import call_fields


def tool_spec(tool: Any, strict: bool | None = None) -> dict[str, Any]:
    """The OpenAI function tool of a LlamaIndex tool (an OpenAI dict passes through)."""
    if isinstance(tool, Mapping):
        spec = dict(tool)
    else:
        metadata = getattr(tool, "metadata", None)
        if metadata is None or not hasattr(metadata, "to_openai_tool"):
            raise InvalidRequestError(
                f"tool {tool!r:.80} is neither a LlamaIndex tool nor an OpenAI function tool dict"
            )
        spec = metadata.to_openai_tool(skip_length_check=True)
    if strict is not None and isinstance(spec.get("function"), Mapping):
        spec["function"] = {**spec["function"], "strict": strict}
    return spec


def tool_choice_of(
    choice: Any, tools: Sequence[Mapping[str, Any]], tool_required: bool = False
) -> str | dict[str, Any] | None:
    """The transport's ``tool_choice``: "auto", "none", "required", an OpenAI dict, or a tool's
    name (forced); None chooses "required" when ``tool_required``, else "auto"."""
    if not tools:
        return None
    if choice is None:
        return "required" if tool_required else "auto"
    if isinstance(choice, Mapping) or choice in ("auto", "none", "required"):
        return choice if isinstance(choice, str) else dict(choice)
    names = [(t.get("function") or {}).get("name") for t in tools]
    if isinstance(choice, str) and choice in names:
        return {"type": "function", "function": {"name": choice}}
    raise InvalidRequestError(
        f"tool_choice {choice!r} is neither 'auto', 'none', 'required' nor the name of a tool "
        f"({', '.join(str(n) for n in names)})"
    )


def _is_complete(response: ChatResponse) -> bool:
    """False for a streamed response before its final chunk (its arguments may be partial)."""
    raw = response.raw
    return not (isinstance(raw, Mapping) and raw.get("is_final") is False)


def _arguments(arguments: Any, name: str, complete: bool) -> dict[str, Any]:
    """A call's arguments as a dict. Partial JSON of a stream in progress is read as far as it
    goes; on a complete answer, arguments that are not a JSON object raise ``ValueError``."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    text = arguments if isinstance(arguments, str) else ""
    if not text.strip():
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        if complete:
            raise ValueError(
                f"the model called {name!r} with arguments that are not valid JSON: {text!r:.200}"
            ) from None
        try:
            parsed = parse_partial_json(text)
        except (ValueError, TypeError):
            return {}
    if not isinstance(parsed, dict):
        if complete:
            raise ValueError(
                f"the model called {name!r} with arguments that are not a JSON object: "
                f"{text!r:.200}"
            )
        return {}
    return parsed


def selections(response: ChatResponse, error_on_no_tool_call: bool) -> list[ToolSelection]:
    """The tool calls of ``response``: its ``ToolCallBlock``s, else its
    ``additional_kwargs["tool_calls"]``."""
    message = response.message
    found = [
        (b.tool_call_id, b.tool_name, b.tool_kwargs)
        for b in message.blocks
        if isinstance(b, ToolCallBlock)
    ]
    if not found:
        found = [call_fields(call) for call in message.additional_kwargs.get("tool_calls") or []]
    if not found:
        if error_on_no_tool_call:
            raise ValueError("expected at least one tool call, but the response has none")
        return []
    complete = _is_complete(response)
    return [
        ToolSelection(
            tool_id=call_id or "",
            tool_name=name or "",
            tool_kwargs=_arguments(arguments, name or "", complete),
        )
        for call_id, name, arguments in found
    ]


def first_call_only(response: ChatResponse) -> ChatResponse:
    """``response`` with its first tool call only (the others dropped from the message's blocks
    and ``tool_calls``)."""
    message = response.message
    blocks = [b for b in message.blocks if isinstance(b, ToolCallBlock)]
    calls = message.additional_kwargs.get("tool_calls") or []
    if len(blocks) <= 1 and len(calls) <= 1:
        return response
    kept = [b for b in message.blocks if not isinstance(b, ToolCallBlock)] + blocks[:1]
    extra = {**message.additional_kwargs, "tool_calls": list(calls[:1])}
    new = message.model_copy(update={"blocks": kept, "additional_kwargs": extra})
    return response.model_copy(update={"message": new})
