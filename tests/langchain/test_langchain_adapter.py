"""ChatOpenGradient beyond the standard suites, against a real LocalGateway: proofs and receipts
on messages, streams that add up to invoke, callbacks, events, concurrency, chains, structured
output, both protocol generations, and bad input refused before any request."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd, dumps
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from lc_support import MODEL, key_of
from opengradient_shared import LLM, InvalidRequestError
from pydantic import BaseModel, Field

from langchain_opengradient import ChatOpenGradient, OpenGradientLLM


@tool
def magic_function(input: int) -> int:  # noqa: A002 - the suite's well-known tool
    """Apply a magic function to an input."""
    return input + 2


class Flight(BaseModel):
    """A flight to book."""

    origin: str = Field(description="the city the flight leaves from")
    seats: int = Field(description="how many seats")


def _merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


def _assert_proven(message: AIMessage, gateway: Any, wallet: Any) -> None:
    proof, receipt = message.response_metadata["tee_proof"], message.response_metadata["payment"]
    assert proof["verified"] is True
    assert proof["tee_id"] == gateway.tee_id
    assert proof["timestamp"] > 0 and proof["request_hash"] and proof["output_hash"]
    assert receipt["payer"] == wallet.address
    # generation 1 sends x-processing-hash; generation 2 has none (protocol.md: empty string)
    generation_1 = receipt["x402_version"] == 1
    assert message.response_metadata["payment_hash"].startswith("0x") is generation_1


# ---- what a user sees on a message ---------------------------------------------------------


def test_invoke_carries_proof_receipt_usage_and_one_settlement(
    chat: ChatOpenGradient, shared_gateway: Any, wallet: Any
) -> None:
    settled = len(shared_gateway.ledger.entries)
    message = chat.invoke("Hello there")
    assert isinstance(message, AIMessage)
    assert message.content == "You said: Hello there"
    assert message.id and message.id.startswith("chatcmpl-")
    _assert_proven(message, shared_gateway, wallet)
    assert message.response_metadata["model_name"] == MODEL
    assert message.response_metadata["finish_reason"] == "stop"
    usage = message.usage_metadata
    assert usage is not None and usage["output_tokens"] == 4
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    entries = shared_gateway.ledger.entries[settled:]
    assert [e.payer for e in entries] == [wallet.address]
    assert entries[0].transaction == message.response_metadata["payment"]["transaction"]


def test_stream_adds_up_to_invoke_with_usage_and_proof_on_the_last_chunk_only(
    chat: ChatOpenGradient, shared_gateway: Any, wallet: Any
) -> None:
    prompt = "Tell me about the quiet harbour town of Porto at dawn"
    invoked = chat.invoke(prompt)
    chunks = list(chat.stream(prompt))
    assert len(chunks) > 3
    assert all(c.usage_metadata is None and not c.response_metadata for c in chunks[:-1])
    assert chunks[-1].chunk_position == "last"
    full = _merge(chunks)
    assert full.content == invoked.content
    assert full.usage_metadata == invoked.usage_metadata
    for key in ("model_name", "finish_reason"):
        assert full.response_metadata[key] == invoked.response_metadata[key]
    assert (
        full.response_metadata["tee_proof"]["output_hash"]
        == (invoked.response_metadata["tee_proof"]["output_hash"])
    )
    _assert_proven(full, shared_gateway, wallet)


def test_streamed_tool_call_adds_up_to_the_invoked_one(chat: ChatOpenGradient) -> None:
    model = chat.bind_tools([magic_function], tool_choice="any")
    question = "What is the value of magic_function(3)? Use the tool."
    invoked = model.invoke(question)
    chunks = list(model.stream(question))
    pieces = [p for c in chunks for p in c.tool_call_chunks]
    assert pieces and pieces[0]["index"] == 0 and pieces[0]["name"] == "magic_function"
    assert pieces[0]["id"] == invoked.tool_calls[0]["id"]
    full = _merge(chunks)
    assert full.tool_calls == invoked.tool_calls == [
        {"name": "magic_function", "args": {"input": 3}, "id": invoked.tool_calls[0]["id"],
         "type": "tool_call"}
    ]  # fmt: skip
    assert full.response_metadata["finish_reason"] == "tool_calls"
    assert full.usage_metadata == invoked.usage_metadata


async def test_async_stream_matches_async_invoke(chat: ChatOpenGradient) -> None:
    invoked = await chat.ainvoke("Hello from an event loop")
    chunks = [chunk async for chunk in chat.astream("Hello from an event loop")]
    full = _merge(chunks)
    assert full.content == invoked.content and full.usage_metadata == invoked.usage_metadata
    assert full.response_metadata["tee_proof"]["verified"] is True


class _Tokens(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


@pytest.mark.parametrize("how", ["stream", "invoke-streaming"])
def test_each_streamed_piece_fires_one_new_token_callback(
    chat: ChatOpenGradient, shared_gateway: Any, wallet: Any, how: str
) -> None:
    handler = _Tokens()
    config: Any = {"callbacks": [handler]}
    if how == "stream":
        chunks = list(chat.stream("Count these words one by one please", config=config))
        assert len(handler.tokens) == len(chunks)
        assert "".join(handler.tokens) == _merge(chunks).content
    else:
        streaming = ChatOpenGradient(
            model=MODEL, private_key=key_of(wallet), base_url=shared_gateway.url, streaming=True
        )
        message = streaming.invoke("Count these words one by one please", config=config)
        assert len(handler.tokens) > 3
        assert "".join(handler.tokens) == message.content
        assert message.response_metadata["tee_proof"]["verified"] is True


async def test_astream_events_reports_each_chunk_and_the_proven_end(
    chat: ChatOpenGradient,
) -> None:
    events = [e async for e in chat.astream_events("Stream some events to me", version="v2")]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "on_chat_model_start" and kinds[-1] == "on_chat_model_end"
    streamed = [e["data"]["chunk"] for e in events if e["event"] == "on_chat_model_stream"]
    assert "".join(str(c.content) for c in streamed) == "You said: Stream some events to me"
    end = events[-1]["data"]["output"]
    assert end.response_metadata["tee_proof"]["verified"] is True


async def test_32_concurrent_abatch_calls_each_pay_once(
    chat: ChatOpenGradient, shared_gateway: Any, wallet: Any
) -> None:
    settled = len(shared_gateway.ledger.entries)
    prompts = [f"Question number {i}" for i in range(32)]
    results = await chat.abatch(prompts, config={"max_concurrency": 32})
    assert [r.content for r in results] == [f"You said: {p}" for p in prompts]
    assert all(r.response_metadata["tee_proof"]["verified"] for r in results)
    entries = shared_gateway.ledger.entries[settled:]
    assert len(entries) == 32 and {e.payer for e in entries} == {wallet.address}
    assert len({e.nonce for e in entries}) == 32
    assert len({r.response_metadata["payment_hash"] for r in results}) == 32


def test_one_model_serves_several_event_loops(chat: ChatOpenGradient) -> None:
    transport = chat._llm
    first = asyncio.run(chat.ainvoke("first loop"))
    second = asyncio.run(chat.ainvoke("second loop"))
    assert (first.content, second.content) == ("You said: first loop", "You said: second loop")
    assert chat._llm is transport  # one transport per model, not per call


# ---- tools, chains, structured output ------------------------------------------------------


def test_prompt_bind_tools_parser_chain(chat: ChatOpenGradient) -> None:
    @tool
    def book_flight(origin: str, seats: int) -> str:
        """Book seats on a flight leaving from a city."""
        return "booked"

    prompt = ChatPromptTemplate.from_messages(
        [("system", "You book flights."), ("human", "Book a flight from {city} for {n} people")]
    )
    chain = (
        prompt
        | chat.bind_tools([book_flight], tool_choice="book_flight")
        | JsonOutputKeyToolsParser(key_name="book_flight", first_tool_only=True)
    )
    assert chain.invoke({"city": "Oslo", "n": 3}) == {"origin": "Oslo", "seats": 3}


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_structured_output_invoke_and_stream(chat: ChatOpenGradient, method: str) -> None:
    structured = chat.with_structured_output(Flight, method=method)  # type: ignore[arg-type]
    question = "Book 2 seats from Oslo"
    assert structured.invoke(question) == Flight(origin="Oslo", seats=2)
    assert list(structured.stream(question))[-1] == Flight(origin="Oslo", seats=2)


def test_structured_output_include_raw_keeps_the_proven_message(chat: ChatOpenGradient) -> None:
    out: Any = chat.with_structured_output(Flight, method="json_schema", include_raw=True).invoke(
        "Book 4 seats from Bergen"
    )
    assert out["parsed"] == Flight(origin="Bergen", seats=4) and out["parsing_error"] is None
    assert out["raw"].response_metadata["tee_proof"]["verified"] is True


def test_json_mode_returns_json(chat: ChatOpenGradient) -> None:
    out = chat.with_structured_output(method="json_mode").invoke("Say hi")
    assert out == {"answer": "You said: Say hi"}


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("any", "required"),
        (True, "required"),
        ("required", "required"),
        ("auto", "auto"),
        ("none", "none"),
        ("magic_function", {"type": "function", "function": {"name": "magic_function"}}),
    ],
)
def test_tool_choice_spellings(chat: ChatOpenGradient, choice: Any, sent: Any) -> None:
    bound: Any = chat.bind_tools([magic_function], tool_choice=choice)
    assert bound.kwargs["tool_choice"] == sent
    assert bound.kwargs["tools"][0]["function"]["name"] == "magic_function"
    answer = bound.invoke("Hello!")
    assert bool(answer.tool_calls) is (sent != "none" and sent != "auto")


def test_bind_tools_takes_a_response_format_as_create_agent_passes_it(
    chat: ChatOpenGradient,
) -> None:
    schema = Flight.model_json_schema()
    form = {"type": "json_schema", "json_schema": {"name": "Flight", "schema": schema}}
    answer = chat.bind_tools([magic_function], response_format=form).invoke("Book 2 from Oslo")
    assert json.loads(str(answer.content)) == {"origin": "Oslo", "seats": 2}


def test_tool_history_round_trip(chat: ChatOpenGradient) -> None:
    model = chat.bind_tools([magic_function])
    question = HumanMessage("What is magic_function(5)?")
    call = model.invoke([question])
    result = magic_function.invoke(call.tool_calls[0])
    answer = model.invoke([question, call, result])
    assert answer.content == "magic_function says: 7."


def test_agent_calls_two_tools_in_sequence_and_answers_with_their_results(
    chat: ChatOpenGradient, shared_gateway: Any
) -> None:
    from langchain.agents import create_agent

    @tool
    def get_weather(city: str) -> str:
        """Current weather of a city."""
        return f"18 C and light rain in {city}"

    @tool
    def get_local_time(city: str) -> str:
        """Current local time of a city."""
        return f"07:45 in {city}"

    agent = create_agent(chat, [get_weather, get_local_time], system_prompt="Use the tools.")
    before = shared_gateway.request_count
    state = agent.invoke(
        {"messages": [HumanMessage("What is the weather and the local time in Lisbon?")]}
    )
    calls = [m.tool_calls for m in state["messages"] if isinstance(m, AIMessage) and m.tool_calls]
    assert [len(c) for c in calls] == [1, 1]  # one call per step: in sequence
    assert {c[0]["name"] for c in calls} == {"get_weather", "get_local_time"}
    assert all(c[0]["args"] == {"city": "Lisbon"} for c in calls)
    final = state["messages"][-1]
    assert isinstance(final, AIMessage) and not final.tool_calls
    assert "18 C and light rain in Lisbon" in final.text
    assert "07:45 in Lisbon" in final.text
    assert final.response_metadata["tee_proof"]["verified"] is True
    assert shared_gateway.request_count - before >= 3


# ---- completion model ----------------------------------------------------------------------


async def test_completion_model_sync_and_async(shared_gateway: Any, wallet: Any) -> None:
    llm = OpenGradientLLM(model=MODEL, private_key=key_of(wallet), base_url=shared_gateway.url)
    assert llm.invoke("Once upon a time") == "You said: Once upon a time"
    result = await llm.agenerate(["Twice upon a time"])
    generation = result.generations[0][0]
    assert generation.text == "You said: Twice upon a time"
    info = generation.generation_info or {}
    assert info["tee_proof"]["verified"] is True and info["payment"]["payer"] == wallet.address
    assert (result.llm_output or {})["token_usage"]["completion_tokens"] == 6


# ---- generation 2 (x402 v2 upto sessions) --------------------------------------------------


def test_generation_2_invoke_and_stream(gateway_v2: Any, wallet: Any) -> None:
    chat = ChatOpenGradient(model=MODEL, private_key=key_of(wallet), base_url=gateway_v2.url)
    message = chat.invoke("Hello second generation")
    assert message.content == "You said: Hello second generation"
    _assert_proven(message, gateway_v2, wallet)
    assert message.response_metadata["payment"]["x402_version"] == 2
    assert message.response_metadata["payment"]["scheme"] == "upto"
    full = _merge(list(chat.stream("Hello second generation")))
    assert full.content == message.content and full.usage_metadata == message.usage_metadata
    _assert_proven(full, gateway_v2, wallet)


# ---- configuration and bad input -----------------------------------------------------------


def test_existing_transport_needs_no_key_or_url(shared_gateway: Any, wallet: Any) -> None:
    with LLM(wallet, shared_gateway.url) as transport:
        chat = ChatOpenGradient(model=MODEL, client=transport)
        assert chat._llm is transport
        assert chat.invoke("hi").response_metadata["payment"]["payer"] == wallet.address


def test_langchain_spellings_are_accepted_as_aliases(shared_gateway: Any, wallet: Any) -> None:
    """``model_name``, ``api_key`` and ``x402_settlement_mode`` (the names other LangChain
    models and the seed use) fill the same fields; the typed names are tests/typing's."""
    chat = ChatOpenGradient(
        model_name=MODEL,
        api_key=key_of(wallet),
        base_url=shared_gateway.url,
        x402_settlement_mode="settle",
    )
    assert chat.model == MODEL and chat.settlement_mode.value == "settle"
    assert chat.private_key is not None
    assert chat.invoke("hi").response_metadata["payment"]["payer"] == wallet.address


