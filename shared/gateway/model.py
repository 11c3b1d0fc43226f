"""The deterministic built-in model: the same request always gets the same answer.

With tools it calls the one that best matches the user's words (arguments from the text), one
step at a time, then answers from the results; a ReAct prompt (tools listed in the system
prompt, the ``Thought``/``Action``/``Action Input`` format) gets the same steps in that format;
RAG prompts get the context sentence that best matches the question; a JSON schema gets JSON
that fits it at any turn (filled from the request and the tool results); JSON mode uses the
keys the prompt names; anything else an echo. ``stop`` and ``max_tokens`` (whitespace tokens)
cut the text. :class:`Answer` gives the OpenAI shapes."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .. import wire
from ..errors import MalformedAnswerError
from .fill import Json, fill_object

_STOPWORDS = frozenset(
    "a an the is are was were be been of to in on at for by with and or not what which who whom "  # noqa: SIM905
    "how why when where does do did can could would should will shall may might i you me my your "
    "it its this that these those there their them they we our us please tell give get use call "
    "tool function about from as into than then so if any some all value".split(" ")
)
_SEPARATOR = re.compile(r"^\s*-{3,}\s*$", re.M)
_QUERY = re.compile(r"(?:^|\n)[ \t]*(?:Query|Question|Q)[ \t]*:[ \t]*([^\n]+)", re.I)
_ORIGINAL_QUERY = re.compile(r"original (?:query|question) is as follows:\s*(.+?)\s*\n", re.I)
_EXISTING = re.compile(
    r"(?s)existing answer:\s*(.+?)\s*\n\s*We have the opportunity|Original Answer:[ \t]*([^\n]+)"
)
_CONTEXT = re.compile(
    r"(?:^|\n)\s*(?:New )?Context(?: information)?\s*:\s*(.+?)(?=\n[\w ]+:|\Z)", re.S
)
_PRONOUN = re.compile(r"(?:It|They|This|These|He|She|Its|Their|His|Her)\b")
_REACT_TOOL = re.compile(
    r"^> Tool Name: (\S+)[ \t]*\nTool Description: (.*?)\nTool Args: ([^\n]*)$", re.M | re.S
)
_OBSERVATION = re.compile(r"^\s*Observation:\s*", re.I)
_ACTION = re.compile(r"^Action:\s*(\S+)", re.M)
_JSON_KEY = re.compile(r"[\"'`]([A-Za-z_]\w{0,63})[\"'`]")
_INTEGER_KEYS = frozenset(
    ["age", "count", "year", "years", "quantity", "seats", "population", "rank"]
)
_NUMBER_KEYS = frozenset(
    ["price", "amount", "total", "score", "rating", "temperature", "weight", "height", "width"]
)
_LISTED_KEYS = re.compile(
    r"\b(?:keys|fields|properties)\s*:?\s*([A-Za-z_]\w*(?:\s*(?:,|\band\b|&)\s*[A-Za-z_]\w*)+)"
)


def _chunk(model: str, delta: Json, finish_reason: str | None = None) -> Json:
    choice = {"delta": {**delta, "role": "assistant"}, "index": 0, "finish_reason": finish_reason}
    return {"choices": [choice], "model": model}


@dataclass(frozen=True)
class Answer:
    """What the model produced (text or tool calls, why it stopped, token counts), as OpenAI
    JSON with the TEE fields (``proof``) by :meth:`body` and :meth:`events`."""

    content: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tool_calls: list[Json] = field(default_factory=list)

    @property
    def usage(self) -> dict[str, int]:
        """The OpenAI ``usage`` object."""
        used = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}
        return {**used, "total_tokens": self.prompt_tokens + self.completion_tokens}

    def body(self, model: str, proof: Json, *, completion: bool) -> Json:
        """A ``text_completion``, or a ``chat.completion`` whose message has the content (""
        with tool calls) and ``tool_calls`` when any."""
        message = {"role": "assistant", "content": self.content}
        calls = {"tool_calls": self.tool_calls} if self.tool_calls else {}
        choice: Json = {"text": self.content} if completion else {"message": {**message, **calls}}
        kind = "text_completion" if completion else "chat.completion"
        prefix = "cmpl" if completion else "chatcmpl"
        head = {"id": f"{prefix}-{uuid.uuid4()}", "object": kind, "created": int(time.time())}
        choice = {"index": 0, **choice, "finish_reason": self.finish_reason}
        return {**head, "model": model, "choices": [choice], "usage": self.usage, **proof}

    def events(self, model: str, proof: Json) -> list[Json]:
        """The SSE ``data:`` objects: the text word by word, tool-call arguments in pieces (the
        first with ``id``, ``type``, ``function.name``), a last chunk with the TEE fields."""
        words = re.findall(r"\s*\S+(?:\s+$)?", self.content)
        events = [_chunk(model, {"content": w}) for w in words or [self.content] if w]
        for index, call in enumerate(self.tool_calls):
            arguments = call["function"]["arguments"]
            for start in range(0, max(len(arguments), 1), 12):
                text = arguments[start : start + 12]
                piece: Json = {"index": index, "function": {"arguments": text}}
                if start == 0:
                    piece.update(id=call["id"], type="function")
                    piece["function"]["name"] = call["function"]["name"]
                events.append(_chunk(model, {"tool_calls": [piece]}))
        return [*events, {**_chunk(model, {}, self.finish_reason), **proof, "usage": self.usage}]


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _stem(word: str) -> str:
    for suffix, replacement in (("ied", "y"), ("ies", "y"), ("ing", ""), ("ed", ""), ("s", "")):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)] + replacement
    return word


def _words(text: str) -> set[str]:
    """Content words, lower case and stemmed (``multiplied`` and ``multiply`` agree)."""
    split = re.split(r"[^a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", text).lower())
    return {_stem(word) for word in split if word and word not in _STOPWORDS}


def _limit(text: str, max_tokens: int | None, stop: Any) -> tuple[str, str]:
    for marker in [stop] if isinstance(stop, str) else stop or []:
        text = text.split(marker, 1)[0]
    if max_tokens is not None and len(text.split()) > max_tokens:
        return "".join(re.findall(r"\s*\S+", text)[:max_tokens]), "length"
    return text, "stop"


def _rag_answer(prompt: str) -> str | None:
    """For a RAG prompt (context passages and a question): the context sentence sharing most
    words with the question (one opening with a pronoun also counts the sentence before it),
    else a refine prompt's existing answer. None for any other prompt."""
    query = _ORIGINAL_QUERY.search(prompt) or _QUERY.search(prompt)
    if not query:
        return None
    blocks, label = _SEPARATOR.split(prompt), _CONTEXT.search(prompt)
    context = label.group(1) if label else prompt[: query.start()]
    context = "\n".join(blocks[1:-1]) if len(blocks) >= 3 else context
    found = _EXISTING.search(prompt)
    existing = next(g for g in found.groups() if g).strip() if found else ""
    asked, previous = _words(query.group(1)), ""
    best, best_score = existing or "The context does not say.", 0
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", context + "\n" + existing):
        sentence = sentence.strip()
        scope = previous + " " + sentence if _PRONOUN.match(sentence) else sentence
        score = len(asked & _words(scope))
        if score > best_score and not _SEPARATOR.match(sentence):
            best, best_score = sentence, score
        previous = sentence
    return best


