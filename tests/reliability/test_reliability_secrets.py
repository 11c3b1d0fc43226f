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
from harness import MESSAGES, MODEL, adapter_modules
from opengradient_shared import LLM, OpenGradientError


def _adapters() -> tuple[Any, Any]:
    return adapter_modules()


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


def test_adapters_repr_str_and_serialisations_hide_the_key(gateway: Any, key_form: Any) -> None:
    lc, li = _adapters()
    from langchain_core.load import dumpd, dumps

    key = key_form if isinstance(key_form, str) else key_form.hex()
    chat = lc.ChatOpenGradient(model=MODEL, private_key=key, base_url=gateway.url)
    _no_leak(repr(chat) + str(chat))
    _no_leak(dumps(chat) + json.dumps(dumpd(chat), default=str))
    _no_leak(repr(chat.model_dump()) + chat.model_dump_json())
    index = li.OpenGradient(model=MODEL, private_key=key, base_url=gateway.url)
    _no_leak(repr(index) + str(index))
    _no_leak(index.to_json() + repr(index.to_dict()) + repr(index.model_dump()))
    _no_leak(index.model_dump_json())


def test_adapters_built_on_a_client_hide_the_key(gateway: Any) -> None:
    lc, li = _adapters()
    from langchain_core.load import dumps

    with LLM(_account(KEY_HEX), gateway.url) as llm:
        chat = lc.ChatOpenGradient(model=MODEL, client=llm)
        index = li.OpenGradient(model=MODEL, client=llm)
        _no_leak(repr(chat) + dumps(chat) + repr(index) + index.to_json())


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


def test_debug_logs_of_adapter_calls_hide_the_key(
    gateway: Any, debug_logs: pytest.LogCaptureFixture
) -> None:
    lc, li = _adapters()
    from llama_index.core.llms import ChatMessage

    chat = lc.ChatOpenGradient(model=MODEL, private_key=KEY_HEX, base_url=gateway.url)
    chat.invoke("hello")
    for _ in chat.stream("hello"):
        pass
    index = li.OpenGradient(model=MODEL, private_key=KEY_HEX, base_url=gateway.url)
    index.chat([ChatMessage(role="user", content="hello")])
    for _ in index.stream_chat([ChatMessage(role="user", content="hello")]):
        pass
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


def test_payment_refusals_hide_the_key(gateway: Any) -> None:
    gateway.price = 10**9
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


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_malformed_key_errors_do_not_echo_it(gateway: Any, bad: str) -> None:
    lc, li = _adapters()
    raised: list[BaseException] = []
    for build in (
        lambda: lc.ChatOpenGradient(model=MODEL, private_key=bad, base_url=gateway.url),
        lambda: li.OpenGradient(model=MODEL, private_key=bad, base_url=gateway.url),
    ):
        with pytest.raises(Exception) as caught:  # noqa: B017 - the type is asserted below
            build()
        raised.append(caught.value)
    for exc in raised:
        assert isinstance(exc, ValueError | OpenGradientError), repr(type(exc))
        assert "key" in str(exc).lower()
        _no_leak(_formatted(exc))
    assert gateway.request_count == 0


def test_key_from_the_environment_is_hidden(
    gateway: Any, monkeypatch: pytest.MonkeyPatch, debug_logs: pytest.LogCaptureFixture
) -> None:
    lc, li = _adapters()
    from langchain_core.load import dumps

    monkeypatch.setenv("OPENGRADIENT_PRIVATE_KEY", "0x" + KEY_HEX)
    monkeypatch.setenv("OPENGRADIENT_LLM_URL", gateway.url)
    chat = lc.ChatOpenGradient(model=MODEL)
    index = li.OpenGradient(model=MODEL)
    chat.invoke("hello")
    _no_leak(repr(chat) + dumps(chat) + repr(index) + index.to_json() + _log_text(debug_logs))