def test_settings_from_the_environment(
    shared_gateway: Any, wallet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENGRADIENT_PRIVATE_KEY", key_of(wallet))
    monkeypatch.setenv("OPENGRADIENT_LLM_URL", shared_gateway.url)
    monkeypatch.setenv("OPENGRADIENT_MAX_PAYMENT", "1000")
    chat = ChatOpenGradient(model=MODEL)
    assert chat.streaming_url is None and chat.max_payment == 1000
    assert chat.invoke("hi").content == "You said: hi"
    shared_gateway.price = 1001
    try:
        with pytest.raises(Exception, match="1001|cap|max_payment"):
            chat.invoke("over the cap")
    finally:
        shared_gateway.price = 1000


def test_payment_and_verification_settings_reach_the_transport(
    shared_gateway: Any, wallet: Any
) -> None:
    from opengradient_shared import PaymentPolicyError, VerificationError
    from opengradient_shared.gateway.signer import TeeSigner

    base = {"model": MODEL, "private_key": key_of(wallet), "base_url": shared_gateway.url}
    settled = len(shared_gateway.ledger.entries)
    pinned = ChatOpenGradient(
        **base, settlement_mode="settle", tee_public_key=shared_gateway.public_key_pem
    )
    assert pinned.invoke("hi").response_metadata["tee_proof"]["verified"] is True
    assert [e.settlement_type for e in shared_gateway.ledger.entries[settled:]] == ["settle"]
    with pytest.raises(PaymentPolicyError):
        ChatOpenGradient(**base, allowed_networks=["eip155:8453"]).invoke("hi")
    with pytest.raises(PaymentPolicyError):
        ChatOpenGradient(**base, allowed_payees=[wallet.address]).invoke("hi")
    stranger = TeeSigner().public_key_pem  # a TEE key the gateway does not hold
    with pytest.raises(VerificationError):
        ChatOpenGradient(**base, tee_public_key=stranger).invoke("hi")
    # paid: the pinned call and the one whose proof failed (its content withheld); the two
    # calls refused by the payment policy signed nothing
    assert len(shared_gateway.ledger.entries) - settled == 2


def test_secrets_stay_out_of_repr_and_serialisation(chat: ChatOpenGradient, wallet: Any) -> None:
    secret = key_of(wallet)[2:]
    assert chat.lc_secrets == {"private_key": "OPENGRADIENT_PRIVATE_KEY"}
    text = repr(chat) + str(chat) + dumps(chat) + json.dumps(dumpd(chat), default=str)
    text += chat.model_dump_json() + repr(chat.model_dump())
    assert secret not in text and secret.upper() not in text
    assert chat._get_ls_params(stop=["x"]) == {
        "ls_provider": "opengradient", "ls_model_name": MODEL, "ls_model_type": "chat",
        "ls_temperature": 0.0, "ls_stop": ["x"],
    }  # fmt: skip


BAD_SETTINGS = [
    pytest.param({"model": "gpt-4.1-2025-04-14"}, "no provider prefix", id="unknown-model"),
    pytest.param({"private_key": None}, "OPENGRADIENT_PRIVATE_KEY", id="missing-key"),
    pytest.param(
        {"base_url": None, "streaming_url": "http://127.0.0.1:1"},
        "OPENGRADIENT_LLM_URL",
        id="streaming-url-without-url",
    ),
    pytest.param({"private_key": "0x" + "ab" * 31}, "malformed", id="short-key"),
    pytest.param({"temperature": 3}, "temperature", id="temperature"),
    pytest.param({"max_tokens": 0}, "max_tokens", id="max-tokens"),
    pytest.param({"settlement_mode": "sometimes"}, "sometimes", id="settlement"),
    pytest.param({"modle": MODEL}, "modle", id="typo-field"),
]


@pytest.mark.parametrize(("change", "named"), BAD_SETTINGS)
def test_bad_settings_fail_at_construction(
    shared_gateway: Any,
    wallet: Any,
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, Any],
    named: str,
) -> None:
    for name in ("OPENGRADIENT_PRIVATE_KEY", "OPENGRADIENT_LLM_URL"):
        monkeypatch.delenv(name, raising=False)
    fields = {"model": MODEL, "private_key": key_of(wallet), "base_url": shared_gateway.url}
    fields.update(change)
    fields = {k: v for k, v in fields.items() if v is not None}
    before = shared_gateway.request_count
    with pytest.raises(ValueError, match=named) as caught:
        ChatOpenGradient(**fields)
    assert key_of(wallet)[2:] not in str(caught.value)
    assert "ab" * 31 not in str(caught.value)
    assert shared_gateway.request_count == before


