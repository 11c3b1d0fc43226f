"""Code written for ChatOpenAI carries over to ChatOpenGradient (issue 16), against a real
LocalGateway: no ``max_tokens`` cap unless set and a visible cut, ChatOpenAI's field names
forwarded or refused in one message, ``stream_usage``, ``parallel_tool_calls=False``, a
``/v1`` base URL, dead-URL errors, token counting without ``transformers``, ``deepcopy`` and
``pickle``, one transport shared by copies, and ``init_chat_model``'s alternative."""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import pickle
import socket
import sys
import warnings
import weakref
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    trim_messages,
)
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import ConfigurableField
from langchain_core.tools import tool
from lc_support import MODEL, key_of
from opengradient_shared import LLM, NetworkError
from opengradient_shared.protocol import CHAT_PATH, COMPLETION_PATH

from langchain_opengradient import ChatOpenGradient, CutAnswerWarning, OpenGradientLLM
from langchain_opengradient._convert import first_tool_call_only
from langchain_opengradient.llms import UNSET_COMPLETION_MAX_TOKENS

OTHER_MODEL = "anthropic/claude-4.0-sonnet"


@tool
def magic_function(input: int) -> int:  # noqa: A002 - the suite's well-known tool
    """Apply a magic function to an input."""
    return input + 2


