"""The key in tracebacks captured with locals (what error reporters such as Sentry record) when
an adapter refuses a setting at construction: LangChain's, LlamaIndex's and pydantic's
constructors hold their keyword arguments as locals, so a key given as text or bytes is wrapped
in a ``SecretStr`` before any of them sees it."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account
from pydantic import SecretStr, ValidationError

from langchain_opengradient import ChatOpenGradient, OpenGradientLLM
from llamaindex_opengradient import OpenGradient

MODEL = "openai/gpt-4.1-2025-04-14"
URL = "http://127.0.0.1:9"  # never contacted: every case below is refused at construction

ADAPTERS: dict[str, Callable[..., Any]] = {
    "ChatOpenGradient": ChatOpenGradient,
    "OpenGradientLLM": OpenGradientLLM,
    "OpenGradient": OpenGradient,
}
REFUSED: list[Any] = [
    pytest.param({"base_url": "ftp://x"}, id="bad-url"),
    pytest.param({"base_url": "http://user:pw@host"}, id="credentials-in-url"),
    pytest.param({"max_tokens": "many"}, id="bad-max-tokens"),
    pytest.param({"settlement_mode": "nope"}, id="bad-settlement"),
    pytest.param({"top_k": 5}, id="unknown-setting"),
]


def _locals_holding(exc: BaseException, secret: str) -> list[str]:
    """``file:function:local`` of every frame (the exception chain included) whose captured
    locals show ``secret``. The tests' own frames hold the key only as ``bytes``, whose repr
    is not the hex text searched for."""
    found: list[str] = []
    pending = [traceback.TracebackException.from_exception(exc, capture_locals=True)]
    while pending:
        summary = pending.pop()
        for frame in summary.stack:
            for name, shown in (frame.locals or {}).items():
                if secret in shown.lower():
                    found.append(f"{frame.filename}:{frame.name}:{name}")
        pending += [c for c in (summary.__cause__, summary.__context__) if c is not None]
    return found


@pytest.mark.parametrize("form", ["hex", "0x-hex", "bytes", "api_key"])
@pytest.mark.parametrize("refused", REFUSED)
@pytest.mark.parametrize("name", list(ADAPTERS))
def test_a_refused_setting_shows_no_key_in_a_traceback_with_locals(
    name: str, refused: dict[str, Any], form: str
) -> None:
    raw = bytes(Account.create().key)  # this frame holds the key only as bytes
    field = "api_key" if form == "api_key" else "private_key"
    options = {"model": MODEL, "base_url": URL, **refused}
    with pytest.raises(ValidationError) as caught:
        if form == "bytes":
            ADAPTERS[name](**options, **{field: raw})
        else:  # the text is built in the call, never stored in a local of this frame
            ADAPTERS[name](**options, **{field: ("0x" if form == "0x-hex" else "") + raw.hex()})
    found = _locals_holding(caught.value, raw.hex())  # (outside the assert: pytest's rewrite
    assert found == []  # would keep the hex text as a local of this frame)


def test_control_the_search_finds_a_key_held_as_text() -> None:
    """Control: the same search finds the key when a frame holds it as text (as the
    constructors below the adapters did before the key was wrapped first)."""
    raw = bytes(Account.create().key)

    def holder(key: str) -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError) as caught:
        holder(raw.hex())
    found = _locals_holding(caught.value, raw.hex())
    assert [where.rsplit(":", 2)[1:] for where in found] == [["holder", "key"]]


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_a_concealed_key_still_pays(name: str, gateway: Any) -> None:
    """The wrapped key is the same key: the adapter's transport signs with it (the payer the
    gateway recorded is the key's address)."""
    account = Account.create()
    settled = len(gateway.ledger.entries)
    model = ADAPTERS[name](model=MODEL, base_url=gateway.url, private_key=bytes(account.key))
    assert isinstance(model.private_key, SecretStr)
    if name == "OpenGradient":
        model.complete("hi")
    else:
        model.invoke("hi")
    payers = [entry.payer.lower() for entry in gateway.ledger.entries[settled:]]
    assert payers == [account.address.lower()]
