"""Fill a JSON schema from a user's words (pure): tool arguments and structured output.

Numbers in the text go to number fields in order; enum members named in the text are picked;
strings take a quoted phrase, else a capitalised name, else (for query-like fields) the whole
text. Required fields are always filled; optional ones only when the text gives a value."""

from __future__ import annotations

import re
from typing import Any

Json = dict[str, Any]
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?!\w)")
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|(?<!\w)'([^']+)'(?!\w)")
_NAME = re.compile(r"\b[A-Z][\w-]*(?:\s+[A-Z][\w-]*)*")
_WHOLE_TEXT = frozenset(
    "query q text question input prompt message content search topic keywords request "  # noqa: SIM905
    "instruction description summary answer".split(" ")
)
_NOT_NAMES = frozenset(
    "What What's How Please Can Could Would Tell Give Find Get Show Is Are Do Does When Where "  # noqa: SIM905
    "Who Why Which I The A An Use Call Look Search Compute Calculate Add Multiply Hi Hello Then "
    "And Also Make Return List Check Set Send Book".split(" ")
)


def _lower_words(text: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", text.lower())) - {""}


class _Evidence:
    """What the text offers, consumed as fields are filled; ``root`` is the whole schema."""

    def __init__(self, text: str, root: Json) -> None:
        self.text, self.root = text, root
        self.words = _lower_words(text)
        self.numbers = _NUMBER.findall(text)
        self.quoted = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(text)]
        names, initial = [], []
        for match in _NAME.finditer(text):
            words = [w for w in match.group(0).split() if w not in _NOT_NAMES]
            # a lone capitalised word opening a sentence may be just that: a fallback
            at_start = re.search(r"(?:^|[.!?]\s+)$", text[: match.start()])
            if len(words) == 1 and at_start:
                initial.append(words[0])
            elif words:
                names.append(" ".join(words))
        self.names = names or initial


def _resolve(schema: Any, root: Json) -> Json:
    """Follow ``$ref`` and take the first non-null branch of ``anyOf``/``oneOf``/``allOf``."""
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
            return {**schema, **_resolve(options[0], root)}
    return schema


def _value(schema: Any, name: str, text: _Evidence, force: bool) -> tuple[bool, Any]:
    """(found, value) of one field; with ``force`` a default stands in when the text has none."""
    schema = _resolve(schema, text.root)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    kind = next((k for k in kind if k != "null"), "string") if isinstance(kind, list) else kind
    if "const" in schema:
        return True, schema["const"]
    if schema.get("enum"):
        named = [o for o in schema["enum"] if _lower_words(str(o)) <= text.words]
        return bool(named) or force, (named or schema["enum"])[0]
    if kind in ("integer", "number"):
        if not text.numbers:
            return force, schema.get("default", 0)
        number = float(text.numbers.pop(0))
        return True, int(number) if kind == "integer" else number
    if kind == "boolean":
        negated = re.search(r"\b(no|not|false|never)\b", text.text, re.I) is not None
        return force or name.lower() in text.words, not negated
    if kind == "object":
        return True, fill_object(schema, text, fill_all=force)
    if kind == "array":
        items, values = _resolve(schema.get("items") or {}, text.root), list[Any]()
        while len(values) < 8:
            found, value = _value(items, name, text, force and not values)
            if not found:
                break
            values.append(value)
            if items.get("type") not in ("integer", "number", "string") or name in _WHOLE_TEXT:
                break
        return bool(values) or force, values
    if text.quoted:
        return True, text.quoted.pop(0)
    if name.lower() in _WHOLE_TEXT and text.text.strip():
        return True, text.text.strip()
    if text.names:
        return True, text.names.pop(0)
    return force, schema.get("default", name)


def fill_object(schema: Json, text: str | _Evidence, *, fill_all: bool = False) -> Json:
    """An object fitting ``schema`` (``properties``/``required``) with values from the text;
    ``fill_all`` fills every property, not only the required ones."""
    evidence = _Evidence(text, schema) if isinstance(text, str) else text
    schema = _resolve(schema, evidence.root)
    needed, properties = set(schema.get("required") or []), schema.get("properties") or {}
    values = {n: _value(s, n, evidence, fill_all or n in needed) for n, s in properties.items()}
    return {name: value for name, (found, value) in values.items() if found}
