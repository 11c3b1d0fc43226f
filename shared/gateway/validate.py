"""Input checks of chat and completion bodies (pure): each problem is named in a 400 error."""

from __future__ import annotations

from typing import Any

from ..types import TEE_LLM

MODELS = frozenset(m.value.split("/", 1)[1] for m in TEE_LLM)
MAX_TOKENS_LIMIT = 32_768
_ROLES = ("system", "user", "assistant", "tool")


class BadRequest(Exception):
    """A request body the gateway refuses with 400."""


def _require(ok: Any, message: str) -> None:
    if not ok:
        raise BadRequest(message)


def _number(value: Any, low: float, high: float, *, integer: bool = True) -> bool:
    kind = isinstance(value, int) or (not integer and isinstance(value, float))
    return kind and not isinstance(value, bool) and low <= float(value) <= high


def model_name(value: Any) -> str:
    """The bare model name (a ``provider/`` prefix is tolerated)."""
    _require(isinstance(value, str) and value, "'model' is required and must be a string")
    bare = value.split("/", 1)[1] if value.count("/") == 1 else value
    _require(bare in MODELS, f"unknown model {value!r}; known: {', '.join(sorted(MODELS))}")
    return str(bare)


def _common(body: dict[str, Any]) -> None:
    tokens, temperature, stop = body.get("max_tokens"), body.get("temperature"), body.get("stop")
    _require(tokens is None or _number(tokens, 1, MAX_TOKENS_LIMIT),
             f"'max_tokens' must be an integer from 1 to {MAX_TOKENS_LIMIT}, got {tokens!r}")
    _require(temperature is None or _number(temperature, 0, 2, integer=False),
             f"'temperature' must be a number from 0 to 2, got {temperature!r}")
    stops = [stop] if isinstance(stop, str) else stop
    _require(stop is None or (isinstance(stops, list) and 0 < len(stops) <= 4
                              and all(isinstance(s, str) and s for s in stops)),
             "'stop' must be a non-empty string or a list of 1 to 4 non-empty strings")


def _message(i: int, message: Any) -> None:
    where = f"messages[{i}]"
    _require(isinstance(message, dict), f"{where} must be an object with 'role' and 'content'")
    role, content, calls = message.get("role"), message.get("content"), message.get("tool_calls")
    _require(role in _ROLES, f"{where}.role must be one of {', '.join(_ROLES)}, got {role!r}")
    if role == "assistant" and calls is not None:
        _require(isinstance(calls, list) and all(
            isinstance(c, dict) and isinstance(c.get("id"), str)
            and isinstance(c.get("function"), dict) and isinstance(c["function"].get("name"), str)
            and isinstance(c["function"].get("arguments"), str) for c in calls),
            f"{where}.tool_calls must be [{{id, type, function: {{name, arguments (JSON text)}}}}]")
        if content is None:
            return
    parts = isinstance(content, list) and all(isinstance(p, dict) for p in content)
    _require(isinstance(content, str) or parts, f"{where}.content must be a string or parts")
    if role == "tool":
        _require(isinstance(message.get("tool_call_id"), str), f"{where} needs 'tool_call_id'")


def _tools(body: dict[str, Any]) -> list[str]:
    tools = body.get("tools")
    _require(tools is None or isinstance(tools, list), "'tools' must be a list of function tools")
    names = []
    for i, tool in enumerate(tools or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        _require(isinstance(function, dict) and tool.get("type", "function") == "function"
                 and isinstance(function.get("name"), str) and function["name"]
                 and isinstance(function.get("parameters", {}), dict),
                 f"tools[{i}] must be {{type: 'function', function: {{name, parameters}}}}")
        names.append(str((function or {}).get("name")))
    return names


def _choice_and_format(choice: Any, names: list[str], form: Any) -> None:
    if choice is not None and choice not in ("auto", "none", "required"):
        name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
        _require(isinstance(name, str), "'tool_choice' must be 'auto', 'none', 'required' or "
                 "{type: 'function', function: {name}}")
        _require(name in names, f"'tool_choice' names {name!r}, which is not an offered tool")
    if form is not None:
        kind = form.get("type") if isinstance(form, dict) else None
        _require(kind in ("text", "json_object", "json_schema"),
                 "'response_format.type' must be text, json_object or json_schema")
        spec = form.get("json_schema") if kind == "json_schema" else {"schema": {}}
        _require(isinstance(spec, dict) and isinstance(spec.get("schema"), dict),
                 "'response_format.json_schema.schema' must be a JSON schema object")


def check_chat(body: Any) -> str:
    """Check a chat body; returns the bare model name or raises :class:`BadRequest`."""
    _require(isinstance(body, dict), "the request body must be a JSON object")
    model = model_name(body.get("model"))
    messages = body.get("messages")
    _require(isinstance(messages, list) and messages, "'messages' must be a non-empty list")
    for i, message in enumerate(messages):
        _message(i, message)
    _common(body)
    _choice_and_format(body.get("tool_choice"), _tools(body), body.get("response_format"))
    _require(isinstance(body.get("stream", False), bool), "'stream' must be a boolean")
    return model


def check_completion(body: Any) -> str:
    """Check a completion body; returns the bare model name or raises :class:`BadRequest`."""
    _require(isinstance(body, dict), "the request body must be a JSON object")
    model = model_name(body.get("model"))
    prompt = body.get("prompt")
    _require(isinstance(prompt, str) and prompt, "'prompt' must be a non-empty string")
    _require(not body.get("stream"), "completions do not stream; drop 'stream' or use chat")
    _common(body)
    return model
