"""OpenGradient (LlamaIndex) against a real LocalGateway: every entry point answers with a verified
proof and a receipt, streams add up to the plain call, callbacks and instrumentation see every
call and token, concurrency, tool calls both ways, generation 2, configuration, and bad input
refused before any request without ever showing the key."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account
from li_support import MODEL, assert_proven, key_of
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, ToolCallBlock
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.callbacks.token_counting import TokenCountingHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
)
from llama_index.core.tools import FunctionTool
from opengradient_shared import LLM, InvalidRequestError, OpenGradientError, x402SettlementMode

from llamaindex_opengradient import OpenGradient


def _user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def get_weather(city: str) -> str:
    """Current weather of a city."""
    return f"18 C and light rain in {city}"


WEATHER = FunctionTool.from_defaults(get_weather)


# ---- the eight entry points ----------------------------------------------------------------


def _last(items: Iterator[Any]) -> Any:
    out = None
    for out in items:  # noqa: B007 - the last one is wanted
        pass
    return out


async def _alast(items: Any) -> Any:
    out = None
    async for out in items:  # noqa: B007
        pass
    return out


ENTRY_POINTS: dict[str, Callable[[OpenGradient], Any]] = {
    "chat": lambda m: m.chat(_user("Hello there")),
    "complete": lambda m: m.complete("Hello there"),
    "stream_chat": lambda m: _last(m.stream_chat(_user("Hello there"))),
    "stream_complete": lambda m: _last(m.stream_complete("Hello there")),
    "achat": lambda m: asyncio.run(m.achat(_user("Hello there"))),
    "acomplete": lambda m: asyncio.run(m.acomplete("Hello there")),
    "astream_chat": lambda m: asyncio.run(_run_astream(m.astream_chat(_user("Hello there")))),
    "astream_complete": lambda m: asyncio.run(_run_astream(m.astream_complete("Hello there"))),
}


async def _run_astream(started: Any) -> Any:
    return await _alast(await started)


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_answers_with_a_verified_proof_and_one_payment(
    llm: OpenGradient, shared_gateway: Any, wallet: Any, entry: str
) -> None:
    settled = len(shared_gateway.ledger.entries)
    response = ENTRY_POINTS[entry](llm)
    text = response.text if hasattr(response, "text") else response.message.content
    assert text == "You said: Hello there"
    assert_proven(response.additional_kwargs, shared_gateway, wallet)
    (entry_paid,) = shared_gateway.ledger.entries[settled:]
    assert entry_paid.payer == wallet.address
    assert entry_paid.transaction == response.additional_kwargs["payment"]["transaction"]
    assert entry_paid.path == ("/v1/completions" if entry in ("complete", "acomplete") else
                               "/v1/chat/completions")  # fmt: skip


def test_stream_adds_up_to_chat_with_metadata_on_the_last_response_only(
    llm: OpenGradient,
) -> None:
    prompt = _user("Tell me about the quiet harbour town of Porto at dawn")
    chatted = llm.chat(prompt)
    streamed = list(llm.stream_chat(prompt))
    assert len(streamed) > 3
    assert "".join(r.delta for r in streamed) == chatted.message.content
    assert [r.message.content for r in streamed][-1] == chatted.message.content
    for i, response in enumerate(streamed):
        assert response.message.content == "".join(r.delta for r in streamed[: i + 1])
    assert not any(r.additional_kwargs for r in streamed[:-1])
    final = streamed[-1].additional_kwargs
    for key in ("usage", "finish_reason", "model"):
        assert final[key] == chatted.additional_kwargs[key]
    assert (
        final["tee_proof"]["output_hash"] == chatted.additional_kwargs["tee_proof"]["output_hash"]
    )


def test_options_reach_the_request(llm: OpenGradient) -> None:
    short = llm.chat(_user("one two three four five six"), max_tokens=3)
    assert short.message.content == "You said: one"
    assert short.additional_kwargs["finish_reason"] == "length"
    stopped = llm.chat(_user("alpha beta STOP gamma"), stop=["STOP"])
    assert stopped.message.content == "You said: alpha beta "
    shaped = llm.chat(_user("Oslo"), response_format={"type": "json_object"})
    assert shaped.message.content.startswith('{"answer":')


def test_model_settings_reach_every_call(shared_gateway: Any, wallet: Any) -> None:
    llm = OpenGradient(
        model=MODEL,
        private_key=key_of(wallet),
        base_url=shared_gateway.url,
        max_tokens=3,
        additional_kwargs={"stop": ["END"]},
        settlement_mode="settle-metadata",
    )
    settled = len(shared_gateway.ledger.entries)
    assert llm.chat(_user("a b c d")).message.content == "You said: a"
    assert llm.complete("x END y").text == "You said: x "
    kinds = {e.settlement_type for e in shared_gateway.ledger.entries[settled:]}
    assert kinds == {x402SettlementMode.SETTLE_METADATA.value}


# ---- callbacks and instrumentation -------------------------------------------------------


class _Recorder(BaseCallbackHandler):
    """A LlamaIndex callback handler that keeps every LLM event's payload."""

    def __init__(self) -> None:
        super().__init__(event_starts_to_ignore=[], event_ends_to_ignore=[])
        self.starts: list[dict[str, Any]] = []
        self.ends: list[dict[str, Any]] = []

    def on_event_start(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        parent_id: str = "",
        **kwargs: Any,
    ) -> str:
        if event_type == CBEventType.LLM:
            self.starts.append(payload or {})
        return event_id

    def on_event_end(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        **kwargs: Any,
    ) -> None:
        if event_type == CBEventType.LLM:
            self.ends.append(payload or {})

    def start_trace(self, trace_id: str | None = None) -> None:
        return None

    def end_trace(
        self, trace_id: str | None = None, trace_map: dict[str, list[str]] | None = None
    ) -> None:
        return None


