"""The gateway's deterministic model: tool choice and argument filling, answers from tool
results, RAG answers, JSON-schema output, max_tokens and stop; and tool calls streamed in
pieces over HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from opengradient_shared import tee
from opengradient_shared.gateway import model
from opengradient_shared.x402 import exact, parse_challenge


def _tool(
    name: str, description: str, properties: dict[str, Any], required: list[str]
) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


WEATHER = _tool(
    "get_weather",
    "Get the current weather for a city",
    {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    ["location"],
)
MULTIPLY = _tool(
    "multiply",
    "Multiply two integers",
    {"a": {"type": "integer"}, "b": {"type": "integer"}},
    ["a", "b"],
)
SEARCH = _tool("search_docs", "Search the documentation", {"query": {"type": "string"}}, ["query"])
TOOLS = [WEATHER, MULTIPLY, SEARCH]


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def _call(answer: model.Answer) -> tuple[str, dict[str, Any]]:
    assert answer.finish_reason == "tool_calls" and answer.content == ""
    (call,) = answer.tool_calls
    assert call["type"] == "function" and call["id"].startswith("call_")
    return call["function"]["name"], json.loads(call["function"]["arguments"])


@pytest.mark.parametrize(
    ("text", "name", "arguments"),
    [
        ("What's the weather in Paris?", "get_weather", {"location": "Paris"}),
        (
            "Weather in New York in fahrenheit please",
            "get_weather",
            {"location": "New York", "unit": "fahrenheit"},
        ),
        ("What is 6 multiplied by 7?", "multiply", {"a": 6, "b": 7}),
        ('Search the docs for "rate limits"', "search_docs", {"query": "rate limits"}),
    ],
)
def test_the_best_matching_tool_is_called_with_arguments_from_the_text(
    text: str, name: str, arguments: dict[str, Any]
) -> None:
    assert _call(model.chat({"messages": _user(text), "tools": TOOLS})) == (name, arguments)


def test_no_matching_tool_means_a_text_answer_unless_one_is_required() -> None:
    body = {"messages": _user("Good morning!"), "tools": TOOLS}
    assert model.chat(body).tool_calls == []
    name, arguments = _call(model.chat({**body, "tool_choice": "required"}))
    assert name == "get_weather" and set(arguments) == {"location"}  # required fields filled


def test_a_named_tool_choice_wins_and_none_disables_tools() -> None:
    body = {"messages": _user("What's the weather in Paris, times 3?"), "tools": TOOLS}
    forced = {**body, "tool_choice": {"type": "function", "function": {"name": "multiply"}}}
    assert _call(model.chat(forced)) == ("multiply", {"a": 3, "b": 0})
    assert model.chat({**body, "tool_choice": "none"}).tool_calls == []


def test_call_ids_are_deterministic_and_depend_on_the_request() -> None:
    one = model.chat({"messages": _user("Weather in Oslo?"), "tools": TOOLS})
    again = model.chat({"messages": _user("Weather in Oslo?"), "tools": TOOLS})
    other = model.chat({"messages": _user("Weather in Rome?"), "tools": TOOLS})
    assert one.tool_calls == again.tool_calls
    assert one.tool_calls[0]["id"] != other.tool_calls[0]["id"]


def test_a_two_step_agent_calls_each_asked_tool_then_answers_from_the_results() -> None:
    messages = _user("Get the weather in Berlin and multiply 3 by 4")
    first = model.chat({"messages": messages, "tools": TOOLS})
    name, arguments = _call(first)
    assert (name, arguments) == ("get_weather", {"location": "Berlin"})
    messages += [
        {"role": "assistant", "content": "", "tool_calls": first.tool_calls},
        {"role": "tool", "tool_call_id": first.tool_calls[0]["id"], "content": "Sunny, 21 C"},
    ]
    second = model.chat({"messages": messages, "tools": TOOLS})
    assert _call(second) == ("multiply", {"a": 3, "b": 4})
    messages += [
        {"role": "assistant", "content": None, "tool_calls": second.tool_calls},
        {"role": "tool", "tool_call_id": second.tool_calls[0]["id"], "content": "12"},
    ]
    final = model.chat({"messages": messages, "tools": TOOLS})
    assert final.tool_calls == [] and final.finish_reason == "stop"
    assert "Sunny, 21 C" in final.content and "12" in final.content


def test_a_tool_result_is_used_in_the_answer() -> None:
    messages = _user("What's the weather in Lima?")
    call = model.chat({"messages": messages, "tools": TOOLS}).tool_calls
    messages += [
        {"role": "assistant", "content": "", "tool_calls": call},
        {"role": "tool", "tool_call_id": call[0]["id"], "content": "Foggy and 14 degrees"},
    ]
    answer = model.chat({"messages": messages, "tools": TOOLS})
    assert answer.tool_calls == [] and "Foggy and 14 degrees" in answer.content


CONTEXT = (
    "The Eiffel Tower is in Paris. It was completed in 1889.\n\n"
    "The Colosseum is an amphitheatre in Rome. It could hold 50,000 spectators."
)
TEXT_QA = (
    "Context information is below.\n---------------------\n{context}\n---------------------\n"
    "Given the context information and not prior knowledge, answer the query.\n"
    "Query: {query}\nAnswer: "
)
REFINE = (
    "The original query is as follows: {query}\nWe have provided an existing answer: {existing}\n"
    "We have the opportunity to refine the existing answer (only if needed) with some more "
    "context below.\n------------\n{context}\n------------\nGiven the new context, refine the "
    "original answer to better answer the query. If the context isn't useful, return the "
    "original answer.\nRefined Answer: "
)


@pytest.mark.parametrize(
    ("query", "sentence"),
    [
        ("When was the Eiffel Tower completed?", "It was completed in 1889."),
        ("Where is the Colosseum?", "The Colosseum is an amphitheatre in Rome."),
        ("How many spectators could the Colosseum hold?", "It could hold 50,000 spectators."),
    ],
)
def test_rag_prompts_are_answered_with_the_best_matching_sentence(
    query: str, sentence: str
) -> None:
    prompt = TEXT_QA.format(context=CONTEXT, query=query)
    assert model.complete({"prompt": prompt, "max_tokens": 50}).content == sentence
    chat = model.chat(
        {
            "messages": [
                {"role": "system", "content": "You are an expert Q&A system."},
                *_user(prompt),
            ]
        }
    )
    assert chat.content == sentence
    plain = (
        f"Use the following pieces of context.\n\n{CONTEXT}\n\nQuestion: {query}\nHelpful Answer:"
    )
    assert model.chat({"messages": _user(plain)}).content == sentence


def test_refine_prompts_keep_the_existing_answer_when_the_context_does_not_help() -> None:
    helpful = REFINE.format(query="Where is the Colosseum?", existing="Unknown.", context=CONTEXT)
    assert (
        model.complete({"prompt": helpful}).content == "The Colosseum is an amphitheatre in Rome."
    )
    useless = REFINE.format(
        query="Who painted the Mona Lisa?", existing="Leonardo.", context=CONTEXT
    )
    assert model.complete({"prompt": useless}).content == "Leonardo."


def test_json_schema_output_fits_the_schema_and_uses_the_text() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]},
            "score": {"type": "number"},
            "member": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "address": {"$ref": "#/$defs/Address"},
        },
        "required": ["name", "age", "city", "address"],
        "$defs": {"Address": {"type": "object", "properties": {"street": {"type": "string"}}}},
    }
    body = {
        "messages": _user("Alice Smith is 31 years old, lives in Rome and scored 9.5 points."),
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema},
        },
    }
    data = json.loads(model.chat(body).content)
    assert set(data) == set(schema["properties"])
    assert (data["name"], data["age"], data["city"], data["score"]) == (
        "Alice Smith",
        31,
        "Rome",
        9.5,
    )
    assert isinstance(data["member"], bool) and isinstance(data["tags"], list)
    assert isinstance(data["address"]["street"], str)
    json_object = model.chat({"messages": _user("hi"), "response_format": {"type": "json_object"}})
    assert isinstance(json.loads(json_object.content), dict)


def test_plain_reply_depends_on_the_input_and_reports_usage() -> None:
    one = model.chat({"messages": _user("Tell me about otters")})
    other = model.chat({"messages": _user("Tell me about badgers")})
    assert "otters" in one.content and "badgers" in other.content
    assert (one.prompt_tokens, one.completion_tokens) == (4, len(one.content.split()))


def test_max_tokens_cuts_the_text_with_finish_reason_length() -> None:
    long = {"messages": _user("one two three four five six seven eight")}
    cut = model.chat({**long, "max_tokens": 3})
    assert cut.finish_reason == "length" and cut.completion_tokens == 3
    assert len(cut.content.split()) == 3
    assert model.chat({**long, "max_tokens": 50}).finish_reason == "stop"
    assert model.complete({"prompt": " ".join(["word"] * 40)}).completion_tokens == 16  # default


def test_stop_cuts_at_the_first_stop_string() -> None:
    answer = model.chat({"messages": _user("alpha beta gamma delta"), "stop": ["delta", "gamma"]})
    assert answer.content.endswith("beta ") and "gamma" not in answer.content
    assert answer.finish_reason == "stop"
    assert model.complete({"prompt": "alpha beta", "stop": "beta"}).content.endswith("alpha ")


def test_tool_call_is_streamed_in_pieces_and_proved(gateway: Any, account: Any) -> None:
    body = {
        "model": "gpt-4.1-2025-04-14",
        "messages": _user("What's the weather in Paris in celsius?"),
        "tools": TOOLS,
        "stream": True,
    }
    headers = {"Authorization": "Bearer t"}
    ask = requests.post(gateway.url + "/v1/chat/completions", json=body, headers=headers, timeout=5)
    challenge = parse_challenge(ask.headers, ask.content)
    assert challenge is not None
    payment = exact.sign_payment(account, challenge.accepts[0], challenge, now=int(time.time()))
    answer = requests.post(
        gateway.url + "/v1/chat/completions",
        json=body,
        headers={**headers, "X-PAYMENT": payment.header_value},
        timeout=5,
    )
    frames = answer.content.split(b"\n\n")
    assert frames[-2] == b"data: [DONE]"
    events = [json.loads(f.removeprefix(b"data: ")) for f in frames[:-2]]
    pieces = [e["choices"][0]["delta"]["tool_calls"][0] for e in events[:-1]]
    assert len(pieces) > 1
    assert pieces[0]["index"] == 0 and pieces[0]["type"] == "function"
    assert pieces[0]["id"].startswith("call_") and pieces[0]["function"]["name"] == "get_weather"
    assert all("id" not in p and "name" not in p["function"] for p in pieces[1:])
    arguments = "".join(p["function"]["arguments"] for p in pieces)
    assert json.loads(arguments) == {"location": "Paris", "unit": "celsius"}
    final = events[-1]
    assert final["choices"][0]["finish_reason"] == "tool_calls"
    call = {
        "id": pieces[0]["id"],
        "type": "function",
        "function": {"name": "get_weather", "arguments": arguments},
    }
    assert tee.verify(
        tee.proof_from_fields(final),
        tee.load_public_key(gateway.public_key_pem),
        expected_request_hash=tee.request_hash(body),
        expected_output_hash=tee.output_hash("", [call]),
    ).verified
