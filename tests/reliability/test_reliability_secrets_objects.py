"""Secrets beyond the key's reprs: credentials in a server URL are refused by the one URL check
(``LLM`` and both adapters) without echoing the password, and every object holding a key
refuses to pickle with a clear ``TypeError`` while ``copy.deepcopy`` shares the transport
instead of duplicating (or exposing) the key."""

from __future__ import annotations

import copy
import pickle
import traceback
from typing import Any

import pytest
from eth_account import Account
from harness import MESSAGES, MODEL, adapter
from opengradient_shared import LLM, InvalidRequestError, TextGenerationOutput
from opengradient_shared.settings import server_url

PASSWORD = "Sup3rSecretPassw0rd"
KEY = Account.create()
KEY_HEX = bytes(KEY.key).hex()


def _credentialed(url: str) -> list[str]:
    rest = url.split("://", 1)[1]
    return [
        f"http://user:{PASSWORD}@{rest}",
        f"https://:{PASSWORD}@{rest}/v1",
        f"http://{PASSWORD}@{rest}",
        f"user:{PASSWORD}@{rest}",
    ]


def _text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


def test_the_url_check_refuses_credentials_and_names_the_host() -> None:
    for url in _credentialed("http://127.0.0.1:8000"):
        with pytest.raises(InvalidRequestError) as caught:
            server_url(url, "base_url")
        assert PASSWORD not in _text(caught.value)
        assert "credentials" in str(caught.value) and "127.0.0.1:8000" in str(caught.value)
    assert server_url(" http://127.0.0.1:8000/ ", "base_url") == "http://127.0.0.1:8000"


def test_llm_refuses_credentials_in_either_url(gateway: Any) -> None:
    count = gateway.request_count
    for url in _credentialed(gateway.url):
        with pytest.raises(InvalidRequestError) as caught:
            LLM(KEY, url)
        assert PASSWORD not in _text(caught.value)
        assert "og_llm_server_url" in str(caught.value)
        with pytest.raises(InvalidRequestError) as caught:
            LLM(KEY, gateway.url, url)
        assert PASSWORD not in _text(caught.value)
        assert "og_llm_streaming_server_url" in str(caught.value)
    assert gateway.request_count == count


@pytest.mark.parametrize("name", ["langchain_opengradient", "llamaindex_opengradient"])
@pytest.mark.parametrize("field", ["base_url", "streaming_url"])
def test_adapters_refuse_credentials_in_urls(gateway: Any, name: str, field: str) -> None:
    module = adapter(name)
    cls = module.ChatOpenGradient if name == "langchain_opengradient" else module.OpenGradient
    for url in _credentialed(gateway.url):
        options = {"base_url": gateway.url, field: url}
        with pytest.raises(ValueError) as caught:
            cls(model=MODEL.value, private_key=KEY_HEX, **options)
        assert PASSWORD not in _text(caught.value)
        assert "credentials" in str(caught.value)


def test_credentials_in_the_environment_url_are_refused(
    monkeypatch: pytest.MonkeyPatch, gateway: Any
) -> None:
    module = adapter("llamaindex_opengradient")
    monkeypatch.setenv("OPENGRADIENT_LLM_URL", _credentialed(gateway.url)[0])
    with pytest.raises(ValueError) as caught:
        module.OpenGradient(model=MODEL.value, private_key=KEY_HEX)
    assert PASSWORD not in _text(caught.value)


# ---- pickling and copies ---------------------------------------------------------------


def _holders(gateway: Any) -> list[tuple[str, Any]]:
    llm = LLM(KEY, gateway.url)
    holders: list[tuple[str, Any]] = [("LLM", llm), ("Exchange", llm._exchange)]
    li = adapter("llamaindex_opengradient")
    holders.append(("OpenGradient", li.OpenGradient(model=MODEL.value, client=llm)))
    holders.append(
        ("OpenGradient(private_key)", li.OpenGradient(model=MODEL.value, base_url=gateway.url,
                                                      private_key=KEY_HEX))
    )  # fmt: skip
    return holders


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_objects_holding_the_key_refuse_to_pickle(gateway: Any, protocol: int) -> None:
    for what, holder in _holders(gateway):
        with pytest.raises(TypeError, match="cannot be pickled") as caught:
            pickle.dumps(holder, protocol=protocol)
        assert KEY_HEX not in _text(caught.value), what


def test_deepcopy_shares_the_transport_and_works(gateway: Any) -> None:
    llm = LLM(KEY, gateway.url)
    assert copy.deepcopy(llm) is llm and copy.copy(llm) is llm
    assert copy.deepcopy(llm._exchange) is llm._exchange
    li = adapter("llamaindex_opengradient")
    model = li.OpenGradient(model=MODEL.value, base_url=gateway.url, private_key=KEY_HEX)
    twin = copy.deepcopy(model)
    assert twin is not model and twin.transport is model.transport
    assert KEY_HEX not in repr(twin) and KEY_HEX not in str(twin.to_dict())
    out = twin.transport.chat(MODEL, MESSAGES)
    assert isinstance(out, TextGenerationOutput) and out.tee_proof is not None
    assert out.tee_proof.verified
    llm.close()
