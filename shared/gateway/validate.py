"""Checks of an inference request (pure): auth, content type, the JSON body and the settlement
header. Each problem is named in the error the gateway sends (401, 415 or 400)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import wire
from ..errors import MalformedAnswerError
from ..protocol import MAX_REQUEST_DEPTH
from ..types import KNOWN_MODELS, SETTLEMENT_WIRE_VALUES, x402SettlementMode

MODELS = KNOWN_MODELS
MAX_TOKENS_LIMIT = 32_768
_ROLES = ("system", "user", "assistant", "tool")
_FORMATS = ("text", "json_object", "json_schema")
_RANGES = {"max_tokens": ((int,), 1, MAX_TOKENS_LIMIT), "temperature": ((int, float), 0, 2)}


class BadRequest(Exception):
    """A request the gateway refuses; ``status`` is 400 unless said otherwise."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _require(ok: Any, message: str) -> None:
    if not ok:
        raise BadRequest(message)


def _has(data: Any, *keys: str) -> bool:
    """``data`` is an object whose ``keys`` all hold strings."""
    return isinstance(data, dict) and all(isinstance(data.get(key), str) for key in keys)


def _model_name(value: Any) -> str:
    """The bare model name (a ``provider/`` prefix is tolerated). Whether it is served is
    checked later, after the payment, as the real gateway does (:func:`served`)."""
    _require(isinstance(value, str) and value, "'model' is required and must be a string")
    return str(value.split("/", 1)[1] if value.count("/") == 1 else value)


def served(model: str) -> bool:
    """Whether the gateway serves ``model`` (compared lower-cased and trimmed)."""
    return model.strip().lower() in MODELS


def _common(body: dict[str, Any]) -> None:
    for key, (kinds, low, high) in _RANGES.items():
        value, kind = body.get(key), "an integer" if kinds == (int,) else "a number"
        number = isinstance(value, kinds) and not isinstance(value, bool)
        valid = value is None or (number and low <= value <= high)
        _require(valid, f"'{key}' must be {kind} from {low} to {high}, got {value!r}")
    stop = body.get("stop")
    stops: Any = [stop] if isinstance(stop, str) else stop
    listed = isinstance(stops, list) and 0 < len(stops) <= 4
    _require(
        stop is None or (listed and all(isinstance(s, str) and s for s in stops)),
        "'stop' must be a non-empty string or a list of 1 to 4 non-empty strings",
    )


def _message(where: str, message: Any) -> None:
    _require(isinstance(message, dict), f"{where} must be an object with 'role' and 'content'")
    role, content, calls = message.get("role"), message.get("content"), message.get("tool_calls")
    _require(role in _ROLES, f"{where}.role must be one of {', '.join(_ROLES)}, got {role!r}")
    if role == "assistant" and calls is not None:
        _require(
            isinstance(calls, list)
            and all(_has(c, "id") and _has(c.get("function"), "name", "arguments") for c in calls),
            f"{where}.tool_calls must be [{{id, type, function: {{name, arguments (JSON text)}}}}]",
        )
        if content is None:
            return
    parts = isinstance(content, list) and all(isinstance(p, dict) for p in content)
    _require(isinstance(content, str) or parts, f"{where}.content must be a string or parts")
    if role == "tool":
        _require(isinstance(message.get("tool_call_id"), str), f"{where} needs 'tool_call_id'")


def _tools(body: dict[str, Any]) -> list[str]:
    """The offered tools' names."""
    tools = body.get("tools")
    _require(tools is None or isinstance(tools, list), "'tools' must be a list of function tools")
    for i, tool in enumerate(tools or []):
        fn: Any = tool.get("function") if isinstance(tool, dict) else None
        ok = _has(fn, "name") and fn["name"] and isinstance(fn.get("parameters", {}), dict)
        _require(
            ok and tool.get("type", "function") == "function",
            f"tools[{i}] must be {{type: 'function', function: {{name, parameters}}}}",
        )
    return [tool["function"]["name"] for tool in tools or []]


def _choice_and_format(choice: Any, names: list[str], form: Any) -> None:
    if choice not in (None, "auto", "none", "required"):
        name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
        _require(isinstance(name, str), "'tool_choice' must be auto, none, required or a tool")
        _require(name in names, f"'tool_choice' names {name!r}, which is not an offered tool")
    if form is not None:
        kind = form.get("type") if isinstance(form, dict) else None
        _require(kind in _FORMATS, f"'response_format.type' must be one of {', '.join(_FORMATS)}")
        spec = form.get("json_schema") if kind == "json_schema" else {"schema": {}}
        _require(
            isinstance(spec, dict) and isinstance(spec.get("schema"), dict),
            "'response_format.json_schema.schema' must be a JSON schema object",
        )


def check(headers: Mapping[str, str], raw: bytes, *, completion: bool) -> tuple[Any, str, str]:
    """Check a chat (or ``completion``) request; ``headers`` have lower-case names. Returns
    (body, bare model name, seed name of the settlement type) or raises :class:`BadRequest`."""
    auth = headers.get("authorization", "")
    if not auth.startswith("Bearer ") or not auth[7:].strip():
        raise BadRequest("missing or malformed 'Authorization: Bearer <token>' header", 401)
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise BadRequest(f"Content-Type must be application/json, got {content_type!r}", 415)
    try:  # nesting bounded before parsing: JSON 100,000 deep would overflow the C stack
        body = wire.loads(raw, "the request body", max_depth=MAX_REQUEST_DEPTH + 1)
    except MalformedAnswerError as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from exc
    _require(isinstance(body, dict), "the request body must be a JSON object")
    model = _model_name(body.get("model"))
    if completion:
        prompt = body.get("prompt")
        _require(isinstance(prompt, str) and prompt, "'prompt' must be a non-empty string")
        _require(not body.get("stream"), "completions do not stream; drop 'stream' or use chat")
    else:
        messages = body.get("messages")
        _require(isinstance(messages, list) and messages, "'messages' must be a non-empty list")
        for i, message in enumerate(messages):
            _message(f"messages[{i}]", message)
        _choice_and_format(body.get("tool_choice"), _tools(body), body.get("response_format"))
        _require(isinstance(body.get("stream", False), bool), "'stream' must be a boolean")
    _common(body)
    settlement = headers.get("x-settlement-type") or "settle-batch"
    try:
        return body, model, x402SettlementMode.parse(settlement).value
    except ValueError as exc:
        v1, v2 = zip(*SETTLEMENT_WIRE_VALUES.values(), strict=True)
        names = f"{', '.join(v1)} (v1) or {', '.join(v2)} (v2)"
        raise BadRequest(f"unknown X-SETTLEMENT-TYPE {settlement!r}; use {names}") from exc