class _Events(BaseEventHandler):
    """An instrumentation handler that keeps the LLM events."""

    events: list[Any] = []

    @classmethod
    def class_name(cls) -> str:
        return "TestLLMEvents"

    def handle(self, event: Any, **kwargs: Any) -> None:
        if type(event).__name__.startswith("LLM"):
            self.events.append(event)


@pytest.fixture
def events() -> Iterator[_Events]:
    """An instrumentation handler on the root dispatcher, removed after the test."""
    handler = _Events(events=[])
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    yield handler
    dispatcher.event_handlers.remove(handler)


def test_callback_handler_sees_each_call_start_and_end_with_the_proof(
    shared_gateway: Any, wallet: Any, events: _Events
) -> None:
    recorder = _Recorder()
    llm = OpenGradient(
        model=MODEL,
        private_key=key_of(wallet),
        base_url=shared_gateway.url,
        callback_manager=CallbackManager([recorder]),
    )
    llm.chat(_user("first call"))
    _last(llm.stream_chat(_user("second call")))
    llm.complete("third call")
    _last(llm.stream_complete("fourth call"))
    assert len(recorder.starts) == len(recorder.ends) == 4
    assert recorder.starts[0][EventPayload.MESSAGES][0].content == "first call"
    assert recorder.starts[2][EventPayload.PROMPT] == "third call"
    for start in recorder.starts:
        assert start[EventPayload.SERIALIZED]["model_name"] == MODEL
    answers = [
        recorder.ends[0][EventPayload.RESPONSE],
        recorder.ends[1][EventPayload.RESPONSE],
        recorder.ends[2][EventPayload.COMPLETION],
        recorder.ends[3][EventPayload.COMPLETION],
    ]
    for answer in answers:
        assert_proven(answer.additional_kwargs, shared_gateway, wallet)
    assert str(answers[1].message.content) == "You said: second call"


def test_instrumentation_sees_start_streamed_tokens_and_end(
    llm: OpenGradient, events: _Events
) -> None:
    streamed = list(llm.stream_chat(_user("Stream these words to me")))
    kinds = [type(e) for e in events.events]
    assert kinds[0] is LLMChatStartEvent and kinds[-1] is LLMChatEndEvent
    progress = [e for e in events.events if isinstance(e, LLMChatInProgressEvent)]
    assert [e.response.delta for e in progress] == [r.delta for r in streamed]
    assert "".join(e.response.delta for e in progress) == "You said: Stream these words to me"
    end = events.events[-1]
    assert end.response.additional_kwargs["tee_proof"]["verified"] is True

    events.events.clear()
    pieces = list(llm.stream_complete("Stream a completion"))
    tokens = [e.response.delta for e in events.events
              if isinstance(e, LLMCompletionInProgressEvent)]  # fmt: skip
    assert tokens == [p.delta for p in pieces] and "".join(tokens) == pieces[-1].text
    assert isinstance(events.events[-1], LLMCompletionEndEvent)


