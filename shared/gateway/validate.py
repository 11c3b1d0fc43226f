"""Input checks of chat and completion bodies (pure): each problem is named in a 400 error."""

from __future__ import annotations

from typing import Any

from ..types import TEE_LLM

MODELS = frozenset(m.value.split("/", 1)[1] for m in TEE_LLM)
MAX_TOKENS_LIMIT = 32_768
_ROLES = ("system", "user", "assistant", "tool")
_RESPONSE_FORMATS = ("text", "json_object", "json_schema")


class BadRequest(Exception):
    """A request body the gateway refuses with 400."""


def model_name(value: Any) -> str:
    """The bare model name (a ``provider/`` prefix is tolerated)."""
    if not isinstance(value, str) or not value:
        raise BadRequest("'model' is required and must be a string")
    bare = value.split("/", 1)[1] if value.count("/") == 1 else value
    if bare not in MODELS:
        raise BadRequest(f"unknown model {value!r}; known models: {', '.join(sorted(MODELS))}")
    return bare


def _common(body: dict[str, Any]) -> None:
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        not isinstance(max_tokens, int)
        or isinstance(max_tokens, bool)
        or not 1 <= max_tokens <= MAX_TOKENS_LIMIT
    ):
        raise BadRequest(
            f"'max_tokens' must be an integer from 1 to {MAX_TOKENS_LIMIT}, got {max_tokens!r}"
        )
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float)
        or isinstance(temperature, bool)
        or not 0 <= temperature <= 2
    ):
        raise BadRequest(f"'temperature' must be a number from 0 to 2, got {temperature!r}")
    stop = body.get("stop")
    if stop is not None and not (
        (isinstance(stop, str) and stop)
        or (
            isinstance(stop, list)
            and 0 < len(stop) <= 4
            and all(isinstance(s, str) and s for s in stop)
        )
    ):
        raise BadRequest("'stop' must be a non-empty string or a list of 1 to 4 non-empty strings")


def _content_ok(content: Any) -> bool:
    if isinstance(content, str):
        return True
    return isinstance(content, list) and all(
        isinstance(part, dict) and (part.get("type") != "text" or isinstance(part.get("text"), str))
        for part in content
    )


def _message(i: int, message: Any) -> None:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise BadRequest(f"{where} must be an object with 'role' and 'content'")
    role = message.get("role")
    if role not in _ROLES:
        raise BadRequest(f"{where}.role must be one of {', '.join(_ROLES)}, got {role!r}")
    content = message.get("content")
    calls = message.get("tool_calls")
    if role == "assistant" and calls is not None:
        if not isinstance(calls, list) or not all(
            isinstance(c, dict)
            and isinstance(c.get("id"), str)
            and isinstance(c.get("function"), dict)
            and isinstance(c["function"].get("name"), str)
            and isinstance(c["function"].get("arguments"), str)
            for c in calls
        ):
            raise BadRequest(
                f"{where}.tool_calls must be a list of {{id, type, function: {{name, "
                "arguments (a JSON string)}}}}"
            )
        if content is None:
            return
    if not _content_ok(content):
        raise BadRequest(f"{where}.content must be a string or a list of content parts")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise BadRequest(f"{where} (role tool) needs a 'tool_call_id' string")


def _tools(body: dict[str, Any]) -> list[str]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise BadRequest("'tools' must be a list of function tools")
    names = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(function, dict)
            or tool.get("type", "function") != "function"
            or not isinstance(function.get("name"), str)
            or not function["name"]
        ):
            raise BadRequest(f"tools[{i}] must be {{type: 'function', function: {{name, ...}}}}")
        if not isinstance(function.get("parameters", {}), dict):
            raise BadRequest(f"tools[{i}].function.parameters must be a JSON schema object")
        names.append(function["name"])
    return names


def _tool_choice(choice: Any, names: list[str]) -> None:
    if choice is None or choice in ("auto", "none", "required"):
        return
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if not isinstance(name, str):
        raise BadRequest(
            "'tool_choice' must be 'auto', 'none', 'required' or "
            "{type: 'function', function: {name}}"
        )
    if name not in names:
        raise BadRequest(f"'tool_choice' names {name!r}, which is not among the offered tools")


def _response_format(value: Any) -> None:
    if value is None:
        return
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in _RESPONSE_FORMATS:
        raise BadRequest(f"'response_format.type' must be one of {', '.join(_RESPONSE_FORMATS)}")
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise BadRequest("'response_format.json_schema.schema' must be a JSON schema object")


def check_chat(body: Any) -> str:
    """Check a chat body; returns the bare model name or raises :class:`BadRequest`."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = model_name(body.get("model"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list")
    for i, message in enumerate(messages):
        _message(i, message)
    _common(body)
    _tool_choice(body.get("tool_choice"), _tools(body))
    _response_format(body.get("response_format"))
    if not isinstance(body.get("stream", False), bool):
        raise BadRequest("'stream' must be a boolean")
    return model


def check_completion(body: Any) -> str:
    """Check a completion body; returns the bare model name or raises :class:`BadRequest`."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = model_name(body.get("model"))
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise BadRequest("'prompt' must be a non-empty string")
    if body.get("stream"):
        raise BadRequest("completions do not stream; drop 'stream' or use chat")
    _common(body)
    return model
