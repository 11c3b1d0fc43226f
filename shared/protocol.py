"""The gateway's HTTP protocol, sans I/O: validate the seed API's arguments, build request bodies
and headers, and read answers into the public types (protocol.md sections 1 and 2).

Every argument is checked here, so that bad input is refused with a clear
:class:`InvalidRequestError` before anything is signed or sent.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import tee, wire
from .errors import (
    AuthenticationError,
    InvalidRequestError,
    OpenGradientError,
    ServerError,
    excerpt,
    truncate_body,
)
from .openai_schema import (
    extra_chat_fields,
    join_text,
)
from .types import (
    TEE_LLM,
    StreamChoice,
    StreamChunk,
    StreamDelta,
    Usage,
    x402SettlementMode,
)

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
MAX_REQUEST_DEPTH = 256
"""Deepest nesting of dicts and lists a request may have. Deeper JSON (a tool schema or
response format thousands of levels deep) would overflow the C stack when serialized, since
eth-account raises the recursion limit to 100,000: it is refused as bad input instead."""


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


def server_of(url: str) -> str:
    """The server a request URL was built from (its endpoint path removed), for error text
    that names the URL the user configured."""
    for path in (CHAT_PATH, COMPLETION_PATH, "/signing-key"):
        if url.endswith(path):
            return url[: -len(path)]
    return url


def failure_reason(text: str) -> str:
    """The OS-level reason in a connection error's text (``[Errno 111] Connection refused``)
    without the connection pool's internals; the text itself when it holds none."""
    found = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    return found.group(0).strip() if found else text


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


def _model_hint(model: str) -> str:
    for member in TEE_LLM:
        if member.value.split("/", 1)[1] == model:
            return f"use TEE_LLM.{member.name} or {member.value!r}"
    return (
        "use a TEE_LLM member (e.g. TEE_LLM.GPT_4_1_2025_04_14) or a string like "
        "'openai/gpt-4.1-2025-04-14'"
    )