async def test_async_streams_fire_the_same_events(llm: OpenGradient, events: _Events) -> None:
    stream = await llm.astream_chat(_user("async tokens please"))
    deltas = [r.delta async for r in stream]
    progress = [e.response.delta for e in events.events if isinstance(e, LLMChatInProgressEvent)]
    assert progress == deltas and "".join(deltas) == "You said: async tokens please"
    assert isinstance(events.events[-1], LLMChatEndEvent)


def test_token_counting_handler_counts_the_reported_usage(shared_gateway: Any, wallet: Any) -> None:
    """LlamaIndex's TokenCountingHandler reads ``raw["usage"]``: it counts the gateway's figures
    (its own estimate here would count characters)."""
    counter = TokenCountingHandler(tokenizer=list)
    llm = OpenGradient(
        model=MODEL,
        private_key=key_of(wallet),
        base_url=shared_gateway.url,
        callback_manager=CallbackManager([counter]),
    )
    chatted = llm.chat(_user("count my tokens please"))
    streamed = _last(llm.stream_chat(_user("and these as well")))
    counted = [(c.prompt_token_count, c.completion_token_count) for c in counter.llm_token_counts]
    reported = [
        (
            r.additional_kwargs["usage"]["prompt_tokens"],
            r.additional_kwargs["usage"]["completion_tokens"],
        )
        for r in (chatted, streamed)
    ]
    assert counted == reported == [(4, 6), (4, 6)]


# ---- concurrency -------------------------------------------------------------------------


async def test_32_concurrent_achat_calls_are_each_verified_and_paid_once(
    llm: OpenGradient, shared_gateway: Any, wallet: Any
) -> None:
    settled = len(shared_gateway.ledger.entries)
    responses = await asyncio.gather(*(llm.achat(_user(f"question {i}")) for i in range(32)))
    assert [r.message.content for r in responses] == [f"You said: question {i}" for i in range(32)]
    for response in responses:
        assert_proven(response.additional_kwargs, shared_gateway, wallet)
    entries = shared_gateway.ledger.entries[settled:]
    assert len(entries) == 32 and {e.payer for e in entries} == {wallet.address}
    assert len({r.additional_kwargs["payment"]["transaction"] for r in responses}) == 32


# ---- tools -------------------------------------------------------------------------------


def test_tool_call_round_trip(llm: OpenGradient, shared_gateway: Any, wallet: Any) -> None:
    history = _user("What is the weather in Lisbon?")
    asked = llm.chat_with_tools([WEATHER], chat_history=history)
    (call,) = llm.get_tool_calls_from_response(asked)
    assert (call.tool_name, call.tool_kwargs) == ("get_weather", {"city": "Lisbon"})
    assert asked.additional_kwargs["finish_reason"] == "tool_calls"
    assert_proven(asked.additional_kwargs, shared_gateway, wallet)
    result = ChatMessage(
        role="tool",
        content=get_weather(**call.tool_kwargs),
        additional_kwargs={"tool_call_id": call.tool_id},
    )
    answered = llm.chat_with_tools([WEATHER], chat_history=[*history, asked.message, result])
    assert answered.message.content == "get_weather says: 18 C and light rain in Lisbon."
    assert llm.get_tool_calls_from_response(answered, error_on_no_tool_call=False) == []


