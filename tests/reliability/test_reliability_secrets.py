"""The private key never leaves the signer: not in a repr or str of the client or the adapters,
not in any log line at DEBUG (every logger, urllib3 and httpx included), not in any exception
message or formatted traceback, not in a LangChain ``dumps``/``dumpd`` or a LlamaIndex
``to_json``/``model_dump``."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from typing import Any

import faultproxy as fp
import pytest
from eth_account import Account
from faultproxy import FaultProxy
from harness import MESSAGES, MODEL, adapter
from opengradient_shared import LLM, OpenGradientError


def _lc() -> Any:
    return adapter("langchain_opengradient")


def _li() -> Any:
    return adapter("llamaindex_opengradient")


KEY_BYTES = bytes(Account.create().key)
KEY_HEX = KEY_BYTES.hex()


def _leaks(text: str) -> list[str]:
    """Which forms of the key appear in ``text``."""
    forms = {
        "hex": KEY_HEX,
        "HEX": KEY_HEX.upper(),
        "bytes repr": repr(KEY_BYTES)[2:-1],
        "half of the hex": KEY_HEX[:32],
        "other half": KEY_HEX[32:],
    }
    return [name for name, form in forms.items() if form in text]


def _no_leak(text: str) -> None:
    leaked = _leaks(text)
    assert not leaked, f"the private key leaked ({', '.join(leaked)})"


def _formatted(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(getattr(exc, "body", ""))


@pytest.fixture(params=["hex", "0x-hex", "bytes"])
def key_form(request: pytest.FixtureRequest) -> Any:
    return {"hex": KEY_HEX, "0x-hex": "0x" + KEY_HEX, "bytes": KEY_BYTES}[request.param]


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG, the HTTP libraries' included."""
    names = [
        "",
        "urllib3",
        "httpx",
        "httpcore",
        "opengradient_shared",
        "langchain_opengradient",
        "llamaindex_opengradient",
        "langchain_core",
        "llama_index",
    ]
    for name in names:
        caplog.set_level(logging.DEBUG, logger=name)
    yield caplog


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        parts.append(repr(record.__dict__))
    return "\n".join(parts) + caplog.text


def _account(key_form: Any) -> Any:
    return Account.from_key(key_form)


def test_client_repr_and_str_hide_the_key(gateway: Any, key_form: Any) -> None:
    with LLM(_account(key_form), gateway.url) as llm:
        _no_leak(repr(llm) + str(llm) + repr(vars(llm)))


ADAPTERS = ["langchain", "llamaindex"]


def _build(name: str, **fields: Any) -> Any:
    if name == "langchain":
        return _lc().ChatOpenGradient(model=MODEL, **fields)
    return _li().OpenGradient(model=MODEL, **fields)


def _serialised(name: str, model: Any) -> str:
    """Every text form of an adapter model a framework offers."""
    text = repr(model) + str(model) + repr(model.model_dump()) + model.model_dump_json()
    if name == "langchain":
        from langchain_core.load import dumpd, dumps

        return text + dumps(model) + json.dumps(dumpd(model), default=str)
    return text + model.to_json() + repr(model.to_dict())


def _ask(name: str, model: Any, *, stream: bool = False) -> None:
    if name == "langchain":
        if stream:
            for _ in model.stream("hello"):
                pass
        else:
            model.invoke("hello")
        return
    from llama_index.core.llms import ChatMessage

    messages = [ChatMessage(role="user", content="hello")]
    if stream:
        for _ in model.stream_chat(messages):
            pass
    else:
        model.chat(messages)


@pytest.mark.parametrize("name", ADAPTERS)
def test_adapters_repr_str_and_serialisations_hide_the_key(
    gateway: Any, key_form: Any, name: str
) -> None:
    key = key_form if isinstance(key_form, str) else "0x" + key_form.hex()
    _no_leak(_serialised(name, _build(name, private_key=key, base_url=gateway.url)))


@pytest.mark.parametrize("name", ADAPTERS)
def test_adapters_built_on_a_client_hide_the_key(gateway: Any, name: str) -> None:
    with LLM(_account(KEY_HEX), gateway.url) as llm:
        _no_leak(_serialised(name, _build(name, client=llm)))