def _max_tokens(value: Any) -> int | None:
    """A positive int, or None: no ``max_tokens`` in the body (the server's default applies)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidRequestError(f"max_tokens must be a positive integer or None, got {value!r}")
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
    if wire.nesting_depth(arguments.encode("utf-8", "surrogatepass"), MAX_REQUEST_DEPTH) > (
        MAX_REQUEST_DEPTH
    ):
        raise InvalidRequestError(
            f"{where} tool call {call['id']!r}: function.arguments nests more than "
            f"{MAX_REQUEST_DEPTH} levels deep"
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
    extra_body: Any = None,
) -> PreparedRequest:
    """Validate a chat call and build its request (raises :class:`InvalidRequestError`).

    ``max_tokens=None`` leaves it out of the body (the server's default applies);
    ``extra_body`` adds fields of :data:`EXTRA_CHAT_FIELDS`.
    """
    body: dict[str, Any] = {"model": wire_model(model), "messages": _messages(messages)}
    limit = _max_tokens(max_tokens)
    if limit is not None:
        body["max_tokens"] = limit
    body["temperature"] = _temperature(temperature)
    body.update(extra_chat_fields(extra_body))
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
    _check_depth(body)
    return PreparedRequest(CHAT_PATH, body, _settlement(x402_settlement_mode), stream=stream)


def _check_depth(body: Mapping[str, Any]) -> None:
    """Refuse a request nested deeper than :data:`MAX_REQUEST_DEPTH`, naming the field (an
    iterative walk: no recursion, and a cycle ends at the limit too). Only the free-form
    fields are walked: the others were rebuilt above in shapes of known depth."""
    for key in ("tools", "response_format"):
        pending: list[tuple[Any, int]] = [(body[key], 1)] if key in body else []
        while pending:
            value, depth = pending.pop()
            if isinstance(value, Mapping):
                children: Iterable[Any] = value.values()
            elif isinstance(value, list | tuple):
                children = value
            else:
                continue
            if depth > MAX_REQUEST_DEPTH:
                raise InvalidRequestError(
                    f"{key} nests dicts and lists more than {MAX_REQUEST_DEPTH} levels deep "
                    "(or refers to itself); flatten it"
                )
            pending.extend((child, depth + 1) for child in children)


def prepare_completion(
    model: TEE_LLM | str,
    prompt: Any,
    max_tokens: Any = 100,
    stop_sequence: Any = None,
    temperature: Any = 0.0,
    x402_settlement_mode: Any = x402SettlementMode.SETTLE_BATCH,
) -> PreparedRequest:
    """Validate a completion call and build its request (raises :class:`InvalidRequestError`;
    ``max_tokens=None`` leaves it out: the server's default applies)."""
    if not isinstance(prompt, str):
        raise InvalidRequestError(f"prompt must be a string, got {type(prompt).__name__}")
    body: dict[str, Any] = {"model": wire_model(model), "prompt": prompt}
    limit = _max_tokens(max_tokens)
    if limit is not None:
        body["max_tokens"] = limit
    body["temperature"] = _temperature(temperature)
    stop = _stop(stop_sequence)
    if stop:
        body["stop"] = stop
    return PreparedRequest(
        COMPLETION_PATH, body, _settlement(x402_settlement_mode), completion=True
    )


# ---- answers -----------------------------------------------------------------------------
#
# Every answer is read once, strictly (shared/wire.py), into the values that are both hashed
# and delivered: what the caller gets is exactly what the TEE proof covers. Only choice 0 is
# read; other choices are dropped. When the answer has tool calls the proof covers only them,
# so text beside them is dropped. Tool calls keep only the hashed fields.


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


MAX_TOKENS_REPORTED = 2**53
"""The largest token count accepted in ``usage``."""


def usage_of(raw: Any, where: str = "usage") -> Usage | None:
    """Read an OpenAI ``usage`` object (None when absent); ``total_tokens`` is prompt +
    completion when the server leaves it out. Raises MalformedAnswerError on wrong types."""
    if raw is None:
        return None
    data = wire.as_object(raw, where)
    counts = [
        wire.opt_int(data, key, where, high=MAX_TOKENS_REPORTED)
        for key in ("prompt_tokens", "completion_tokens", "total_tokens")
    ]
    prompt, completion = counts[0] or 0, counts[1] or 0
    total = counts[2] if counts[2] is not None else prompt + completion
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


def tool_call_of(raw: Any, where: str) -> dict[str, Any]:
    """One complete tool call, reduced to the hashed fields ``id``, ``type``, ``function``."""
    call = wire.as_object(raw, where)
    function = wire.as_object(call.get("function"), where + ".function")
    kind = wire.opt_str(call, "type", where) or "function"
    if kind != "function":
        raise wire.MalformedAnswerError(
            f"the server's {where}.type is {excerpt(kind, 40)}; only 'function' tool calls exist"
        )
    return {
        "id": wire.as_str(call.get("id"), where + ".id"),
        "type": kind,
        "function": {
            "name": wire.as_str(function.get("name"), where + ".function.name"),
            "arguments": bounded_arguments(
                wire.as_str(function.get("arguments"), where + ".function.arguments"),
                where + ".function.arguments",
            ),
        },
    }


def bounded_arguments(text: str, where: str) -> str:
    """``text``, a tool call's ``function.arguments``, unless its JSON nests deeper than
    ``wire.MAX_DEPTH``: the adapters (and LangChain's chunk merge) parse it with ``json.loads``,
    which JSON 100,000 deep would crash (the C stack, as for answers). Raises
    :class:`MalformedAnswerError`."""
    if wire.nesting_depth(text.encode("utf-8", "surrogatepass")) > wire.MAX_DEPTH:
        raise wire.MalformedAnswerError(
            f"the server's {where} is JSON nested deeper than {wire.MAX_DEPTH} levels"
        )
    return text


MAX_TEXT_DEPTH = 256
"""Most ``[``/``{`` an answer's text may hold open at any point (see :func:`open_brackets`)."""
_BRACKETS = re.compile(r"[\[\]{}]")


def open_brackets(text: str, where: str, level: int = 0) -> int:
    """The ``[``/``{`` still open after ``text``, counting on from ``level`` (never below 0).

    Raises :class:`MalformedAnswerError` once more than :data:`MAX_TEXT_DEPTH` are open. That
    count bounds the JSON nesting any parser can find in any part of the text (string literals
    only hide brackets); output parsers (LangChain's ``JsonOutputParser``, LlamaIndex's
    structured outputs) read the text with ``json.loads``, which JSON 100,000 deep would crash
    (the C stack, as for answers). Linear, and incremental for a stream's pieces.
    """
    for match in _BRACKETS.finditer(text):
        if match.group() in "[{":
            level += 1
            if level > MAX_TEXT_DEPTH:
                raise wire.MalformedAnswerError(
                    f"the server's {where} opens more than {MAX_TEXT_DEPTH} nested brackets"
                )
        elif level:
            level -= 1
    return level


def _index(choice: Mapping[str, Any], where: str) -> int:
    index = choice.get("index")
    return 0 if index is None else wire.as_int(index, where + ".index", high=2**31)


def choice_zero(raw: Any, where: str = "choices") -> dict[str, Any] | None:
    """The choice with index 0 of a ``choices`` array (None when there is none); other choices
    are dropped. Two choices with index 0 are refused: one of them would go unverified."""
    if raw is None:
        return None
    found: dict[str, Any] | None = None
    for position, item in enumerate(wire.as_list(raw, where)):
        name = f"{where}[{position}]"
        choice = wire.as_object(item, name)
        if _index(choice, name) != 0:
            continue
        if found is not None:
            raise wire.MalformedAnswerError(f"the server's {where} has two choices with index 0")
        found = choice
    return found


def _answer_head(data: dict[str, Any]) -> tuple[Usage | None, str | None, str | None]:
    return (
        usage_of(data.get("usage")),
        wire.opt_str(data, "model", ""),
        wire.opt_str(data, "id", ""),
    )


def _first_choice(data: dict[str, Any]) -> dict[str, Any]:
    choice = choice_zero(data.get("choices"))
    if choice is None:
        raise wire.MalformedAnswerError("the server's answer has no choice with index 0")
    return choice


def parse_chat(body: bytes) -> Answer:
    """Read a ``chat.completion`` answer (raises :class:`ServerError` when malformed)."""
    data = wire.as_object(wire.loads(body, "the server's answer"), "answer")
    choice = _first_choice(data)
    message = wire.as_object(choice.get("message"), "choices[0].message")
    content = wire.opt_str(message, "content", "choices[0].message") or ""
    raw_calls = message.get("tool_calls")
    calls = [
        tool_call_of(call, f"choices[0].message.tool_calls[{i}]")
        for i, call in enumerate(wire.as_list(raw_calls, "choices[0].message.tool_calls"))
    ] if raw_calls is not None else []  # fmt: skip
    if not calls:
        open_brackets(content, "choices[0].message.content")
    usage, model, answer_id = _answer_head(data)
    return Answer(
        data=data,
        content="" if calls else content,  # the proof covers only the tool calls
        tool_calls=calls or None,
        finish_reason=wire.opt_str(choice, "finish_reason", "choices[0]"),
        usage=usage,
        model=model,
        id=answer_id,
    )


def parse_completion(body: bytes) -> Answer:
    """Read a ``text_completion`` answer (``choices[0].text``, or the legacy ``completion``)."""
    data = wire.as_object(wire.loads(body, "the server's answer"), "answer")
    if data.get("choices") is None and isinstance(data.get("completion"), str):
        text, finish = data["completion"], wire.opt_str(data, "finish_reason", "")
    else:
        choice = _first_choice(data)
        text = wire.opt_str(choice, "text", "choices[0]") or ""
        finish = wire.opt_str(choice, "finish_reason", "choices[0]")
    open_brackets(text, "completion text")
    usage, model, answer_id = _answer_head(data)
    return Answer(
        data=data,
        content=text,
        tool_calls=None,
        finish_reason=finish,
        usage=usage,
        model=model,
        id=answer_id,
    )


@dataclass(frozen=True)
class StreamEvent:
    """One stream event as read (choice 0 only): what is hashed is what is delivered.

    ``tool_calls`` are the event's tool-call pieces as the client passes them on: ``index``,
    ``function.arguments``, and ``id``, ``type``, ``function.name`` on a call's first piece only.
    """

    data: dict[str, Any]
    has_choice: bool
    content: str | None
    role: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str | None
    usage: Usage | None
    model: str

    @property
    def is_final(self) -> bool:
        """Whether this is the answer's last event (it ends it or carries the proof)."""
        return self.finish_reason is not None or "tee_signature" in self.data


class StreamAccumulator:
    """Reads a stream's events (strictly, once) and joins their deltas into the final text and
    tool calls (for the output hash).

    A tool call's ``id``, ``type`` and ``function.name`` are taken from the first piece that
    carries them; a later piece that repeats one is passed on without it, and one that names a
    different value is refused (a client that joined the pieces would otherwise act on a name
    the proof does not cover).
    """

    def __init__(self) -> None:
        self._text: list[str] = []
        self._open = 0  # brackets the text holds open so far (see open_brackets)
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, event: Mapping[str, Any]) -> StreamEvent:
        """Take in one decoded ``chat.completion.chunk`` event; returns it as read (raises
        MalformedAnswerError when it is malformed)."""
        data = wire.as_object(event, "stream event")
        usage = usage_of(data.get("usage"), "stream event usage")
        model = wire.opt_str(data, "model", "stream event") or ""
        choice = choice_zero(data.get("choices"), "stream event choices")
        if choice is None:
            return StreamEvent(dict(data), False, None, None, [], None, usage, model)
        where = "stream event choices[0]"
        delta = wire.opt_object(choice, "delta", where) or {}
        content = wire.opt_str(delta, "content", where + ".delta")
        role = wire.opt_str(delta, "role", where + ".delta")
        finish = wire.opt_str(choice, "finish_reason", where)
        raw_pieces = delta.get("tool_calls")
        pieces = (
            [
                self._add_call(piece, f"{where}.delta.tool_calls[{i}]")
                for i, piece in enumerate(wire.as_list(raw_pieces, where + ".delta.tool_calls"))
            ]
            if raw_pieces is not None
            else []
        )
        if content:
            self._open = open_brackets(content, "stream's text", self._open)
            self._text.append(content)
        return StreamEvent(dict(data), True, content, role, pieces, finish, usage, model)

    def _add_call(self, raw: Any, where: str) -> dict[str, Any]:
        piece = wire.as_object(raw, where)
        index = wire.as_int(piece.get("index"), where + ".index", high=1023)
        function = wire.opt_object(piece, "function", where) or {}
        kind = wire.opt_str(piece, "type", where)
        if kind and kind != "function":
            raise wire.MalformedAnswerError(
                f"the server's {where}.type is {excerpt(kind, 40)}; only 'function' exists"
            )
        given = {
            "id": wire.opt_str(piece, "id", where),
            "type": kind,
            "name": wire.opt_str(function, "name", where + ".function"),
        }
        arguments = wire.opt_str(function, "arguments", where + ".function")
        call = self._calls.setdefault(index, {"id": None, "type": None, "name": None, "args": ""})
        out: dict[str, Any] = {"index": index}
        for key, value in given.items():
            if not value:
                continue
            if call[key] is None:  # the first piece that names it: passed on
                call[key] = value
                if key == "name":
                    out["function"] = {"name": value}
                else:
                    out[key] = value
            elif call[key] != value:
                raise wire.MalformedAnswerError(
                    f"the server's {where} changes tool call {index}'s {key} from "
                    f"{excerpt(call[key], 60)} to {excerpt(value, 60)}"
                )
        if arguments is not None:
            call["args"] += arguments
            out.setdefault("function", {})["arguments"] = arguments
        return out

    @property
    def content(self) -> str:
        """The text received so far."""
        return "".join(self._text)

    @property
    def tool_calls(self) -> list[dict[str, Any]] | None:
        """The tool calls received so far, in index order (None when there are none)."""
        calls = [
            {
                "id": c["id"],
                "type": c["type"] or "function",
                "function": {"name": c["name"], "arguments": c["args"]},
            }
            for _, c in sorted(self._calls.items())
        ]
        return calls or None

    @property
    def output_hash(self) -> str:
        """The ``tee_output_hash`` of what was received."""
        return tee.output_hash(self.content, self.tool_calls)


def stream_chunk(event: StreamEvent) -> StreamChunk:
    """The :class:`StreamChunk` delivering exactly what ``event`` contributed to the hash."""
    choices = []
    if event.has_choice:
        delta = StreamDelta(
            content=event.content, role=event.role, tool_calls=event.tool_calls or None
        )
        choices.append(StreamChoice(delta=delta, index=0, finish_reason=event.finish_reason))
    return StreamChunk(
        choices=choices, model=event.model, usage=event.usage, is_final=event.is_final
    )


# ---- errors ------------------------------------------------------------------------------


def server_message(body: bytes) -> str:
    """The error text of a server's answer (``error``, ``detail`` or the raw body), escaped
    and cut to 500 characters."""
    try:
        data = wire.loads(body, "the server's error")
    except ServerError:
        return truncate_body(body.decode("utf-8", errors="replace")) if body else ""
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message", value)
            if value:
                return excerpt(value, 500)
    return truncate_body(body.decode("utf-8", errors="replace"))


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