def test_history_with_tool_call_blocks_only_is_understood(llm: OpenGradient) -> None:
    """A history written by another integration (ToolCallBlocks, no additional_kwargs)."""
    call = ToolCallBlock(tool_call_id="call_x", tool_name="get_weather",
                         tool_kwargs={"city": "Oslo"})  # fmt: skip
    history = [
        *_user("What is the weather in Oslo?"),
        ChatMessage(role="assistant", blocks=[call]),
        ChatMessage(role="tool", content="-3 C", additional_kwargs={"tool_call_id": "call_x"}),
    ]
    answered = llm.chat_with_tools([WEATHER], chat_history=history)
    assert answered.message.content == "get_weather says: -3 C."


def test_streamed_tool_call_ends_equal_to_the_plain_one(llm: OpenGradient) -> None:
    question = "What is the weather in Lisbon?"
    plain = llm.chat_with_tools([WEATHER], user_msg=question, tool_required=True)
    streamed = list(llm.stream_chat_with_tools([WEATHER], user_msg=question, tool_required=True))
    final = streamed[-1]
    assert (
        final.message.additional_kwargs["tool_calls"]
        == plain.message.additional_kwargs["tool_calls"]
    )
    assert llm.get_tool_calls_from_response(final) == llm.get_tool_calls_from_response(plain)
    assert final.additional_kwargs["finish_reason"] == "tool_calls"
    for partial in streamed[:-1]:  # the agent reads every partial response
        llm.get_tool_calls_from_response(partial, error_on_no_tool_call=False)


def test_forced_tool_and_predict_and_call(llm: OpenGradient) -> None:
    def get_time(city: str) -> str:
        """Current local time of a city."""
        return f"07:45 in {city}"

    timer = FunctionTool.from_defaults(get_time)
    forced = llm.chat_with_tools([WEATHER, timer], user_msg="Lisbon please", tool_choice="get_time")
    assert [c.tool_name for c in llm.get_tool_calls_from_response(forced)] == ["get_time"]
    called = llm.predict_and_call([WEATHER, timer], user_msg="What is the weather in Rome?")
    assert called.response == "18 C and light rain in Rome"
    assert called.sources[0].tool_name == "get_weather"


# ---- generation 2 ------------------------------------------------------------------------


async def test_generation_2_gateway_works_unchanged(gateway_v2: Any, account: Any) -> None:
    llm = OpenGradient(model=MODEL, private_key=key_of(account), base_url=gateway_v2.url)
    first = llm.chat(_user("Hello v2"))
    second = _last(llm.stream_chat(_user("Hello again v2")))
    third = await llm.achat(_user("Hello async v2"))
    assert third.message.content == "You said: Hello async v2"
    for response in (first, second, third):
        assert_proven(response.additional_kwargs, gateway_v2, account)
        assert response.additional_kwargs["payment"]["x402_version"] == 2
    sessions = {r.additional_kwargs["payment"]["session_id"] for r in (first, second, third)}
    assert len(sessions) == 1  # one upto session pays for all three
    assert second.additional_kwargs["payment"]["new_payment"] is False


# ---- configuration -----------------------------------------------------------------------


def test_identity_metadata_and_import_path(llm: OpenGradient) -> None:
    from llama_index.llms.opengradient import OpenGradient as FromLlamaIndexPath

    assert FromLlamaIndexPath is OpenGradient
    assert OpenGradient.class_name() == "OpenGradient"
    meta = llm.metadata
    assert (meta.context_window, meta.num_output, meta.model_name) == (1_047_576, -1, MODEL)
    assert meta.is_chat_model and meta.is_function_calling_model
    assert isinstance(llm.transport, LLM)


def test_context_window_and_output_tokens_are_overridable(shared_gateway: Any, wallet: Any) -> None:
    llm = OpenGradient(
        model="acme/unlisted",
        private_key=key_of(wallet),
        base_url=shared_gateway.url,
        max_tokens=64,
    )
    assert (llm.metadata.context_window, llm.metadata.num_output) == (3900, 64)
    llm = OpenGradient(model=MODEL, client=llm.transport, context_window=8192)
    assert llm.metadata.context_window == 8192


def test_an_existing_transport_is_used_as_is(
    llm: OpenGradient, shared_gateway: Any, wallet: Any
) -> None:
    reused = OpenGradient(model=MODEL, client=llm.transport)
    assert reused.transport is llm.transport
    assert_proven(reused.chat(_user("reuse")).additional_kwargs, shared_gateway, wallet)
    with pytest.raises(ValueError, match="client must be an opengradient_shared.LLM"):
        OpenGradient(model=MODEL, client=object())


