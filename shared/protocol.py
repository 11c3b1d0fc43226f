"""The gateway's HTTP protocol, sans I/O: validate the seed API's arguments, build request bodies
and headers, and read answers into the public types (protocol.md sections 1 and 2).

Every argument is checked here, so that bad input is refused with a clear
:class:`InvalidRequestError` before anything is signed or sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import tee
from .errors import (
    AuthenticationError,
    InvalidRequestError,
    OpenGradientError,
    ServerError,
    truncate_body,
)
from .types import TEE_LLM, Usage, x402SettlementMode

CHAT_PATH = "/v1/chat/completions"
COMPLETION_PATH = "/v1/completions"
AUTHORIZATION = "Bearer opengradient"
"""The gateway answers 401 without an ``Authorization`` header; payment is what authorizes."""
SETTLEMENT_HEADER = "X-SETTLEMENT-TYPE"
PROCESSING_HASH_HEADER = "x-processing-hash"

ROLES = ("system", "user", "assistant", "tool")
TOOL_CHOICES = ("auto", "none", "required")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
MAX_TEMPERATURE = 2.0


@dataclass(frozen=True)
class PreparedRequest:
    """A validated call: where it goes, its JSON body, and what its proof must hash to."""

    path: str
    body: dict[str, Any]
    settlement: x402SettlementMode
    stream: bool = False
    completion: bool = False
    payload: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", json.dumps(self.body).encode("ascii"))

    @property
    def request_hash(self) -> str:
        """The ``tee_request_hash`` an honest gateway signs for this body."""
        return tee.request_hash(self.body, completion=self.completion)

    def headers(self, generation: int | None) -> dict[str, str]:
        """Request headers for a server of protocol ``generation`` (1 or 2); None (not known
        yet) sends no settlement mode rather than a spelling the server may misread."""
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if self.stream else "application/json",
            "Authorization": AUTHORIZATION,
        }
        if generation is not None:
            headers[SETTLEMENT_HEADER] = self.settlement.wire_value(generation)
        return headers


# ---- validation --------------------------------------------------------------------------


def wire_model(model: TEE_LLM | str) -> str:
    """The model name sent to the gateway: the ``provider/`` prefix removed."""
    if not isinstance(model, str):
        raise InvalidRequestError(
            f"model must be a TEE_LLM member or a 'provider/model' string, got {model!r}"
        )
    if not model.strip():
        raise InvalidRequestError(
            "model is empty; use a TEE_LLM member such as TEE_LLM.GPT_4_1_2025_04_14"
        )
    provider, slash, name = model.partition("/")
    if not slash or not provider or not name:
        raise InvalidRequestError(f"model {model!r} has no provider prefix; {_model_hint(model)}")
    return name


def provider_model(reported: str | None, requested: str) -> str:
    """The ``provider/model`` name of an answer: the gateway reports the model without its
    provider (``gpt-4.1`` for ``openai/gpt-4.1``); nothing reported means the one requested."""
    if not reported:
        return requested
    provider, _, _ = requested.partition("/")
    return reported if "/" in reported else f"{provider}/{reported}"


def _model_hint(model: str) -> str:
    for member in TEE_LLM:
        if member.value.split("/", 1)[1] == model:
            return f"use TEE_LLM.{member.name} or {member.value!r}"
    return (
        "use a TEE_LLM member (e.g. TEE_LLM.GPT_4_1_2025_04_14) or a string like "
        "'openai/gpt-4.1-2025-04-14'"
    )


def _max_tokens(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidRequestError(f"max_tokens must be a positive integer, got {value!r}")
    return value


def _temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidRequestError(f"temperature must be a number from 0 to 2, got {value!r}")
    if not 0 <= value <= MAX_TEMPERATURE:
        raise InvalidRequestError(f"temperature must be from 0 to 2, got {value!r}")
    return float(value)


def _stop(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidRequestError(
            f"stop_sequence must be a list of strings (e.g. [{value!r}]), got {value!r}"
        )
    if not all(isinstance(item, str) and item for item in value):
        raise InvalidRequestError(f"stop_sequence must hold non-empty strings, got {value!r}")
    return list(value) or None


def _settlement(value: Any) -> x402SettlementMode:
    if value is None:
        return x402SettlementMode.SETTLE_BATCH
    try:
        return x402SettlementMode.parse(value)
    except ValueError as exc:
        raise InvalidRequestError(f"x402_settlement_mode: {exc}") from None


TEXT_PARTS_SEPARATOR = ""
"""How the text parts of one message's list content are joined into the string sent (as the
OpenAI API reads consecutive text parts: one after the other). The adapters join their
frameworks' text blocks the same way (:func:`join_text`)."""


