"""The deterministic built-in model (pure): the same request always gets the same answer.

It calls the offered tool that best matches the user's words, answers from tool results, answers
RAG prompts with the best-matching context sentence, fills JSON schemas, and otherwise repeats
what it was told. ``max_tokens`` and ``stop`` apply to text (tokens are whitespace-separated).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .fill import fill_object

_STOPWORD_TEXT = (
    "a an the is are was were be been of to in on at for by with and or not what which who "
    "whom how why when where does do did can could would should will shall may might i you me "
    "my your it its this that these those there their them they we our us please tell give get "
    "use call tool function about from as into than then so if any some all me value"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_SEPARATOR = re.compile(r"^\s*-{3,}\s*$", re.M)
_QUERY = re.compile(r"(?:^|\n)[ \t]*(?:Query|Question|Q)[ \t]*:[ \t]*([^\n]+)", re.I)
_PRONOUN = re.compile(r"(?:It|They|This|These|He|She|Its|Their|His|Her)\b")
_ORIGINAL_QUERY = re.compile(r"original (?:query|question) is as follows:\s*(.+?)\s*\n", re.I)
_EXISTING_ANSWER = re.compile(
    r"existing answer:\s*(.+?)\s*\n\s*We have the opportunity|Original Answer:[ \t]*([^\n]+)", re.S
)
_CONTEXT_LABEL = re.compile(
    r"(?:^|\n)\s*(?:New )?Context(?: information)?\s*:\s*(.+?)(?=\n[ \t]*[\w ]+:|\Z)", re.S
)


@dataclass(frozen=True)
class Answer:
    """What the model produced: text or tool calls, why it stopped, and token counts."""

    content: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _stem(word: str) -> str:
    for suffix, replacement in (("ied", "y"), ("ies", "y"), ("ing", ""), ("ed", ""), ("s", "")):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)] + replacement
    return word


def _words(text: str) -> list[str]:
    """Content words, lower case and stemmed (``multiplied`` and ``multiply`` agree)."""
    split = re.split(r"[^a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", text).lower())
    return [_stem(word) for word in split if word and word not in _STOPWORDS]


def _overlap(query: str, text: str) -> int:
    return len(set(_words(query)) & set(_words(text)))


def _tokens(text: str) -> int:
    return len(text.split())


def _limit(text: str, max_tokens: int | None, stop: Any) -> tuple[str, str]:
    for marker in [stop] if isinstance(stop, str) else stop or []:
        if marker in text:
            text = text[: text.index(marker)]
    if max_tokens is not None and _tokens(text) > max_tokens:
        pieces = re.findall(r"\s*\S+", text)
        return "".join(pieces[:max_tokens]), "length"
    return text, "stop"


# ---- RAG prompts ---------------------------------------------------------------------------


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+|\n+", text)
    return [p.strip() for p in parts if len(_words(p)) > 0 and not _SEPARATOR.match(p)]


def _rag(prompt: str) -> tuple[str, str, str] | None:
    """(context, query, existing answer) of a RAG prompt, or None."""
    refine = _ORIGINAL_QUERY.search(prompt)
    query_match = refine or _QUERY.search(prompt)
    if not query_match:
        return None
    query = query_match.group(1).strip()
    blocks = _SEPARATOR.split(prompt)
    label = _CONTEXT_LABEL.search(prompt)
    if len(blocks) >= 3:
        context = "\n".join(blocks[1:-1])
    elif label:
        context = label.group(1)
    else:
        context = prompt[: query_match.start()]
    existing = _EXISTING_ANSWER.search(prompt)
    return context, query, next((g for g in existing.groups() if g), "").strip() if existing else ""


def answer_rag(context: str, query: str, existing: str = "") -> str:
    """The context sentence sharing most words with the query (the existing answer if none).

    A sentence opening with a pronoun also counts the words of the sentence before it.
    """
    best, best_score, previous = "", 0, ""
    for sentence in _sentences(context) + _sentences(existing):
        scope = sentence
        if _PRONOUN.match(sentence):
            scope = previous + " " + sentence
        score = _overlap(query, scope)
        if score > best_score:
            best, best_score = sentence, score
        previous = sentence
    if best_score == 0:
        return existing or "The context does not say."
    return best


def _reply(prompt: str) -> str:
    """A short reply that depends on the prompt: a RAG answer, or an echo of its start."""
    rag = _rag(prompt)
    if rag:
        return answer_rag(*rag)
    words = prompt.split()
    summary = " ".join(words[:40]) + (" ..." if len(words) > 40 else "")
    return f"You said: {summary}" if summary else "Hello."


# ---- tools ---------------------------------------------------------------------------------


def _tool_words(tool: dict[str, Any]) -> tuple[list[str], list[str]]:
    function = tool["function"]
    name = function["name"].replace("_", " ").replace("-", " ")
    rest = str(function.get("description") or "") + " " + json.dumps(function.get("parameters"))
    return _words(name), _words(rest)


def _score(tool: dict[str, Any], request: str) -> tuple[int, int]:
    """(name words in the request, description/parameter words in the request)."""
    asked = set(_words(request))
    name, rest = _tool_words(tool)
    return len(asked & set(name)), len(asked & set(rest))


def _call_id(seed: str, name: str, index: int) -> str:
    return "call_" + hashlib.sha256(f"{seed}|{name}|{index}".encode()).hexdigest()[:24]


def _last_user(messages: list[dict[str, Any]]) -> tuple[int, str]:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            return i, _text(messages[i].get("content"))
    return -1, ""


def _pick_tool(body: dict[str, Any], request: str, called: set[str]) -> dict[str, Any] | None:
    tools: list[dict[str, Any]] = body.get("tools") or []
    choice = body.get("tool_choice") or "auto"
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        wanted = next(t for t in tools if t["function"]["name"] == name)
        return None if name in called else wanted
    fresh = [t for t in tools if t["function"]["name"] not in called]
    ranked = sorted(fresh, key=lambda t: _score(t, request), reverse=True)
    if ranked and _score(ranked[0], request) > (0, 0):
        if called and _score(ranked[0], request)[0] == 0:
            return None  # the next step of an agent must be asked for by name
        return ranked[0]
    if choice == "required" and not called and tools:
        return tools[0]
    return None


def _tool_step(body: dict[str, Any], messages: list[dict[str, Any]]) -> Answer | str | None:
    """A tool call to make, or the text answering from tool results, or None (no tools)."""
    if not body.get("tools") or body.get("tool_choice") == "none":
        return None
    user_at, request = _last_user(messages)
    results = [m for m in messages[user_at + 1 :] if m.get("role") == "tool"]
    names = {
        call["id"]: call["function"]["name"]
        for m in messages[user_at + 1 :]
        for call in m.get("tool_calls") or []
    }
    called = set(names.values())
    tool = _pick_tool(body, request, called)
    if tool is None:
        if not results:
            return None
        lines = []
        for message in results:
            result = _text(message.get("content")).strip().rstrip(".")
            lines.append(f"{names.get(message.get('tool_call_id'), 'The tool')} says: {result}.")
        return " ".join(lines)
    function = tool["function"]
    arguments = fill_object(function.get("parameters") or {}, request)
    seed = json.dumps(messages, sort_keys=True, default=str)
    call = {
        "id": _call_id(seed, function["name"], len(called)),
        "type": "function",
        "function": {"name": function["name"], "arguments": json.dumps(arguments)},
    }
    prompt = _prompt_tokens(messages)
    return Answer("", "tool_calls", prompt, _tokens(call["function"]["arguments"]), [call])


# ---- entry points --------------------------------------------------------------------------


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return max(1, sum(_tokens(_text(m.get("content"))) for m in messages))


def _schema_reply(body: dict[str, Any], request: str) -> str | None:
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = response_format["json_schema"]["schema"]
        return json.dumps(fill_object(schema, request, fill_all=True), separators=(",", ":"))
    if response_format.get("type") == "json_object":
        return json.dumps({"answer": _reply(request)}, separators=(",", ":"))
    return None


def chat(body: dict[str, Any]) -> Answer:
    """Answer a (validated) chat request."""
    messages: list[dict[str, Any]] = body["messages"]
    step = _tool_step(body, messages)
    if isinstance(step, Answer):
        return step
    _, request = _last_user(messages)
    if not request:
        request = _text(messages[-1].get("content"))
    if step is None:
        prompt = "\n".join(_text(m.get("content")) for m in messages if m.get("role") != "tool")
        rag = _rag(prompt)
        step = _schema_reply(body, request) or (answer_rag(*rag) if rag else _reply(request))
    text, reason = _limit(step, body.get("max_tokens"), body.get("stop"))
    return Answer(text, reason, _prompt_tokens(messages), _tokens(text))


def complete(body: dict[str, Any]) -> Answer:
    """Answer a (validated) completion request (``max_tokens`` defaults to 16)."""
    prompt: str = body["prompt"]
    max_tokens = body.get("max_tokens")
    text, reason = _limit(
        _reply(prompt), 16 if max_tokens is None else max_tokens, body.get("stop")
    )
    return Answer(text, reason, max(1, _tokens(prompt)), _tokens(text))
