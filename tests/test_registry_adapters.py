"""Both adapters without a URL: the transport finds a TLS LocalGateway in the local registry
(the project's contract on an in-process EVM, over JSON-RPC on 127.0.0.1), and every answer's
metadata says where it came from (``tee_origin``) next to its proof."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from opengradient_shared.errors import NetworkError
from opengradient_shared.gateway import LocalGateway

pytest.importorskip("vyper")
pytest.importorskip("eth_tester")
pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")
from opengradient_shared.gateway.chain import LocalChain  # noqa: E402

MODEL = "openai/gpt-4.1-2025-04-14"


@pytest.fixture(scope="module")
def network(tee_signing_key_pem: bytes) -> Iterator[tuple[LocalChain, LocalGateway, str]]:
    with LocalChain() as chain, LocalGateway(tls=True, signing_key_pem=tee_signing_key_pem) as gw:
        yield chain, gw, chain.register(gw)


def _key(account: LocalAccount) -> str:
    return "0x" + bytes(account.key).hex()


def _settings(network: tuple[LocalChain, LocalGateway, str], account: LocalAccount) -> Any:
    chain, _, _ = network
    return {
        "model": MODEL,
        "private_key": _key(account),
        "rpc_url": chain.rpc_url,
        "registry_address": chain.registry_address,
        "attestation_root_sha256": network[1].enclave.root_sha256,  # the local enclave's root
    }


def _check_origin(origin: Any, network: tuple[LocalChain, LocalGateway, str]) -> None:
    _, gateway, tee_id = network
    assert origin["source"] == "registry" and origin["tee_id"] == tee_id
    assert origin["endpoint"] == gateway.url and origin["tls_pinned"] is True
    assert origin["payment_address"] == gateway.pay_to
    assert origin["attestation"] == "verified" and origin["pcr_hash"] == gateway.enclave.pcr_hash


def test_chat_open_gradient_without_a_url_uses_the_registry(
    network: tuple[LocalChain, LocalGateway, str],
    account: LocalAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from langchain_opengradient import ChatOpenGradient

    monkeypatch.delenv("OPENGRADIENT_LLM_URL", raising=False)
    chat = ChatOpenGradient(**_settings(network, account))
    answer = chat.invoke("hello")
    assert answer.response_metadata["tee_proof"]["verified"]
    _check_origin(answer.response_metadata["tee_origin"], network)
    chunks = list(chat.stream("stream this"))
    final = next(c for c in chunks if c.response_metadata.get("tee_origin"))
    _check_origin(final.response_metadata["tee_origin"], network)


async def test_llamaindex_open_gradient_without_a_url_uses_the_registry(
    network: tuple[LocalChain, LocalGateway, str],
    account: LocalAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llama_index.core.llms import ChatMessage

    from llamaindex_opengradient import OpenGradient

    monkeypatch.delenv("OPENGRADIENT_LLM_URL", raising=False)
    llm = OpenGradient(**_settings(network, account))
    response = await llm.achat([ChatMessage(role="user", content="hello")])
    assert response.additional_kwargs["tee_proof"]["verified"]
    _check_origin(response.additional_kwargs["tee_origin"], network)
    _check_origin(llm.complete("A verified answer is").additional_kwargs["tee_origin"], network)


def test_adapters_without_any_url_construct_offline_and_name_the_rpc_on_the_first_call(
    account: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llama_index.core.llms import ChatMessage

    from langchain_opengradient import ChatOpenGradient
    from llamaindex_opengradient import OpenGradient

    monkeypatch.delenv("OPENGRADIENT_LLM_URL", raising=False)
    # the autouse fixture points OPENGRADIENT_RPC_URL at a closed loopback port
    chat = ChatOpenGradient(model=MODEL, private_key=_key(account), max_retries=0)
    with pytest.raises(NetworkError, match=r"TEE registry RPC http://127\.0\.0\.1:9 "):
        chat.invoke("hello")
    llm = OpenGradient(model=MODEL, private_key=_key(account), max_retries=0)
    with pytest.raises(NetworkError, match="TEE registry RPC"):
        llm.chat([ChatMessage(role="user", content="hello")])


def test_adapters_pin_the_certificate_of_an_https_url(
    network: tuple[LocalChain, LocalGateway, str], account: LocalAccount
) -> None:
    from llama_index.core.llms import ChatMessage

    from langchain_opengradient import ChatOpenGradient
    from llamaindex_opengradient import OpenGradient

    _, gateway, _ = network
    pinned = {"base_url": gateway.url, "tls_certificate": gateway.tls_certificate_pem}
    chat = ChatOpenGradient(model=MODEL, private_key=_key(account), **pinned)
    origin = chat.invoke("hello").response_metadata["tee_origin"]
    assert origin["source"] == "url" and origin["tls_pinned"] is True
    llm = OpenGradient(model=MODEL, private_key=_key(account), **pinned)
    reply = llm.chat([ChatMessage(role="user", content="hello")])
    assert reply.additional_kwargs["tee_origin"]["tee_id"] == gateway.tee_id
    unpinned = ChatOpenGradient(
        model=MODEL, private_key=_key(account), base_url=gateway.url, max_retries=0
    )
    with pytest.raises(NetworkError, match="CERTIFICATE_VERIFY_FAILED"):
        unpinned.invoke("hello")  # a self-signed certificate is not trusted without the pin