@pytest.fixture
def bodies(shared_gateway: Any, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The JSON body of every inference request the gateway receives (a spy around the real
    handler: the request is still answered by it)."""
    seen: list[dict[str, Any]] = []
    real = shared_gateway.handle

    def recording(path: str, headers: Any, raw: bytes) -> Any:
        if path in (CHAT_PATH, COMPLETION_PATH):
            seen.append(json.loads(raw))
        return real(path, headers, raw)

    monkeypatch.setattr(shared_gateway, "handle", recording)
    return seen


def _base(gateway: Any, wallet: Any) -> dict[str, Any]:
    return {"model": MODEL, "private_key": key_of(wallet), "base_url": gateway.url}


def _merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


# ---- max_tokens: no cap unless set, and a visible cut --------------------------------------


def test_no_max_tokens_is_sent_unless_set(
    shared_gateway: Any, wallet: Any, bodies: list[dict[str, Any]]
) -> None:
    chat = ChatOpenGradient(**_base(shared_gateway, wallet))
    llm = OpenGradientLLM(**_base(shared_gateway, wallet))
    assert chat.max_tokens is None and llm.max_tokens is None
    message = chat.invoke("hi")
    _merge(list(chat.stream("hi")))
    assert bodies and all("max_tokens" not in body for body in bodies)
    # completions: the endpoint's schema default is 16 tokens, so None sends the chat cap
    del bodies[:]
    llm.invoke("hi")
    assert {body["max_tokens"] for body in bodies} == {UNSET_COMPLETION_MAX_TOKENS}
    # the proof's request hash is that of the body without max_tokens
    assert message.response_metadata["tee_proof"]["verified"] is True
    del bodies[:]
    capped = ChatOpenGradient(**_base(shared_gateway, wallet), max_completion_tokens=7)
    assert capped.max_tokens == 7
    capped.invoke("hi")
    capped.invoke("hi", max_tokens=9)
    with LLM(wallet, shared_gateway.url) as seed_api:  # the seed API keeps its default
        seed_api.chat(MODEL, [{"role": "user", "content": "hi"}])
    sent = [body["max_tokens"] for body in bodies]
    assert sent[:2] == [7, 9] and set(sent[2:]) == {100}  # (an unpaid try, then the paid one)


def test_a_cut_answer_is_visible_and_warns_once_per_model(shared_gateway: Any, wallet: Any) -> None:
    prompt = "Tell me about the quiet harbour town of Porto at dawn"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chat = ChatOpenGradient(**_base(shared_gateway, wallet), max_tokens=2)
        invoked = chat.invoke(prompt)
        chunks = list(chat.stream(prompt))
        chat.invoke(prompt)
        assert invoked.content == "You said:"
        assert invoked.response_metadata["finish_reason"] == "length"
        assert chunks[-1].response_metadata["finish_reason"] == "length"
        assert len([w for w in caught if w.category is CutAnswerWarning]) == 1
        assert "max_tokens=2" in str(next(w.message for w in caught))
        llm = OpenGradientLLM(**_base(shared_gateway, wallet), max_tokens=2)
        result = llm.generate([prompt])
        assert result.generations[0][0].generation_info["finish_reason"] == "length"  # type: ignore[index]
        whole = ChatOpenGradient(**_base(shared_gateway, wallet)).invoke(prompt)
        assert whole.response_metadata["finish_reason"] == "stop"
        assert len([w for w in caught if w.category is CutAnswerWarning]) == 2


# ---- ChatOpenAI's names --------------------------------------------------------------------


def test_chatopenai_style_construction_is_forwarded_and_still_verifies(
    shared_gateway: Any, wallet: Any, bodies: list[dict[str, Any]]
) -> None:
    chat = ChatOpenGradient(
        model_name=MODEL,
        api_key=key_of(wallet),
        base_url=shared_gateway.url + "/v1/",
        max_completion_tokens=50,
        request_timeout=30,
        top_p=0.5,
        n=1,
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=-0.2,
        user="user-1",
        model_kwargs={"logit_bias": {"50256": -100}},
        default_headers=None,
    )
    assert chat.model_name == chat.model == MODEL
    assert chat.base_url == shared_gateway.url
    assert chat.max_tokens == 50 and chat.timeout == 30
    assert chat._identifying_params["top_p"] == 0.5  # in traces, next to temperature
    message = chat.invoke("hi", seed=8)
    full = _merge(list(chat.stream("hi")))
    sent = {
        "top_p": 0.5, "n": 1, "presence_penalty": 0.1, "frequency_penalty": -0.2,
        "user": "user-1", "logit_bias": {"50256": -100.0}, "max_tokens": 50,
    }  # fmt: skip
    for body in bodies:  # (an unpaid first try, then paid ones)
        assert {key: body[key] for key in sent} == sent
    assert [body["seed"] for body in bodies][-2:] == [8, 7]
    # the fields outside the TEE request hash leave verification intact
    for answer in (message, full):
        assert answer.response_metadata["tee_proof"]["verified"] is True
        assert answer.content == "You said: hi"


UNSUPPORTED = [
    pytest.param({"top_k": 3}, "does not take top_k.*It takes: model, temperature", id="top-k"),
    pytest.param({"default_headers": {"X-Team": "a"}}, "custom headers", id="headers"),
    pytest.param({"organization": "org-1"}, "by wallet", id="organization"),
    pytest.param(
        {"model_kwargs": {"top_k": 1}}, "model_kwargs: unsupported.*top_k.*top_p", id="kwargs"
    ),
    pytest.param({"model_kwargs": {"temperature": 1}}, "own setting", id="kwargs-field"),
    pytest.param({"top_p": 0.5, "model_kwargs": {"top_p": 0.2}}, "twice", id="twice"),
    pytest.param({"n": 2}, "one choice", id="n"),
    pytest.param({"presence_penalty": 3}, "presence_penalty", id="penalty"),
    pytest.param({"base_url": "{url}/v1/chat/completions"}, "endpoint", id="endpoint"),
]


@pytest.mark.parametrize(("change", "named"), UNSUPPORTED)
def test_unsupported_settings_are_refused_in_one_message(
    shared_gateway: Any, wallet: Any, change: dict[str, Any], named: str
) -> None:
    fields = {**_base(shared_gateway, wallet), **change}
    if isinstance(fields["base_url"], str):
        fields["base_url"] = fields["base_url"].format(url=shared_gateway.url)
    before = shared_gateway.request_count
    with pytest.raises(ValueError, match=named) as caught:
        ChatOpenGradient(**fields)
    assert getattr(caught.value, "error_count", lambda: 1)() == 1
    assert "Extra inputs are not permitted" not in str(caught.value)
    assert key_of(wallet)[2:] not in str(caught.value)
    assert shared_gateway.request_count == before


def test_stream_usage_false_drops_usage_from_the_stream(shared_gateway: Any, wallet: Any) -> None:
    quiet = ChatOpenGradient(**_base(shared_gateway, wallet), stream_usage=False)
    chunks = list(quiet.stream("hi"))
    assert all(chunk.usage_metadata is None for chunk in chunks)
    assert chunks[-1].response_metadata["tee_proof"]["verified"] is True
    assert _merge(list(quiet.stream("hi", stream_usage=True))).usage_metadata is not None
    assert quiet.invoke("hi").usage_metadata is not None  # invoke keeps its usage


def test_parallel_tool_calls_false_is_accepted(chat: ChatOpenGradient) -> None:
    model = chat.bind_tools([magic_function], tool_choice="any", parallel_tool_calls=False)
    message = model.invoke("What is magic_function(3)?")
    assert [call["args"] for call in message.tool_calls] == [{"input": 3}]
    full = _merge(list(model.stream("What is magic_function(3)?")))
    assert [call["args"] for call in full.tool_calls] == [{"input": 3}]


def test_parallel_tool_calls_false_keeps_the_first_call() -> None:
    """The gateway has no switch for it (the local model never calls two tools at once), so
    the adapter keeps the first call: checked here on a two-call answer and stream."""
    calls = [
        {"name": "f", "args": {"a": 1}, "id": "c1", "type": "tool_call"},
        {"name": "g", "args": {}, "id": "c2", "type": "tool_call"},
    ]
    kept = first_tool_call_only(AIMessage("", tool_calls=calls, response_metadata={"x": 1}))
    assert [c["id"] for c in kept.tool_calls] == ["c1"]
    assert kept.response_metadata == {"x": 1, "dropped_tool_calls": 1}
    single = AIMessage("", tool_calls=calls[:1])
    assert first_tool_call_only(single) is single
    shape = ChatOpenGradient.model_construct(stream_usage=True)._chunk_shaper(
        {"parallel_tool_calls": False}
    )
    pieces = [
        {"name": "f", "args": '{"a"', "id": "c1", "index": 0, "type": "tool_call_chunk"},
        {"name": "g", "args": "{}", "id": "c2", "index": 1, "type": "tool_call_chunk"},
        {"name": None, "args": ": 1}", "id": None, "index": 0, "type": "tool_call_chunk"},
    ]
    shaped = [
        shape(ChatGenerationChunk(message=AIMessageChunk("", tool_call_chunks=[piece])))
        for piece in pieces
    ]
    merged = _merge([s.message for s in shaped])  # type: ignore[misc]
    assert [(c["id"], c["args"]) for c in merged.tool_calls] == [("c1", {"a": 1})]


# ---- URLs ----------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_dead_url_error_names_the_url_asked_for(wallet: Any) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    chat = ChatOpenGradient(model=MODEL, private_key=key_of(wallet), base_url=url + "/v1")
    chat = chat.model_copy(update={"max_retries": 0})
    for call in (lambda: chat.invoke("hi"), lambda: asyncio.run(chat.ainvoke("hi"))):
        with pytest.raises(NetworkError) as caught:
            call()
        text = str(caught.value)
        assert f"could not get an answer from {url} " in text
        assert "/signing-key" not in text and "Pool" not in text and "Max retries" not in text


# ---- token counting without transformers ---------------------------------------------------


def test_token_counting_needs_no_transformers(
    chat: ChatOpenGradient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)  # importing it now fails
    text = "Tell me about the quiet harbour town of Porto at dawn"
    assert chat.get_num_tokens(text) == len(chat.get_token_ids(text)) == 12  # harbour: 2
    assert chat.get_token_ids(text) == chat.get_token_ids(text)
    assert chat.get_num_tokens("internationalization") == 4  # six letters a token, begun
    assert chat.get_num_tokens(text + " " + text) == 2 * chat.get_num_tokens(text)
    system, question = SystemMessage("be brief"), HumanMessage(text)
    # 3 per message + role + content, and 3 priming the reply
    expected = 3 + (3 + 1 + 2) + (3 + 1 + 12)
    assert chat.get_num_tokens_from_messages([system, question]) == expected
    history = [system, HumanMessage("an old question " * 20), AIMessage("an old answer"), question]
    trimmed = trim_messages(
        history, max_tokens=40, token_counter=chat, strategy="last", include_system=True
    )
    assert trimmed == [system, history[2], question]
    counted = ChatOpenGradient(**{**chat.model_dump(), "private_key": chat.private_key})
    counted.custom_get_token_ids = lambda text: [1] * len(text)
    assert counted.get_num_tokens("abc") == 3


def test_tool_calls_and_tools_count_too(chat: ChatOpenGradient) -> None:
    call = {"name": "magic_function", "args": {"input": 3}, "id": "c1", "type": "tool_call"}
    plain = chat.get_num_tokens_from_messages([AIMessage("")])
    with_call = chat.get_num_tokens_from_messages(
        [AIMessage("", tool_calls=[call]), ToolMessage("5", tool_call_id="c1")]
    )
    assert with_call > plain + 3
    tools = [{"type": "function", "function": {"name": "magic_function", "parameters": {}}}]
    assert chat.get_num_tokens_from_messages([AIMessage("")], tools=tools) > plain


# ---- copies and pickling -------------------------------------------------------------------


def test_deepcopy_works_and_shares_the_transport_and_pickle_refuses(
    chat: ChatOpenGradient, wallet: Any
) -> None:
    secret = key_of(wallet)[2:]
    twin = copy.deepcopy(chat)
    assert twin is not chat and twin._llm is chat._llm
    assert twin.private_key is not None
    assert twin.private_key.get_secret_value() == key_of(wallet)
    assert twin.invoke("hi").response_metadata["tee_proof"]["verified"] is True
    assert secret not in repr(twin) + str(twin)
    llm = OpenGradientLLM(model=MODEL, client=chat._llm)
    assert copy.deepcopy(llm)._llm is chat._llm
    for model in (chat, twin, llm):
        with pytest.raises(TypeError, match="cannot be pickled") as caught:
            pickle.dumps(model)
        assert secret not in str(caught.value)


# ---- one transport for models that share key, URL and policy ------------------------------


def test_configurable_copies_pay_one_request_per_call(shared_gateway: Any, wallet: Any) -> None:
    chat = ChatOpenGradient(**_base(shared_gateway, wallet))
    chat.invoke("warm up")  # the transport learns the terms and the TEE key
    configurable = chat.configurable_fields(
        temperature=ConfigurableField(id="temperature"), model=ConfigurableField(id="model")
    )
    before = shared_gateway.request_count
    for temperature in (0.1, 0.2, 0.3):
        answer = configurable.with_config(configurable={"temperature": temperature}).invoke("hi")
        assert answer.response_metadata["tee_proof"]["verified"] is True
    configurable.with_config(configurable={"model": OTHER_MODEL}).invoke("hi")
    chat.invoke("hi", model=OTHER_MODEL)
    copy.deepcopy(chat).invoke("hi")
    ChatOpenGradient(**_base(shared_gateway, wallet)).invoke("hi")  # a new model, same settings
    assert shared_gateway.request_count - before == 7


def test_configurable_copies_reuse_the_generation_2_session(gateway_v2: Any, wallet: Any) -> None:
    chat = ChatOpenGradient(**_base(gateway_v2, wallet))
    chat.invoke("warm up")
    configurable = chat.configurable_fields(temperature=ConfigurableField(id="temperature"))
    before = gateway_v2.request_count
    for temperature in (0.1, 0.2):
        configurable.with_config(configurable={"temperature": temperature}).invoke("hi")
    assert gateway_v2.request_count - before == 2


def test_transports_are_shared_by_settings_and_collected_with_their_models(
    shared_gateway: Any, wallet: Any
) -> None:
    from llamaindex_opengradient import OpenGradient

    base = _base(shared_gateway, wallet)
    chat = ChatOpenGradient(**base)
    spelled = {**base, "private_key": key_of(wallet)[2:].upper()}  # the same key, respelled
    assert ChatOpenGradient(**spelled)._llm is chat._llm
    assert OpenGradientLLM(**base)._llm is chat._llm
    assert OpenGradient(**base)._llm is chat._llm  # LlamaIndex builds through the same cache
    for different in ({"max_payment": 5000}, {"verification": "warn"}, {"timeout": 12.5}):
        assert ChatOpenGradient(**base, **different)._llm is not chat._llm
    from eth_account import Account

    stranger = Account.create()
    assert ChatOpenGradient(**{**base, "private_key": key_of(stranger)})._llm is not chat._llm
    lone = ChatOpenGradient(**base, timeout=17.25)
    transport = weakref.ref(lone._llm)
    del lone
    gc.collect()
    assert transport() is None
    rebuilt = ChatOpenGradient(**base, timeout=17.25)
    assert rebuilt.invoke("hi").response_metadata["tee_proof"]["verified"] is True


# ---- init_chat_model / create_agent ---------------------------------------------------------


def test_init_chat_model_has_a_closed_list_and_the_documented_alternatives_work(
    shared_gateway: Any, wallet: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain.agents import create_agent
    from langchain.chat_models import init_chat_model

    with pytest.raises(ValueError, match="Unsupported"):
        init_chat_model(MODEL, model_provider="opengradient")
    with pytest.raises(ValueError, match="provider"):
        init_chat_model("opengradient:" + MODEL)
    monkeypatch.setenv("OPENGRADIENT_PRIVATE_KEY", key_of(wallet))
    monkeypatch.setenv("OPENGRADIENT_LLM_URL", shared_gateway.url)
    # README "Coming from ChatOpenAI": the one-line alternatives
    agent = create_agent(ChatOpenGradient(model=MODEL), [magic_function])
    state = agent.invoke({"messages": [HumanMessage("What is magic_function(3)?")]})
    assert state["messages"][-1].content == "magic_function says: 5."
    model = ChatOpenGradient(model=MODEL).configurable_fields(model=ConfigurableField(id="model"))
    answer = model.invoke("hi", config={"configurable": {"model": OTHER_MODEL}})
    assert answer.response_metadata["model_name"] == OTHER_MODEL