def test_api_key_is_an_alias_of_private_key(shared_gateway: Any, wallet: Any) -> None:
    llm = OpenGradient(model=MODEL, api_key=key_of(wallet), base_url=shared_gateway.url)
    assert llm.chat(_user("alias")).additional_kwargs["payment"]["payer"] == wallet.address


def test_configuration_from_the_environment(
    shared_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    payer = Account.create()
    monkeypatch.setenv("OPENGRADIENT_PRIVATE_KEY", key_of(payer))
    monkeypatch.setenv("OPENGRADIENT_LLM_URL", shared_gateway.url)
    monkeypatch.setenv("OPENGRADIENT_MAX_PAYMENT", "5000")
    llm = OpenGradient(model=MODEL)
    assert llm.max_payment == 5000 and llm.transport.payment_policy.max_payment == 5000
    assert llm.chat(_user("from env")).additional_kwargs["payment"]["payer"] == payer.address
    monkeypatch.setenv("OPENGRADIENT_MAX_PAYMENT", "1")
    with pytest.raises(OpenGradientError, match="1"):  # the cap is enforced before paying
        OpenGradient(model=MODEL).chat(_user("too cheap"))


# ---- bad input, refused before any request -----------------------------------------------

SECRET_ACCOUNT = Account.create()
SECRET = key_of(SECRET_ACCOUNT)


def _no_key(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc)) + repr(exc)
    assert SECRET[2:] not in text and SECRET[2:].upper() not in text


CONSTRUCTION_CASES: list[Any] = [
    pytest.param(
        {"model": "gpt-4.1-2025-04-14"},
        ["gpt-4.1-2025-04-14", "TEE_LLM.GPT_4_1_2025_04_14"],
        id="model-without-provider",
    ),
    pytest.param({"temperature": 2.5}, ["temperature", "2.5"], id="temperature-high"),
    pytest.param({"temperature": float("nan")}, ["temperature", "nan"], id="temperature-nan"),
    pytest.param({"max_tokens": 0}, ["max_tokens", "0"], id="max-tokens-zero"),
    pytest.param({"context_window": -5}, ["context_window", "-5"], id="context-window"),
    pytest.param({"timeout": 0}, ["timeout", "0"], id="timeout-zero"),
    pytest.param({"max_payment": -1}, ["max_payment", "-1"], id="max-payment-negative"),
    pytest.param({"base_url": "localhost:8000"}, ["base_url", "localhost:8000"], id="url-scheme"),
    pytest.param({"streaming_url": "ftp://x"}, ["streaming_url", "ftp://x"], id="stream-url"),
    pytest.param({"private_key": SECRET[:-4]}, ["private_key", "malformed"], id="short-key"),
    pytest.param({"private_key": SECRET[:-1] + "z"}, ["private_key"], id="non-hex-key"),
    pytest.param({"settlement_mode": "sometimes"}, ["sometimes"], id="settlement-unknown"),
    pytest.param({"verification": "maybe"}, ["verification"], id="verification-unknown"),
    pytest.param({"additional_kwargs": {"seed": 7}}, ["seed"], id="extra-unknown"),
    pytest.param({"additional_kwargs": {"stop": "END"}}, ["stop", "END"], id="extra-stop-str"),
    pytest.param(
        {"additional_kwargs": {"response_format": {"type": "yaml"}}},
        ["response_format", "yaml"],
        id="extra-format",
    ),
    pytest.param({"allowed_networks": ["mars-net"]}, ["mars-net"], id="network-unknown"),
    pytest.param({"temprature": 0.5}, ["temprature"], id="misspelt-field"),
]


@pytest.mark.parametrize(("change", "names"), CONSTRUCTION_CASES)
def test_bad_settings_fail_at_construction_naming_the_value(
    shared_gateway: Any, change: dict[str, Any], names: list[str]
) -> None:
    count = shared_gateway.request_count
    fields = {"model": MODEL, "private_key": SECRET, "base_url": shared_gateway.url, **change}
    with pytest.raises(ValueError) as caught:
        OpenGradient(**fields)
    for name in names:
        assert name in str(caught.value)
    _no_key(caught.value)
    assert shared_gateway.request_count == count