def _reply(prompt: str, echo: str | None = None) -> str:
    """A RAG answer from ``prompt``, or an echo of the start of ``echo`` (default: the prompt)."""
    answer, words = _rag_answer(prompt), (prompt if echo is None else echo).split()
    return answer or "You said: " + " ".join(words[:40]) + (" ..." if len(words) > 40 else "")


def _score(tool: dict[str, Any], request: str) -> tuple[int, int]:
    """(name words in the request, description and parameter words in the request)."""
    function, asked = tool["function"], _words(request)
    rest = f"{function.get('description') or ''} {json.dumps(function.get('parameters'))}"
    return len(asked & _words(function["name"].replace("_", " "))), len(asked & _words(rest))


def _pick_tool(body: dict[str, Any], request: str, called: set[str]) -> dict[str, Any] | None:
    """The named tool, or the best match not called yet (after a first call, only a tool the
    user named), or with "required" the first tool; None for a text answer."""
    tools, choice = body["tools"], body.get("tool_choice") or "auto"
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        return None if name in called else next(t for t in tools if t["function"]["name"] == name)
    fresh = [t for t in tools if t["function"]["name"] not in called]
    best = max(fresh, key=lambda t: _score(t, request), default=None)
    if best is not None and _score(best, request) > (0, 0):
        return best if not called or _score(best, request)[0] else None
    return tools[0] if choice == "required" and not called else None


def _tool_step(body: dict[str, Any], messages: list[dict[str, Any]], at: int) -> Any:
    """A tool call (a dict), or the text answering from tool results, or None (tools play no
    part). ``at`` is the last user turn (-1: none)."""
    if not body.get("tools") or body.get("tool_choice") == "none":
        return None
    request, turn = _text(messages[at].get("content")), messages[at + 1 :]
    names = {c["id"]: c["function"]["name"] for m in turn for c in m.get("tool_calls") or []}
    tool = _pick_tool(body, request, set(names.values()))
    if tool is None:
        said = [
            f"{names.get(m['tool_call_id'], 'The tool')} says: {_text(m['content']).strip()}."
            for m in turn
            if m["role"] == "tool"
        ]
        return " ".join(said) or None
    name = tool["function"]["name"]
    arguments = json.dumps(fill_object(tool["function"].get("parameters") or {}, request))
    seed = f"{json.dumps(messages, sort_keys=True, default=str)}|{name}|{len(names)}"
    call_id = "call_" + hashlib.sha256(seed.encode()).hexdigest()[:24]
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _react_tools(messages: list[dict[str, Any]]) -> list[Json] | None:
    """The tools a ReAct system prompt lists (as OpenAI tools), or None for another prompt."""
    system = "\n".join(_text(m.get("content")) for m in messages if m["role"] == "system")
    if "Action Input:" not in system or "Thought:" not in system:
        return None
    tools = []
    for name, description, arguments in _REACT_TOOL.findall(system):
        try:  # bounded nesting: a prompt's JSON 100,000 deep would overflow the C stack
            parameters = wire.loads(arguments, "Tool Args")
        except MalformedAnswerError:
            parameters = {}
        function = {"name": name, "description": description.strip()}
        parameters = parameters if isinstance(parameters, dict) else {}
        tools.append({"type": "function", "function": {**function, "parameters": parameters}})
    return tools


