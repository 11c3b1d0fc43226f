"""Fill a JSON schema from a user's words (pure): tool arguments and structured output.

Fields are matched to the text by name first: ``<field> is X`` / ``<field>: X`` gives X; a
number field takes the number nearest to its name in the text (else the next one); enum members
named in the text are picked. Other strings take a quoted phrase, else a capitalised name, a
place-like field (``city``, ``location``…) preferring one after ``in``/``at``/``from``/``to``
and a person-like field (``name``, ``author``…) one that is not, else (for query-like fields)
the whole text, else (when required) the text's last line. Required fields are always filled;
optional ones only when the text gives a value."""

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
    "And Also Make Return List Check Set Send Book My Her His Their Our It Its In At From To "
    "On For With By Of Near Extract Parse Summarize Classify Translate Identify Describe Write "
    "Answer Create Generate Convert Format Note Here There This That These Those JSON".split(" ")
)
_PLACES = frozenset(
    "city town country location place destination origin address region state capital "  # noqa: SIM905
    "where venue village province continent home residence hometown".split(" ")
)
_PEOPLE = frozenset(
    "name person author user customer owner who employee player character sender recipient "  # noqa: SIM905
    "first last full given surname nickname contact guest patient student".split(" ")
)
_PLACE_WORDS = frozenset("in at from to near into of".split(" "))  # noqa: SIM905
_ARTICLES = r"(?:(?:a|an|the|my|her|his|their|our|its)\s+)?"


def _lower_words(text: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", text.lower())) - {""}


def _name_words(name: str) -> list[str]:
    """A field name as lower-case words: ``homeCity`` and ``home_city`` give home, city."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


class _Name:
    """A capitalised name in the text: where it is, and the word before it."""

    def __init__(self, text: str, start: int, before: str, initial: bool) -> None:
        self.text, self.start, self.before, self.initial = text, start, before, initial


class _Evidence:
    """What the text offers, consumed as fields are filled; ``root`` is the whole schema."""

    def __init__(self, text: str, root: Json) -> None:
        self.text, self.root = text, root
        self.words = _lower_words(text)
        self.numbers = [(m.start(), m.group(0)) for m in _NUMBER.finditer(text)]
        self.quoted = [next(g for g in m.groups() if g) for m in _QUOTED.finditer(text)]
        self.names: list[_Name] = []
        for match in _NAME.finditer(text):
            words = [w for w in match.group(0).split() if w not in _NOT_NAMES]
            label = text[match.end() : match.end() + 1] == ":"  # a label, not a name
            if not words or label or len(" ".join(words)) < 2:
                continue
            start = match.start() + match.group(0).index(words[0])
            window = text[max(0, match.start() - 64) : start]  # bounded: linear in the text
            before = re.findall(r"[A-Za-z']+", window)
            # a lone capitalised word opening a sentence may be just that: used last
            head = text[max(0, match.start() - 64) : match.start()]
            opens = re.search(r"[.!?:\n]\s*$", head) is not None
            at_start = opens or (match.start() <= 64 and not head.strip())
            initial = len(words) == 1 and at_start and start == match.start()
            previous = before[-1].lower() if before else ""
            self.names.append(_Name(" ".join(words), start, previous, initial))
        self.used: set[str] = set()

    def gist(self) -> str:
        """What stands in for a string the text does not name: its last line, short."""
        lines = [line.strip() for line in self.text.splitlines() if line.strip()]
        words = (lines[-1] if lines else "").split()
        return " ".join(words[:12]).rstrip(".,;:!?")

    def stated(self, name: str) -> str | None:
        """X of ``<field> is X`` / ``<field>: X`` / ``<field> = X`` in the text, once."""
        words = _name_words(name)
        if not words or (len(words) == 1 and len(words[0]) < 3):
            return None
        label = r"[\s_-]*".join(map(re.escape, words))
        value = r"(\"[^\"]+\"|'[^']+'|[A-Z][\w-]*(?:\s+[A-Z][\w-]*)*|[\w.-]+)"
        verb = r"\s*(?i:is|was|are|:|=)\s*"
        found = re.search(rf"(?i:\b{label}){verb}(?i:{_ARTICLES}){value}", self.text)
        if not found or found.group(1).lower() in self.used:
            return None
        self.used.add(found.group(1).lower())
        return found.group(1).strip("\"'").rstrip(".,;")

    def number(self, name: str) -> str | None:
        """The number nearest to the field's name in the text (one after the name before one
        as far before it), else the first one left."""
        if not self.numbers:
            return None
        words = [w for w in _name_words(name) if len(w) >= 3]
        found = (
            m.span() for w in words for m in re.finditer(rf"\b{re.escape(w)}", self.text, re.I)
        )
        spots = [span for _, span in zip(range(16), found, strict=False)]  # the first few

        def distance(i: int) -> int:
            at = self.numbers[i][0]
            return min(at - end if at >= end else 2 * (start - at) for start, end in spots)

        nearest = min(range(len(self.numbers)), key=distance) if spots else 0
        return self.numbers.pop(nearest)[1]

    def name(self, field: str) -> str | None:
        """A capitalised name for a string field, by the kind of field it is."""
        words = set(_name_words(field))
        left = [n for n in self.names if n.text.lower() not in self.used]
        if words & _PLACES:
            order = [n for n in left if n.before in _PLACE_WORDS] + left
        elif words & _PEOPLE:
            order = [n for n in left if n.before not in _PLACE_WORDS] + left
        else:
            order = [n for n in left if not n.initial] + left
        if not order:
            return None
        self.used.add(order[0].text.lower())
        self.names.remove(order[0])
        return order[0].text


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


def _number(text: str, kind: str) -> int | float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if kind == "integer" else number


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
        stated = text.stated(name)
        value = _number(stated, kind) if stated else None
        if value is not None:
            text.numbers = [n for n in text.numbers if n[1] != stated]
            return True, value
        nearest = text.number(name)
        if nearest is None:
            return force, schema.get("default", 0)
        return True, _number(nearest, kind)
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
    stated = None if name.lower() in _WHOLE_TEXT else text.stated(name)
    if stated:
        return True, stated
    if text.quoted:
        return True, text.quoted.pop(0)
    if name.lower() in _WHOLE_TEXT and text.text.strip():
        return True, text.text.strip()
    picked = text.name(name)
    if picked:
        return True, picked
    return force, schema.get("default") or text.gist() or name


def fill_object(schema: Json, text: str | _Evidence, *, fill_all: bool = False) -> Json:
    """An object fitting ``schema`` (``properties``/``required``) with values from the text;
    ``fill_all`` fills every property, not only the required ones."""
    evidence = _Evidence(text, schema) if isinstance(text, str) else text
    schema = _resolve(schema, evidence.root)
    needed, properties = set(schema.get("required") or []), schema.get("properties") or {}
    values = {n: _value(s, n, evidence, fill_all or n in needed) for n, s in properties.items()}
    return {name: value for name, (found, value) in values.items() if found}