BAD_CALLS = [
    pytest.param(
        lambda m: m.invoke([HumanMessage([{"type": "image_url", "image_url": {"url": "x"}}])]),
        "image_url",
        id="image-block",
    ),
    pytest.param(
        lambda m: m.invoke([HumanMessage([{"type": "text", "text": "a"}, {"type": "file"}])]),
        "'file'",
        id="file-block",
    ),
    pytest.param(lambda m: m.invoke(42), "42", id="input-a-number"),
    pytest.param(lambda m: m.invoke([]), "messages is empty", id="no-messages"),
    pytest.param(
        lambda m: m.invoke("hi", model="gpt-4.1-2025-04-14"), "provider prefix", id="override"
    ),
    pytest.param(lambda m: m.invoke("hi", top_k=3), "top_k", id="unknown-option"),
    pytest.param(lambda m: m.bind_tools([magic_function], tool_choice="x"), "'x'", id="choice"),
    pytest.param(lambda m: m.invoke("hi", n=2), "one choice", id="n-choices"),
    pytest.param(lambda m: m.invoke("hi", top_p=1.5), "top_p", id="top-p-range"),
    pytest.param(lambda m: list(m.stream("hi", stop="END")), "stop", id="stop-string"),
]


@pytest.mark.parametrize(("act", "named"), BAD_CALLS)
def test_bad_input_is_refused_before_any_request(
    chat: ChatOpenGradient, shared_gateway: Any, act: Any, named: str
) -> None:
    before = shared_gateway.request_count
    with pytest.raises(InvalidRequestError, match=named):
        act(chat)
    assert shared_gateway.request_count == before