@pytest.mark.parametrize("missing", ["OPENGRADIENT_PRIVATE_KEY"])
def test_missing_key_says_where_to_set_it(
    shared_gateway: Any, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setenv("OPENGRADIENT_LLM_URL", shared_gateway.url)
    monkeypatch.setenv("OPENGRADIENT_PRIVATE_KEY", SECRET)
    monkeypatch.delenv(missing)
    with pytest.raises(ValueError) as caught:
        OpenGradient(model=MODEL)
    assert missing in str(caught.value)
    _no_key(caught.value)


def _bad_tool(m: OpenGradient) -> Any:
    return m.chat(_user("hi"), tools=[{"type": "function", "function": {"name": 7}}])


CALL_CASES: list[Any] = [
    pytest.param(lambda m: m.chat([ChatMessage(role="chatbot", content="hi")]), ["chatbot"],
                 id="role-unknown"),
    pytest.param(
        lambda m: m.chat([ChatMessage(role="user", blocks=[ImageBlock(url="http://x/y.png")])]),
        ["image"],
        id="image-block",
    ),
    pytest.param(_bad_tool, ["name"], id="tool-schema"),
    pytest.param(lambda m: m.chat(_user("hi"), tools=[WEATHER.metadata.to_openai_tool()],
                                  tool_choice="get_time"), ["get_time"], id="tool-choice"),
    pytest.param(lambda m: m.chat(_user("hi"), seed=3), ["seed"], id="unknown-option"),
    pytest.param(lambda m: m.chat(_user("hi"), temperature=7), ["temperature", "7"],
                 id="temperature-per-call"),
    pytest.param(lambda m: m.complete("hi", response_format={"type": "json_object"}),
                 ["response_format"], id="complete-option"),
    pytest.param(lambda m: m.complete(42), ["prompt"], id="prompt-not-text"),
    pytest.param(lambda m: list(m.stream_chat([ChatMessage(role="model", content="x")])),
                 ["model"], id="stream-role"),
    pytest.param(lambda m: list(m.stream_chat(_user("hi"), max_tokens=0)), ["max_tokens"],
                 id="stream-max-tokens"),
    pytest.param(lambda m: asyncio.run(m.achat([ChatMessage(role="tool", content="x")])),
                 ["tool_call_id"], id="async-tool-without-id"),
    pytest.param(lambda m: asyncio.run(m.astream_chat(_user("hi"), stop="END")), ["stop"],
                 id="async-stream-stop"),
]  # fmt: skip


@pytest.mark.parametrize(("act", "names"), CALL_CASES)
def test_bad_input_is_refused_before_any_request(
    shared_gateway: Any, act: Callable[[OpenGradient], Any], names: list[str]
) -> None:
    llm = OpenGradient(model=MODEL, private_key=SECRET, base_url=shared_gateway.url)
    count, settled = shared_gateway.request_count, len(shared_gateway.ledger.entries)
    with pytest.raises((InvalidRequestError, ValueError)) as caught:
        act(llm)
    for name in names:
        assert name in str(caught.value)
    _no_key(caught.value)
    assert shared_gateway.request_count == count
    assert len(shared_gateway.ledger.entries) == settled


@pytest.mark.parametrize("form", ["hex", "bytes"])
def test_repr_str_and_serialisations_never_show_the_key(shared_gateway: Any, form: str) -> None:
    key: Any = SECRET if form == "hex" else bytes(SECRET_ACCOUNT.key)
    llm = OpenGradient(model=MODEL, private_key=key, base_url=shared_gateway.url)
    assert llm.transport.wallet_address == SECRET_ACCOUNT.address
    text = " ".join(
        [repr(llm), str(llm), llm.model_dump_json(), llm.to_json(), repr(llm.to_dict()),
         repr(llm.model_dump()), repr(llm.to_payload())]
    )  # fmt: skip
    assert SECRET[2:] not in text and SECRET[2:].upper() not in text
    assert "private_key" not in llm.to_dict()
