"""Bad input gets a clear error that names the bad value, before anything is signed or sent (the
gateway's request counter and the signature spy are unchanged), and never echoes a secret."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness import MESSAGES, MODEL, adapter
from opengradient_shared import LLM, InvalidRequestError, OpenGradientError

FUNCTION = {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}


@pytest.fixture
def untouched(gateway: Any, spy: Any) -> Iterator[None]:
    """Assert that the test sent nothing to the gateway and signed nothing."""
    count = gateway.request_count
    yield
    assert gateway.request_count == count, "a request reached the gateway"
    assert spy.calls == 0, "a payment was signed"
    assert gateway.ledger.entries == []


def _assert_names(exc: BaseException, *names: str) -> None:
    text = str(exc)
    for name in names:
        assert name in text, f"{text!r} does not name {name!r}"


# ---- LLM.chat / LLM.completion arguments ---------------------------------------------------

CHAT_CASES: list[Any] = [
    pytest.param(
        {"model": "gpt-4.1-2025-04-14"}, ["gpt-4.1-2025-04-14"], id="model-without-provider"
    ),
    pytest.param({"model": 42}, ["model", "42"], id="model-not-a-string"),
    pytest.param({"model": ""}, ["model"], id="model-empty"),
    pytest.param({"messages": []}, ["messages"], id="messages-empty"),
    pytest.param({"messages": "hello"}, ["messages"], id="messages-a-string"),
    pytest.param({"messages": [["user", "hi"]]}, ["message"], id="message-not-a-dict"),
    pytest.param({"messages": [{"content": "hi"}]}, ["role"], id="message-without-role"),
    pytest.param(
        {"messages": [{"role": "developer", "content": "hi"}]}, ["developer"], id="role-unknown"
    ),
    pytest.param({"messages": [{"role": 7, "content": "hi"}]}, ["role"], id="role-not-a-string"),
    pytest.param(
        {"messages": [{"role": "user", "content": 42}]}, ["content"], id="content-not-text"
    ),
    pytest.param(
        {"messages": [{"role": "tool", "content": "42"}]}, ["tool_call_id"], id="tool-without-id"
    ),
    pytest.param(
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {}}}
                    ],
                }
            ]
        },
        ["arguments"],
        id="tool-call-arguments-not-json-text",
    ),
    pytest.param({"tools": "search"}, ["tools"], id="tools-not-a-list"),
    pytest.param({"tools": [{"type": "function"}]}, ["function"], id="tool-without-function"),
    pytest.param(
        {"tools": [{"type": "function", "function": {"parameters": {}}}]},
        ["name"],
        id="tool-without-name",
    ),
    pytest.param(
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]},
        ["parameters"],
        id="tool-parameters-not-a-schema",
    ),
    pytest.param({"tools": [{"type": "retrieval"}]}, ["retrieval"], id="tool-type-unknown"),
    pytest.param(
        {"tools": [FUNCTION], "tool_choice": "sometimes"}, ["sometimes"], id="tool-choice-unknown"
    ),
    pytest.param({"max_tokens": 0}, ["max_tokens", "0"], id="max-tokens-zero"),
    pytest.param({"max_tokens": -5}, ["max_tokens", "-5"], id="max-tokens-negative"),
    pytest.param({"max_tokens": "100"}, ["max_tokens"], id="max-tokens-a-string"),
    pytest.param({"temperature": -0.5}, ["temperature", "-0.5"], id="temperature-negative"),
    pytest.param({"temperature": 7.0}, ["temperature", "7"], id="temperature-too-high"),
    pytest.param({"temperature": "hot"}, ["temperature"], id="temperature-a-string"),
    pytest.param({"stop_sequence": "END"}, ["stop"], id="stop-a-string"),
    pytest.param({"stop_sequence": [1, 2]}, ["stop"], id="stop-not-strings"),
    pytest.param({"x402_settlement_mode": "sometimes"}, ["sometimes"], id="settlement-unknown"),
    pytest.param({"response_format": {"type": "xml"}}, ["xml"], id="response-format-unknown"),
]


@pytest.mark.parametrize(("change", "names"), CHAT_CASES)
def test_bad_chat_argument_is_refused_before_any_request(
    gateway: Any, make_llm: Any, untouched: None, change: dict[str, Any], names: list[str]
) -> None:
    llm = make_llm(gateway.url)
    arguments: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, **change}
    with pytest.raises(InvalidRequestError) as caught:
        llm.chat(**arguments)
    _assert_names(caught.value, *names)


@pytest.mark.parametrize(("change", "names"), CHAT_CASES[:4] + CHAT_CASES[-6:-1])
async def test_bad_achat_argument_is_refused_before_any_request(
    gateway: Any, make_llm: Any, untouched: None, change: dict[str, Any], names: list[str]
) -> None:
    llm = make_llm(gateway.url)
    arguments: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, **change}
    with pytest.raises(InvalidRequestError) as caught:
        await llm.achat(**arguments)
    _assert_names(caught.value, *names)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        pytest.param({"prompt": 42}, ["prompt"], id="prompt-not-text"),
        pytest.param(
            {"model": "gpt-4.1-2025-04-14"}, ["gpt-4.1-2025-04-14"], id="model-without-provider"
        ),
        pytest.param({"max_tokens": 0}, ["max_tokens"], id="max-tokens-zero"),
        pytest.param({"stop_sequence": "END"}, ["stop"], id="stop-a-string"),
    ],
)
def test_bad_completion_argument_is_refused_before_any_request(
    gateway: Any, make_llm: Any, untouched: None, change: dict[str, Any], names: list[str]
) -> None:
    llm = make_llm(gateway.url)
    with pytest.raises(InvalidRequestError) as caught:
        llm.completion(**{"model": MODEL, "prompt": "Once upon a time", **change})
    _assert_names(caught.value, *names)


# ---- LLM construction ------------------------------------------------------------------


def _build(gateway: Any, account: Any, **change: Any) -> LLM:
    arguments: dict[str, Any] = {"wallet_account": account, "og_llm_server_url": gateway.url}
    arguments.update(change)
    return LLM(**arguments)


CONSTRUCTION_CASES: list[Any] = [
    pytest.param({"og_llm_server_url": "127.0.0.1:8000"}, ["127.0.0.1:8000"], id="url-no-scheme"),
    pytest.param({"og_llm_server_url": "ftp://host"}, ["ftp://host"], id="url-wrong-scheme"),
    pytest.param({"og_llm_server_url": ""}, ["og_llm_server_url"], id="url-empty"),
    pytest.param(
        {"og_llm_streaming_server_url": "localhost"}, ["localhost"], id="stream-url-no-scheme"
    ),
    pytest.param({"timeout": 0}, ["timeout"], id="timeout-zero"),
    pytest.param({"max_retries": -1}, ["max_retries"], id="retries-negative"),
    pytest.param({"max_payment": -1}, ["max_payment"], id="cap-negative"),
    pytest.param({"verification": "maybe"}, ["maybe"], id="verification-unknown"),
    pytest.param({"max_validity_seconds": 0}, ["max_validity_seconds"], id="validity-zero"),
    pytest.param({"allowed_networks": ("narnia",)}, ["narnia"], id="network-unknown"),
    pytest.param({"tee_public_key": "not a pem"}, ["tee_public_key"], id="tee-key-not-pem"),
]


@pytest.mark.parametrize(("change", "names"), CONSTRUCTION_CASES)
def test_bad_client_option_is_refused_at_construction(
    gateway: Any, account: Any, untouched: None, change: dict[str, Any], names: list[str]
) -> None:
    with pytest.raises((InvalidRequestError, ValueError)) as caught:
        _build(gateway, account, **change)
    _assert_names(caught.value, *names)


SECRET = "0x" + "5e" * 31 + "zz"  # a malformed key: its text must not be echoed


@pytest.mark.parametrize(
    "wallet",
    [
        pytest.param(None, id="none"),
        pytest.param(SECRET, id="malformed-key-string"),
        pytest.param(b"\x01\x02", id="short-bytes"),
        pytest.param(42, id="a-number"),
    ],
)
def test_bad_wallet_is_refused_at_construction_without_echo(
    gateway: Any, untouched: None, wallet: Any
) -> None:
    with pytest.raises((OpenGradientError, ValueError, TypeError)) as caught:
        LLM(wallet, gateway.url)
    text = str(caught.value)
    assert "wallet" in text.lower() or "key" in text.lower() or "account" in text.lower()
    assert SECRET not in text and SECRET[2:] not in text


# ---- adapters --------------------------------------------------------------------------


def _key(account: Any) -> str:
    return "0x" + bytes(account.key).hex()


def _lc(**fields: Any) -> Callable[[], Any]:
    lc = adapter("langchain_opengradient")
    return lambda: lc.ChatOpenGradient(**fields)


def _li(**fields: Any) -> Callable[[], Any]:
    li = adapter("llamaindex_opengradient")
    return lambda: li.OpenGradient(**fields)


ADAPTER_FIELD_CASES: list[Any] = [
    pytest.param(
        {"model": "gpt-4.1-2025-04-14"}, ["gpt-4.1-2025-04-14"], id="model-without-provider"
    ),
    pytest.param({"model": 42}, ["model"], id="model-not-a-string"),
    pytest.param({"max_tokens": 0}, ["max_tokens"], id="max-tokens-zero"),
    pytest.param({"max_tokens": -3}, ["max_tokens"], id="max-tokens-negative"),
    pytest.param({"temperature": 9.0}, ["temperature"], id="temperature-too-high"),
    pytest.param({"temperature": -1.0}, ["temperature"], id="temperature-negative"),
    pytest.param({"base_url": "127.0.0.1:8000"}, ["127.0.0.1:8000"], id="url-no-scheme"),
    pytest.param({"private_key": SECRET}, ["key"], id="malformed-key"),
    pytest.param({"timeout": -1}, ["timeout"], id="timeout-negative"),
    pytest.param({"max_retries": -1}, ["max_retries"], id="retries-negative"),
]


@pytest.mark.parametrize("adapter", ["langchain", "llamaindex"])
@pytest.mark.parametrize(("change", "names"), ADAPTER_FIELD_CASES)
def test_bad_adapter_field_is_refused_before_any_request(
    gateway: Any,
    account: Any,
    untouched: None,
    adapter: str,
    change: dict[str, Any],
    names: list[str],
) -> None:
    fields = {"model": MODEL, "private_key": _key(account), "base_url": gateway.url, **change}
    build = _lc(**fields) if adapter == "langchain" else _li(**fields)
    with pytest.raises(Exception) as caught:  # noqa: B017 - the type is asserted below
        model = build()
        _adapter_call(adapter, model)
    assert isinstance(caught.value, ValueError | OpenGradientError), repr(caught.value)
    _assert_names(caught.value, *names)
    assert SECRET not in str(caught.value) and SECRET[2:] not in str(caught.value)


def _adapter_call(adapter: str, model: Any) -> Any:
    if adapter == "langchain":
        return model.invoke("hello")
    from llama_index.core.llms import ChatMessage

    return model.chat([ChatMessage(role="user", content="hello")])


@pytest.mark.parametrize("adapter_name", ["langchain", "llamaindex"])
def test_adapter_without_url_uses_the_registry_and_names_a_dead_rpc(
    account: Any, monkeypatch: pytest.MonkeyPatch, untouched: None, adapter_name: str
) -> None:
    for name in ("OPENGRADIENT_LLM_URL", "OPENGRADIENT_LLM_STREAMING_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENGRADIENT_RPC_URL", "http://127.0.0.1:9")  # nothing listens
    build = _lc if adapter_name == "langchain" else _li
    model = build(model=MODEL, private_key=_key(account), max_retries=0)()  # touches nothing
    with pytest.raises(OpenGradientError, match=r"TEE registry RPC http://127\.0\.0\.1:9"):
        _adapter_call(adapter_name, model)


@pytest.mark.parametrize("adapter_name", ["langchain", "llamaindex"])
def test_adapter_without_key_fails_at_construction(
    gateway: Any, monkeypatch: pytest.MonkeyPatch, untouched: None, adapter_name: str
) -> None:
    monkeypatch.delenv("OPENGRADIENT_PRIVATE_KEY", raising=False)
    build = _lc if adapter_name == "langchain" else _li
    with pytest.raises(ValueError) as caught:
        build(model=MODEL, base_url=gateway.url)()
    assert "private_key" in str(caught.value) or "OPENGRADIENT_PRIVATE_KEY" in str(caught.value)


# LangChain-specific inputs: messages and tools given through the framework


def _chat(gateway: Any, account: Any) -> Any:
    return _lc(model=MODEL, private_key=_key(account), base_url=gateway.url)()


LC_INPUTS: list[Any] = [
    pytest.param(lambda m: m.invoke([]), ["message"], id="no-messages"),
    pytest.param(lambda m: m.invoke(42), ["42"], id="input-a-number"),
    pytest.param(
        lambda m: m.invoke(
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
                }
            ]
        ),
        ["image"],
        id="content-block-unsupported",
    ),
    pytest.param(
        lambda m: m.bind_tools([{"type": "function", "function": {"name": 7}}]).invoke("hi"),
        ["name"],
        id="tool-schema-invalid",
    ),
    pytest.param(
        lambda m: m.bind_tools([FUNCTION], tool_choice="sometimes").invoke("hi"),
        ["sometimes"],
        id="tool-choice-unknown",
    ),
    pytest.param(lambda m: m.invoke("hi", stop="END"), ["stop"], id="stop-a-string"),
]


@pytest.mark.parametrize(("act", "names"), LC_INPUTS)
def test_bad_langchain_input_is_refused_before_any_request(
    gateway: Any, account: Any, untouched: None, act: Callable[[Any], Any], names: list[str]
) -> None:
    model = _chat(gateway, account)
    with pytest.raises((ValueError, OpenGradientError)) as caught:
        act(model)
    _assert_names(caught.value, *names)


# LlamaIndex-specific inputs


def _index(gateway: Any, account: Any) -> Any:
    return _li(model=MODEL, private_key=_key(account), base_url=gateway.url)()


def _msg(role: str, content: str = "hi") -> Any:
    from llama_index.core.llms import ChatMessage

    return ChatMessage(role=role, content=content)


LI_INPUTS: list[Any] = [
    pytest.param(lambda m: m.chat([]), ["message"], id="no-messages"),
    pytest.param(lambda m: m.chat([_msg("chatbot")]), ["chatbot"], id="role-unknown"),
    pytest.param(lambda m: m.chat([_msg("developer")]), ["developer"], id="role-developer"),
    pytest.param(lambda m: m.chat([_msg("tool")]), ["tool_call_id"], id="tool-without-id"),
    pytest.param(lambda m: m.chat("hello"), ["message"], id="messages-a-string"),
]


@pytest.mark.parametrize(("act", "names"), LI_INPUTS)
def test_bad_llamaindex_input_is_refused_before_any_request(
    gateway: Any, account: Any, untouched: None, act: Callable[[Any], Any], names: list[str]
) -> None:
    model = _index(gateway, account)
    with pytest.raises((ValueError, OpenGradientError)) as caught:
        act(model)
    _assert_names(caught.value, *names)


def test_bad_input_is_refused_even_when_no_server_listens(account: Any, spy: Any) -> None:
    """Validation happens before any I/O: against a closed port the error is still the input's."""
    with LLM(account, "http://127.0.0.1:9") as llm, pytest.raises(InvalidRequestError) as caught:
        llm.chat("gpt-4.1-2025-04-14", MESSAGES)
    _assert_names(caught.value, "gpt-4.1-2025-04-14")
    assert spy.calls == 0