def test_debug_logs_of_paid_calls_hide_the_key(
    gateway: Any, debug_logs: pytest.LogCaptureFixture
) -> None:
    with LLM(_account(KEY_HEX), gateway.url) as llm:
        llm.chat(MODEL, MESSAGES)
        llm.chat(MODEL, MESSAGES)
        for chunk in llm.chat(MODEL, MESSAGES, stream=True):
            assert chunk is not None
        llm.completion(MODEL, "Once upon a time")
    assert debug_logs.records, "nothing was logged at DEBUG: the check would be vacuous"
    _no_leak(_log_text(debug_logs))


@pytest.mark.parametrize("name", ADAPTERS)
def test_debug_logs_of_adapter_calls_hide_the_key(
    gateway: Any, debug_logs: pytest.LogCaptureFixture, name: str
) -> None:
    model = _build(name, private_key=KEY_HEX, base_url=gateway.url)
    _ask(name, model)
    _ask(name, model, stream=True)
    assert debug_logs.records
    _no_leak(_log_text(debug_logs))


async def test_debug_logs_of_async_calls_hide_the_key(
    gateway: Any, debug_logs: pytest.LogCaptureFixture
) -> None:
    llm = LLM(_account(KEY_HEX), gateway.url)
    await llm.achat(MODEL, MESSAGES)
    stream = await llm.achat(MODEL, MESSAGES, stream=True)
    async for _ in stream:
        pass
    await llm.aclose()
    _no_leak(_log_text(debug_logs))


def test_failed_calls_hide_the_key_in_errors_tracebacks_and_logs(
    gateway: Any, proxy: FaultProxy, debug_logs: pytest.LogCaptureFixture
) -> None:
    errors: list[BaseException] = []
    with LLM(_account(KEY_HEX), proxy.url, timeout=0.5, max_retries=1) as llm:
        llm.chat(MODEL, MESSAGES)  # warm: later calls pre-pay, so each fault hits a paid try
        for fault in (
            [fp.status(500)],
            [fp.reset()] * 2,
            [fp.tamper_content()],
            [fp.strip_payment()] * 4,
            [fp.cut_stream(1)],
        ):
            proxy.script(*fault)
            try:
                stream = fault[0].kind == "cut_stream"
                result = llm.chat(MODEL, MESSAGES, stream=stream)
                if stream:
                    list(result)
            except OpenGradientError as exc:
                errors.append(exc)
    assert len(errors) == 5
    for exc in errors:
        _no_leak(_formatted(exc))
    _no_leak(_log_text(debug_logs))


def test_payment_refusals_hide_the_key(gateway: Any, set_price: Any) -> None:
    set_price(10**9)
    llm = LLM(_account(KEY_HEX), gateway.url, max_payment=1)
    with llm, pytest.raises(OpenGradientError) as caught:
        llm.chat(MODEL, MESSAGES)
    _no_leak(_formatted(caught.value))


BAD_KEYS = [
    pytest.param(KEY_HEX[:-2], id="too-short"),
    pytest.param(KEY_HEX + "ab", id="too-long"),
    pytest.param(KEY_HEX[:-1] + "g", id="not-hex"),
    pytest.param("0x" + KEY_HEX[:-1] + "z", id="0x-not-hex"),
    pytest.param(" " + KEY_HEX + "\n" + KEY_HEX, id="two-keys"),
]


@pytest.mark.parametrize("name", ADAPTERS)
@pytest.mark.parametrize("bad", BAD_KEYS)
def test_malformed_key_errors_do_not_echo_it(gateway: Any, bad: str, name: str) -> None:
    count = gateway.request_count
    with pytest.raises(Exception) as caught:  # noqa: B017 - the type is asserted below
        _build(name, private_key=bad, base_url=gateway.url)
    assert isinstance(caught.value, ValueError | OpenGradientError), repr(caught.value)
    assert "key" in str(caught.value).lower()
    _no_leak(_formatted(caught.value))
    assert gateway.request_count == count


@pytest.mark.parametrize("name", ADAPTERS)
def test_key_from_the_environment_is_hidden(
    gateway: Any,
    monkeypatch: pytest.MonkeyPatch,
    debug_logs: pytest.LogCaptureFixture,
    name: str,
) -> None:
    monkeypatch.setenv("OPENGRADIENT_PRIVATE_KEY", "0x" + KEY_HEX)
    monkeypatch.setenv("OPENGRADIENT_LLM_URL", gateway.url)
    model = _build(name)
    _ask(name, model)
    _no_leak(_serialised(name, model) + _log_text(debug_logs))