def test_messages_map_to_openai_dicts_both_ways() -> None:
    from langchain_core.messages import ToolMessage

    from langchain_opengradient._convert import to_openai_messages

    call = {"name": "magic_function", "args": {"input": "东京"}, "id": "c1", "type": "tool_call"}
    messages = [
        SystemMessage("be brief"),
        HumanMessage(["one ", {"type": "text", "text": "two"}], name="ann"),
        AIMessage(
            [{"type": "text", "text": "calling"}, {"type": "tool_use", "id": "c1"}],
            tool_calls=[call],
        ),
        ToolMessage([{"type": "text", "text": "5"}], tool_call_id="c1"),
    ]
    assert to_openai_messages(messages) == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "one two", "name": "ann"},
        {
            "role": "assistant",
            "content": "calling",
            "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "magic_function", "arguments": '{"input": "东京"}'}}
            ],
        },
        {"role": "tool", "content": "5", "tool_call_id": "c1"},
    ]  # fmt: skip


def test_bad_tool_arguments_become_invalid_tool_calls() -> None:
    from opengradient_shared import TextGenerationOutput

    from langchain_opengradient._convert import ai_message

    output = TextGenerationOutput(
        transaction_hash="external",
        finish_reason="tool_calls",
        chat_output={
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{oops"}},
                {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
            ],
        },
        model="gpt-4.1-2025-04-14",
    )
    message = ai_message(output, MODEL)
    assert [c["name"] for c in message.tool_calls] == ["g"]
    assert [(c["name"], c["args"]) for c in message.invalid_tool_calls] == [("f", "{oops")]
    assert message.response_metadata["model_name"] == MODEL
