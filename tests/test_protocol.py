"""Request building and answer parsing (pure): what goes on the wire, and what comes back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from gateway_vectors import load_vector
from opengradient_shared import TEE_LLM, x402SettlementMode
from opengradient_shared.errors import (
    AuthenticationError,
    InvalidRequestError,
    ServerError,
)
from opengradient_shared.openai_schema import provider_model
from opengradient_shared.protocol import (
    AUTHORIZATION,
    CHAT_PATH,
    COMPLETION_PATH,
    StreamAccumulator,
    error_for_status,
    parse_chat,
    parse_completion,
    prepare_chat,
    prepare_completion,
)
from opengradient_shared.sse import SSEDecoder

USER = [{"role": "user", "content": "hi"}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}


# ---- bodies ------------------------------------------------------------------------------


def test_minimal_chat_body() -> None:
    prepared = prepare_chat(TEE_LLM.GPT_4_1_2025_04_14, USER)
    assert prepared.path == CHAT_PATH
    assert prepared.body == {
        "model": "gpt-4.1-2025-04-14",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 100,
        "temperature": 0.0,
    }
    assert json.loads(prepared.payload) == prepared.body
    assert not prepared.stream


def test_optional_fields_only_when_given() -> None:
    body = prepare_chat(
        "openai/gpt-4.1-2025-04-14", USER, 5, ["END"], 0.5, [TOOL], None, stream=True,
        response_format={"type": "json_object"},
    ).body  # fmt: skip
    assert body["stop"] == ["END"]
    assert body["tools"] == [TOOL]
    assert body["tool_choice"] == "auto"  # the default once tools are given
    assert body["stream"] is True
    assert body["response_format"] == {"type": "json_object"}
    assert "max_completion_tokens" not in body
    empty = prepare_chat("openai/gpt-4.1-2025-04-14", USER, stop_sequence=[], tools=None).body
    assert not {"stop", "tools", "tool_choice", "stream", "response_format"} & set(empty)


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("none", "none"),
        ("required", "required"),
        ({"type": "function", "function": {"name": "get_weather"}}, None),
    ],
)
def test_tool_choice_variants(choice: Any, sent: Any) -> None:
    body = prepare_chat("openai/gpt-4.1-2025-04-14", USER, tools=[TOOL], tool_choice=choice).body
    assert body["tool_choice"] == (sent or choice)


def test_tool_choice_without_tools_is_dropped_when_harmless() -> None:
    assert (
        "tool_choice"
        not in prepare_chat("openai/gpt-4.1-2025-04-14", USER, tool_choice="auto").body
    )
    with pytest.raises(InvalidRequestError, match="required"):
        prepare_chat("openai/gpt-4.1-2025-04-14", USER, tool_choice="required")


def test_messages_are_reduced_to_what_the_gateway_reads() -> None:
    messages = [
        {"role": "system", "content": "Be brief.", "extra": 1},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
    ]
    sent = prepare_chat("openai/gpt-4.1-2025-04-14", messages).body["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert sent[1]["content"] == "ab"
    assert sent[2]["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}
    assert sent[3] == {"role": "tool", "content": "42", "tool_call_id": "c1"}


def test_completion_body() -> None:
    prepared = prepare_completion(TEE_LLM.GPT_4_1_2025_04_14, "Once", 7, ["."], 1.0)
    assert prepared.path == COMPLETION_PATH and prepared.completion
    assert prepared.body == {
        "model": "gpt-4.1-2025-04-14",
        "prompt": "Once",
        "max_tokens": 7,
        "temperature": 1.0,
        "stop": ["."],
    }


def test_request_hash_matches_the_captured_gateway() -> None:
    request = load_vector("chat_request.json")
    answer = load_vector("chat_response.json")["body"]
    prepared = prepare_chat(
        "openai/" + request["model"],
        request["messages"],
        max_tokens=request["max_tokens"],
        temperature=request["temperature"],
    )
    assert prepared.request_hash == answer["tee_request_hash"]
    streamed = prepare_chat("openai/gpt-4.1", request["messages"], 64, temperature=0.2, stream=True)
    assert streamed.request_hash == prepared.request_hash  # `stream` is not hashed


# ---- headers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "v1", "v2"),
    [
        (x402SettlementMode.SETTLE, "settle", "private"),
        (x402SettlementMode.SETTLE_METADATA, "settle-metadata", "individual"),
        (x402SettlementMode.SETTLE_BATCH, "settle-batch", "batch"),
        (x402SettlementMode.PRIVATE, "settle", "private"),
        ("batch", "settle-batch", "batch"),
        (None, "settle-batch", "batch"),
    ],
)
def test_settlement_header_speaks_the_servers_generation(mode: Any, v1: str, v2: str) -> None:
    prepared = prepare_chat("openai/gpt-4.1-2025-04-14", USER, x402_settlement_mode=mode)
    assert prepared.headers(1)["X-SETTLEMENT-TYPE"] == v1
    assert prepared.headers(2)["X-SETTLEMENT-TYPE"] == v2
    assert prepared.headers(1)["Authorization"] == AUTHORIZATION
    assert AUTHORIZATION.startswith("Bearer ")


# ---- validation --------------------------------------------------------------------------

BAD_CHAT: list[Any] = [
    ({"model": "gpt-4.1-2025-04-14"}, "TEE_LLM.GPT_4_1_2025_04_14"),
    ({"model": "mystery"}, "'mystery' has no provider prefix"),
    ({"model": None}, "model"),
    ({"messages": []}, "messages is empty"),
    ({"messages": [{"role": "developer", "content": "x"}]}, "use 'system'"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "image_url"),
    ({"messages": [{"role": "user"}]}, "content"),
    ({"max_tokens": True}, "max_tokens"),
    ({"max_tokens": 1.5}, "max_tokens"),
    ({"temperature": 2.01}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"stop_sequence": ["ok", ""]}, "stop"),
    ({"tools": {"type": "function"}}, "tools"),
    ({"tools": [TOOL], "tool_choice": {"function": {"name": "nope"}}}, "'nope'"),
    ({"tools": [TOOL], "tool_choice": 3}, "tool_choice"),
    ({"response_format": {"type": "json_schema"}}, "json_schema"),
    ({"response_format": "json"}, "response_format"),
    ({"stream": "yes"}, "stream"),
    ({"x402_settlement_mode": "sometimes"}, "sometimes"),
]


@pytest.mark.parametrize(("change", "named"), BAD_CHAT)
def test_bad_chat_arguments_name_the_problem(change: dict[str, Any], named: str) -> None:
    arguments: dict[str, Any] = {"model": TEE_LLM.GPT_4_1_2025_04_14, "messages": USER, **change}
    with pytest.raises(InvalidRequestError) as caught:
        prepare_chat(**arguments)
    assert named in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_good_edge_values_pass() -> None:
    prepare_chat("openai/gpt-4.1-2025-04-14", USER, max_tokens=1, temperature=2)
    prepare_chat("openai/gpt-4.1-2025-04-14", USER, temperature=0)
    prepare_chat("openai/gpt-4.1-2025-04-14", USER, response_format={
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}},
    })  # fmt: skip


# ---- answers -----------------------------------------------------------------------------


def _body(name: str) -> bytes:
    return json.dumps(load_vector(name)["body"]).encode()


def test_parse_chat_answer() -> None:
    answer = parse_chat(_body("chat_response.json"))
    assert answer.chat_output == {
        "role": "assistant",
        "content": "Hello from fake-openai. You said: Grüße, say hi 👋",
    }
    assert answer.finish_reason == "stop"
    assert answer.usage is not None and answer.usage.total_tokens == 15
    assert answer.id and answer.model == "gpt-4.1"
    assert answer.output_hash == answer.data["tee_output_hash"]


def test_parse_tool_call_answer() -> None:
    answer = parse_chat(_body("tool_response.json"))
    assert answer.finish_reason == "tool_calls"
    assert answer.chat_output["content"] == ""
    assert answer.chat_output["tool_calls"][0]["function"]["name"] == "get_weather"
    assert answer.output_hash == answer.data["tee_output_hash"]


def test_parse_completion_answer_and_the_legacy_key() -> None:
    answer = parse_completion(_body("completion_response.json"))
    assert answer.content == "Hello from fake-openai. You said: Say hi"
    assert answer.output_hash == answer.data["tee_output_hash"]
    legacy = parse_completion(b'{"completion": "old style", "finish_reason": "stop"}')
    assert legacy.content == "old style"


@pytest.mark.parametrize(
    "body", [b"not json", b"[1]", b"{}", b'{"choices": []}', b'{"choices": [{"index": 0}]}']
)
def test_malformed_answers_are_server_errors(body: bytes) -> None:
    with pytest.raises(ServerError):
        parse_chat(body)


def test_stream_accumulator_rebuilds_the_captured_stream() -> None:
    events = SSEDecoder().feed(load_vector("chat_stream.sse"))
    received = StreamAccumulator()
    for event in events:
        received.add(event)
    assert received.content == "Hello from fake-openai. You said: Grüße, say hi 👋"
    assert received.tool_calls is None
    assert received.output_hash == events[-1]["tee_output_hash"]


def test_stream_accumulator_joins_tool_call_pieces() -> None:
    pieces = [
        {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}},
        {"index": 1, "id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
        {"index": 0, "function": {"arguments": '{"a": '}},
        {"index": 0, "function": {"arguments": "1}"}},
    ]
    received = StreamAccumulator()
    for piece in pieces:
        received.add({"choices": [{"index": 0, "delta": {"tool_calls": [piece]}}]})
    assert received.tool_calls == [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]


# ---- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (400, b'{"error": "unknown model nope"}', InvalidRequestError),
        (415, b'{"detail": "use application/json"}', InvalidRequestError),
        (401, b'{"error": "missing Authorization"}', AuthenticationError),
        (403, b"forbidden", AuthenticationError),
        (500, b'{"error": {"message": "provider down"}}', ServerError),
        (503, b"pricing unavailable", ServerError),
    ],
)
def test_error_statuses_carry_the_servers_message(status: int, body: bytes, kind: type) -> None:
    error = error_for_status(status, body, "http://gw/v1/chat/completions")
    assert type(error) is kind
    assert error.status_code == status
    said = body.decode()
    for word in ("unknown model nope", "use application/json", "provider down", "forbidden"):
        if word in said:
            assert word in str(error)


@pytest.mark.parametrize(
    ("reported", "named"),
    [
        ("gpt-4.1-2025-04-14", "openai/gpt-4.1-2025-04-14"),
        ("openai/gpt-4.1-2025-04-14-mini", "openai/gpt-4.1-2025-04-14-mini"),
        (None, "openai/gpt-4.1-2025-04-14"),
    ],
)
def test_answers_name_their_model_with_its_provider(reported: str | None, named: str) -> None:
    assert provider_model(reported, "openai/gpt-4.1-2025-04-14") == named