def _react(messages: list[dict[str, Any]], tools: list[Json]) -> str:
    """The next ReAct step: a Thought with an Action and its Action Input, or with the Answer
    (from the observations so far, else a reply to the question)."""
    asked = [
        i
        for i, m in enumerate(messages)
        if m["role"] == "user" and not _OBSERVATION.match(_text(m.get("content")))
    ]
    at = asked[-1] if asked else len(messages) - 1
    request, later = _text(messages[at].get("content")), messages[at + 1 :]
    said = [_text(m.get("content")) for m in later]
    called = {name for m, text in zip(later, said, strict=True)
              if m["role"] == "assistant" for name in _ACTION.findall(text)}  # fmt: skip
    seen = [
        _OBSERVATION.sub("", text, count=1).strip() for text in said if _OBSERVATION.match(text)
    ]
    tool = _pick_tool({"tools": tools}, request, called) if tools else None
    if tool is not None:
        arguments = json.dumps(fill_object(tool["function"]["parameters"], request))
        return (
            "Thought: The current language of the user is: English. I need to use a tool to "
            f"help me answer the question.\nAction: {tool['function']['name']}\n"
            f"Action Input: {arguments}"
        )
    answer = " ".join(seen) or _reply(request)
    return (
        "Thought: I can answer without using any more tools. I'll use the user's language to "
        f"answer\nAnswer: {answer}"
    )


def _json_mode(request: str, answer: str | None) -> Json:
    """JSON mode's object: the keys the prompt names (quoted, or listed after "keys") filled
    from its words, each missing value a reply; else ``{"answer": answer or a reply}``."""
    keys = list(dict.fromkeys(_JSON_KEY.findall(request))) if "json" in request.lower() else []
    listed = _LISTED_KEYS.search(request)
    if not keys and listed:
        keys = [k for k in re.split(r"\s*(?:,|\band\b|&)\s*", listed.group(1)) if k]
    if not keys:
        return {"answer": answer or _reply(request)}
    rest = _JSON_KEY.sub(" ", request)
    kinds = {k: "integer" if k.lower() in _INTEGER_KEYS else "number" for k in keys}
    types = {k: kinds[k] if k.lower() in _INTEGER_KEYS | _NUMBER_KEYS else "string" for k in keys}
    schema = {"type": "object", "properties": {k: {"type": types[k]} for k in keys[:16]}}
    found = fill_object(schema, rest)
    return {key: found.get(key, _reply(rest)) for key in keys[:16]}


def chat(body: dict[str, Any]) -> Answer:
    """Answer a (validated) chat request."""
    messages: list[dict[str, Any]] = body["messages"]
    prompt_tokens = max(1, sum(len(_text(m.get("content")).split()) for m in messages))
    at = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
    step = _tool_step(body, messages, at)
    if isinstance(step, dict):
        tokens = len(step["function"]["arguments"].split())
        return Answer("", "tool_calls", prompt_tokens, tokens, [step])
    request = _text(messages[at].get("content"))  # the last user turn, else the last message
    kind = (body.get("response_format") or {}).get("type")
    react = None if body.get("tools") else _react_tools(messages)
    if kind == "json_schema":  # at any turn: from the request and the tool results since
        results = [_text(m.get("content")) for m in messages[at + 1 :] if m["role"] == "tool"]
        schema = body["response_format"]["json_schema"]["schema"]
        evidence = "\n".join([request, *results])
        text = json.dumps(fill_object(schema, evidence, fill_all=True), separators=(",", ":"))
    elif kind == "json_object":  # at any turn too
        text = json.dumps(_json_mode(request, step), separators=(",", ":"))
    elif step is not None:
        text = step
    elif react is not None:
        text = _react(messages, react)
    else:  # RAG over the whole conversation, else an echo of the request
        said = "\n".join(_text(m.get("content")) for m in messages if m["role"] != "tool")
        text = _reply(said, request)
    text, reason = _limit(text, body.get("max_tokens"), body.get("stop"))
    return Answer(text, reason, prompt_tokens, len(text.split()))


def complete(body: dict[str, Any]) -> Answer:
    """Answer a (validated) completion request (``max_tokens`` defaults to 16, as in the
    completions schema of OpenGradient's gateway)."""
    max_tokens = 16 if body.get("max_tokens") is None else body["max_tokens"]
    text, reason = _limit(_reply(body["prompt"]), max_tokens, body.get("stop"))
    return Answer(text, reason, max(1, len(body["prompt"].split())), len(text.split()))