def join_text(parts: Iterable[str]) -> str:
    """One message's text parts as the one string the gateway gets (and hashes)."""
    return TEXT_PARTS_SEPARATOR.join(parts)


def _content(value: Any, where: str) -> str | None:
    """String content, or a list of text parts (joined); None is allowed (assistant)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for part in value:
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            if kind != "text" or not isinstance(part.get("text"), str):
                raise InvalidRequestError(
                    f"{where} content part of type {kind!r} is not supported; "
                    "the gateway accepts text only"
                )
            texts.append(part["text"])
        return join_text(texts)
    raise InvalidRequestError(
        f"{where} content must be a string, got {type(value).__name__} "
        + truncate_body(repr(value), 80)
    )


def _tool_call(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping) or not isinstance(call.get("id"), str):
        raise InvalidRequestError(
            f"{where} tool_calls entries need 'id' and 'function' "
            '({"id", "type": "function", "function": {"name", "arguments"}})'
        )
    name, arguments = function.get("name"), function.get("arguments")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(f"{where} tool call {call['id']!r} has no function name")
    if not isinstance(arguments, str):
        raise InvalidRequestError(
            f"{where} tool call {call['id']!r}: function.arguments must be a JSON string, "
            f"got {type(arguments).__name__} (use json.dumps)"
        )
    try:
        json.loads(arguments)
    except json.JSONDecodeError:
        raise InvalidRequestError(
            f"{where} tool call {call['id']!r}: function.arguments is not valid JSON text"
        ) from None
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def _message(message: Any, index: int) -> dict[str, Any]:
    where = f"messages[{index}]"
    if not isinstance(message, Mapping):
        raise InvalidRequestError(
            f"{where} must be a dict like {{'role': 'user', 'content': '...'}}, "
            f"got {type(message).__name__}"
        )
    role = message.get("role")
    if not isinstance(role, str):
        raise InvalidRequestError(f"{where} needs a 'role' string (one of {', '.join(ROLES)})")
    if role not in ROLES:
        hint = " (use 'system' instead)" if role == "developer" else ""
        raise InvalidRequestError(
            f"{where} has role {role!r}; the gateway accepts {', '.join(ROLES)}{hint}"
        )
    content = _content(message.get("content"), where)
    out: dict[str, Any] = {"role": role, "content": content}
    if role == "assistant":
        calls = message.get("tool_calls")
        if calls:
            if not isinstance(calls, Sequence) or isinstance(calls, str):
                raise InvalidRequestError(f"{where} tool_calls must be a list")
            out["tool_calls"] = [_tool_call(call, where) for call in calls]
        elif content is None:
            out["content"] = ""
    elif content is None:
        raise InvalidRequestError(f"{where} ({role}) needs 'content' text")
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequestError(
                f"{where} (tool) needs 'tool_call_id': the id of the tool call it answers"
            )
        out["tool_call_id"] = call_id
    if isinstance(message.get("name"), str):
        out["name"] = message["name"]
    return out


def _messages(messages: Any) -> list[dict[str, Any]]:
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence):
        raise InvalidRequestError(
            "messages must be a list of dicts like [{'role': 'user', 'content': '...'}], "
            f"got {type(messages).__name__}"
        )
    if not messages:
        raise InvalidRequestError("messages is empty; pass at least one message")
    return [_message(message, i) for i, message in enumerate(messages)]


def _tool(tool: Any, index: int) -> dict[str, Any]:
    where = f"tools[{index}]"
    if not isinstance(tool, Mapping):
        raise InvalidRequestError(f"{where} must be an OpenAI function tool dict")
    kind = tool.get("type", "function")
    if kind != "function":
        raise InvalidRequestError(f"{where} has type {kind!r}; only 'function' tools are supported")
    function = tool.get("function")
    if not isinstance(function, Mapping):
        raise InvalidRequestError(
            f"{where} needs a 'function' object with 'name' and 'parameters' (JSON schema)"
        )
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(f"{where} function needs a non-empty 'name' string")
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, Mapping):
        raise InvalidRequestError(f"{where} ({name}) 'parameters' must be a JSON schema object")
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidRequestError(f"{where} ({name}) 'description' must be a string")
    return {"type": "function", "function": dict(function)}


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Sequence):
        raise InvalidRequestError(f"tools must be a list of function tools, got {tools!r:.80}")
    return [_tool(tool, i) for i, tool in enumerate(tools)]


def _tool_choice(choice: Any, tools: list[dict[str, Any]]) -> str | dict[str, Any] | None:
    names = [tool["function"]["name"] for tool in tools]
    if choice is None:
        return "auto" if tools else None
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES:
            raise InvalidRequestError(
                f"tool_choice {choice!r} is unknown; use 'auto', 'none', 'required' or "
                "{'type': 'function', 'function': {'name': ...}}"
            )
        if choice == "required" and not tools:
            raise InvalidRequestError("tool_choice 'required' needs tools")
        return choice if tools else None
    name = (choice.get("function") or {}).get("name") if isinstance(choice, Mapping) else None
    if not isinstance(name, str):
        raise InvalidRequestError(
            f"tool_choice {choice!r} is unknown; use 'auto', 'none', 'required' or "
            "{'type': 'function', 'function': {'name': ...}}"
        )
    if name not in names:
        raise InvalidRequestError(
            f"tool_choice names {name!r}, which is not among the tools "
            f"({', '.join(names) or 'none'})"
        )
    return {"type": "function", "function": {"name": name}}


def _response_format(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, Mapping) else None
    if kind not in RESPONSE_FORMATS:
        raise InvalidRequestError(
            f"response_format type {kind if kind is not None else value!r} is unknown; use "
            "{'type': 'json_object'} or {'type': 'json_schema', 'json_schema': {...}}"
        )
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("schema"), Mapping):
            raise InvalidRequestError(
                "response_format json_schema needs {'json_schema': {'name': ..., 'schema': {...}}}"
            )
    return dict(value)


def prepare_chat(
    model: TEE_LLM | str,
    messages: Any,
    max_tokens: Any = 100,
    stop_sequence: Any = None,
    temperature: Any = 0.0,
    tools: Any = (),
    tool_choice: Any = None,
    x402_settlement_mode: Any = x402SettlementMode.SETTLE_BATCH,
    stream: Any = False,
    response_format: Any = None,
) -> PreparedRequest:
    """Validate a chat call and build its request (raises :class:`InvalidRequestError`)."""
    body: dict[str, Any] = {
        "model": wire_model(model),
        "messages": _messages(messages),
        "max_tokens": _max_tokens(max_tokens),
        "temperature": _temperature(temperature),
    }
    stop = _stop(stop_sequence)
    if stop:
        body["stop"] = stop
    checked_tools = _tools(tools)
    choice = _tool_choice(tool_choice, checked_tools)
    if checked_tools:
        body["tools"] = checked_tools
        body["tool_choice"] = choice
    form = _response_format(response_format)
    if form is not None:
        body["response_format"] = form
    if not isinstance(stream, bool):
        raise InvalidRequestError(f"stream must be True or False, got {stream!r}")
    if stream:
        body["stream"] = True
    return PreparedRequest(CHAT_PATH, body, _settlement(x402_settlement_mode), stream=stream)


def prepare_completion(
    model: TEE_LLM | str,
    prompt: Any,
    max_tokens: Any = 100,
    stop_sequence: Any = None,
    temperature: Any = 0.0,
    x402_settlement_mode: Any = x402SettlementMode.SETTLE_BATCH,
) -> PreparedRequest:
    """Validate a completion call and build its request (raises :class:`InvalidRequestError`)."""
    if not isinstance(prompt, str):
        raise InvalidRequestError(f"prompt must be a string, got {type(prompt).__name__}")
    body: dict[str, Any] = {
        "model": wire_model(model),
        "prompt": prompt,
        "max_tokens": _max_tokens(max_tokens),
        "temperature": _temperature(temperature),
    }
    stop = _stop(stop_sequence)
    if stop:
        body["stop"] = stop
    return PreparedRequest(
        COMPLETION_PATH, body, _settlement(x402_settlement_mode), completion=True
    )


# ---- answers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A parsed non-streaming answer (``data`` is the whole JSON body, ``tee_*`` included)."""

    data: dict[str, Any]
    content: str
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str | None
    usage: Usage | None
    model: str | None
    id: str | None

    @property
    def output_hash(self) -> str:
        """The ``tee_output_hash`` of what was received."""
        return tee.output_hash(self.content, self.tool_calls)

    @property
    def chat_output(self) -> dict[str, Any]:
        """The assistant message, as ``TextGenerationOutput.chat_output``."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return message


def usage_of(raw: Any) -> Usage | None:
    """Read an OpenAI ``usage`` object (None when absent or malformed)."""
    if not isinstance(raw, Mapping):
        return None
    try:
        prompt = int(raw.get("prompt_tokens") or 0)
        completion = int(raw.get("completion_tokens") or 0)
        total = int(raw.get("total_tokens") or prompt + completion)
    except (TypeError, ValueError):
        return None
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ServerError(
            "the server's answer is not JSON: " + truncate_body(body.decode("utf-8", "replace"))
        ) from None
    if not isinstance(data, dict):
        raise ServerError("the server's answer is not a JSON object")
    return data


def _first_choice(data: dict[str, Any]) -> dict[str, Any]:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ServerError(
            "the server's answer has no choices: " + truncate_body(json.dumps(data), 300)
        )
    return choices[0]


def parse_chat(body: bytes) -> Answer:
    """Read a ``chat.completion`` answer (raises :class:`ServerError` when malformed)."""
    data = _json_object(body)
    choice = _first_choice(data)
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ServerError("the server's answer has no message in choices[0]")
    tool_calls = message.get("tool_calls") or None
    return Answer(
        data=data,
        content=str(message.get("content") or ""),
        tool_calls=list(tool_calls) if tool_calls else None,
        finish_reason=choice.get("finish_reason"),
        usage=usage_of(data.get("usage")),
        model=data.get("model"),
        id=data.get("id"),
    )


def parse_completion(body: bytes) -> Answer:
    """Read a ``text_completion`` answer (``choices[0].text``, or the legacy ``completion``)."""
    data = _json_object(body)
    if "choices" not in data and isinstance(data.get("completion"), str):
        text, finish = data["completion"], data.get("finish_reason")
    else:
        choice = _first_choice(data)
        text, finish = str(choice.get("text") or ""), choice.get("finish_reason")
    return Answer(
        data=data,
        content=text,
        tool_calls=None,
        finish_reason=finish,
        usage=usage_of(data.get("usage")),
        model=data.get("model"),
        id=data.get("id"),
    )


class StreamAccumulator:
    """Joins a stream's deltas into the final text and tool calls (for the output hash)."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, event: Mapping[str, Any]) -> None:
        """Take in one decoded ``chat.completion.chunk`` event."""
        for choice in event.get("choices") or []:
            if not isinstance(choice, Mapping) or choice.get("index", 0) not in (0, None):
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                self._text.append(delta["content"])
            for piece in delta.get("tool_calls") or []:
                self._add_call(piece)

    def _add_call(self, piece: Mapping[str, Any]) -> None:
        index = int(piece.get("index", len(self._calls)) or 0)
        call = self._calls.setdefault(
            index, {"id": None, "type": "function", "function": {"name": None, "arguments": ""}}
        )
        if piece.get("id"):
            call["id"] = piece["id"]
        if piece.get("type"):
            call["type"] = piece["type"]
        function = piece.get("function") or {}
        if function.get("name"):
            call["function"]["name"] = function["name"]
        if isinstance(function.get("arguments"), str):
            call["function"]["arguments"] += function["arguments"]

    @property
    def content(self) -> str:
        """The text received so far."""
        return "".join(self._text)

    @property
    def tool_calls(self) -> list[dict[str, Any]] | None:
        """The tool calls received so far, in index order (None when there are none)."""
        return [self._calls[i] for i in sorted(self._calls)] or None

    @property
    def output_hash(self) -> str:
        """The ``tee_output_hash`` of what was received."""
        return tee.output_hash(self.content, self.tool_calls)


# ---- errors ------------------------------------------------------------------------------


def server_message(body: bytes) -> str:
    """The error text of a server's answer (``error``, ``detail`` or the raw body), truncated."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return truncate_body(text)
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message", value)
            if value:
                return truncate_body(str(value))
    return truncate_body(text)


def error_for_status(status: int, body: bytes, url: str) -> OpenGradientError:
    """The error for a non-success answer other than 402 (which the x402 exchange handles)."""
    message = server_message(body)
    said = f": {message}" if message else ""
    if status in (401, 403):
        return AuthenticationError(
            f"{url} refused the request ({status}){said}; check the server URL and credentials",
            status_code=status,
            body=message,
        )
    if status in (400, 404, 405, 413, 415, 422):
        return InvalidRequestError(
            f"{url} rejected the request ({status}){said}; fix the input (retrying will not help)",
            status_code=status,
            body=message,
        )
    if status == 429:
        advice = "the server is rate limiting; wait and retry later"
    elif status >= 500:
        advice = "the server failed; retry later"
    else:
        advice = "unexpected answer"
    return ServerError(
        f"{url} answered {status}{said} ({advice})", status_code=status, body=message
    )
