"""Fill a JSON schema from a user's words (pure): tool arguments and structured output.

Numbers in the text go to number fields in order; enum members mentioned in the text are
picked; strings take a quoted phrase, else a capitalised name, else (for query-like fields)
the whole text. Required fields are always filled; optional ones only when the text gives a
value (or ``fill_all``).
"""

from __future__ import annotations

import re
from typing import Any

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|(?<!\w)'([^']+)'(?!\w)")
_CAPITALISED = re.compile(r"\b[A-Z][\w-]*(?:\s+[A-Z][\w-]*)*")
_WHOLE_TEXT_FIELDS = {
    "query", "q", "text", "question", "input", "prompt", "message", "content", "search",
    "topic", "keywords", "request", "instruction", "description", "summary", "answer",
}  # fmt: skip
_SENTENCE_STARTERS = {
    "What", "Whats", "What's", "How", "Please", "Can", "Could", "Would", "Tell", "Give", "Find",
    "Get", "Show", "Is", "Are", "Do", "Does", "When", "Where", "Who", "Why", "Which", "I", "The",
    "A", "An", "Use", "Call", "Look", "Search", "Compute", "Calculate", "Add", "Multiply", "Hi",
    "Hello", "Then", "And", "Also", "Make", "Return", "List", "Check", "Set", "Send", "Book",
}  # fmt: skip


class _Evidence:
    """What the text offers, consumed as fields are filled."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.numbers = [m.group(0) for m in _NUMBER.finditer(text)]
        self.quoted = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(text)]
        names, initial = [], []
        for match in _CAPITALISED.finditer(text):
            words = [w for w in match.group(0).split() if w not in _SENTENCE_STARTERS]
            at_start = re.search(r"(?:^|[.!?]\s+)$", text[: match.start()])
            if len(words) == 1 and at_start:
                initial.append(words[0])  # maybe capitalised only as a sentence start
            elif words:
                names.append(" ".join(words))
        self.names = names or initial

    def number(self) -> float | None:
        return float(self.numbers.pop(0)) if self.numbers else None

    def string(self, field: str) -> str | None:
        if self.quoted:
            return self.quoted.pop(0)
        if field.lower() in _WHOLE_TEXT_FIELDS:
            return self.text.strip() or None
        if self.names:
            return self.names.pop(0)
        return None


def _words(text: str) -> set[str]:
    return {w for w in re.split(r"[^a-z0-9]+", text.lower()) if w}


def _enum(options: list[Any], evidence: _Evidence) -> Any:
    words = _words(evidence.text)
    for option in options:
        if isinstance(option, str) and option and _words(option) <= words:
            return option
    for option in options:
        if not isinstance(option, str) and str(option) in evidence.numbers:
            return option
    return None


def _kind(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind is None:
        for key in ("anyOf", "oneOf"):
            options = [o for o in schema.get(key) or [] if o.get("type") != "null"]
            if options:
                return _kind(options[0])
        kind = "object" if "properties" in schema else "string"
    return str(kind)


def _resolve(schema: Any, root: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return _resolve(target, root)
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key) or [] if _resolve(o, root).get("type") != "null"]
        if options and "type" not in schema:
            return {**_resolve(options[0], root), **{k: v for k, v in schema.items() if k != key}}
    return schema


def _value(
    schema: dict[str, Any], field: str, evidence: _Evidence, root: dict[str, Any], force: bool
) -> tuple[bool, Any]:
    """(found, value) for one field; with ``force`` a default is made up when nothing fits."""
    schema = _resolve(schema, root)
    if "const" in schema:
        return True, schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        picked = _enum(schema["enum"], evidence)
        return (True, picked) if picked is not None else (force, schema["enum"][0])
    kind = _kind(schema)
    if kind in ("integer", "number"):
        number = evidence.number()
        if number is None:
            return force, schema.get("default", 0)
        return True, int(number) if kind == "integer" else number
    if kind == "boolean":
        mentioned = bool(_words(field) & _words(evidence.text)) if field else False
        return mentioned or force, not re.search(r"\b(no|not|false|never)\b", evidence.text, re.I)
    if kind == "array":
        item = _resolve(schema.get("items") or {}, root)
        values = []
        while True:
            found, value = _value(item, field, evidence, root, False)
            if not found or len(values) >= 8 or _kind(item) == "object":
                break
            values.append(value)
            if _kind(item) == "string" and field.lower() in _WHOLE_TEXT_FIELDS:
                break
        if not values and (force or _kind(item) == "object"):
            found, value = _value(item, field, evidence, root, force)
            values = [value] if found else []
        return bool(values) or force, values
    if kind == "object":
        return True, fill_object(schema, evidence, root, fill_all=force)
    text = evidence.string(field)
    if text is None:
        return force, schema.get("default", field or "value")
    return True, text


def fill_object(
    schema: dict[str, Any],
    evidence: _Evidence | str,
    root: dict[str, Any] | None = None,
    *,
    fill_all: bool = False,
) -> dict[str, Any]:
    """An object fitting ``schema`` (``properties``/``required``) with values from the text."""
    if isinstance(evidence, str):
        evidence = _Evidence(evidence)
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    required = set(schema.get("required") or [])
    out: dict[str, Any] = {}
    for name, sub in (schema.get("properties") or {}).items():
        found, value = _value(sub, name, evidence, root, fill_all or name in required)
        if found:
            out[name] = value
    return out
