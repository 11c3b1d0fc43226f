"""``LLM`` against the local gateway (generation 1: x402 v1 ``exact``), over real HTTP with real
signatures and real TEE proofs. Sync and async paths, payments, verification and retries."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from eth_account.signers.local import LocalAccount
from opengradient_shared import (
    LLM,
    TEE_LLM,
    InvalidRequestError,
    NetworkError,
    PaymentPolicyError,
    PaymentRejectedError,
    StreamChunk,
    TextGenerationOutput,
    TextGenerationStream,
    VerificationError,
    x402SettlementMode,
)
from opengradient_shared.verification import VerificationWarning
from reliability import faultproxy as fp
from signing_spy import SignSpy

MODEL = TEE_LLM.GPT_4_1_2025_04_14
ASK = [{"role": "user", "content": "Tell me something about the weather in Paris."}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the current time in a timezone",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}


@pytest.fixture
def llm(account: LocalAccount, gateway: Any) -> Iterator[LLM]:
    with LLM(account, gateway.url, gateway.url, timeout=10) as client:
        yield client


@pytest.fixture
def proxy(gateway: Any) -> Iterator[fp.FaultProxy]:
    """A fault proxy in front of the gateway (the one mock: it stands for a faulty network)."""
    with fp.FaultProxy(gateway.url) as p:
        yield p


def _field(entry: Any, name: str) -> Any:
    return entry[name] if isinstance(entry, dict) else getattr(entry, name)


def _chat(llm: LLM, **kwargs: Any) -> TextGenerationOutput:
    out = llm.chat(kwargs.pop("model", MODEL), kwargs.pop("messages", ASK), **kwargs)
    assert isinstance(out, TextGenerationOutput)
    return out


# ---- the seed API ------------------------------------------------------------------------


def test_seed_signatures_and_defaults() -> None:
    init = inspect.signature(LLM.__init__).parameters
    assert list(init)[:4] == [
        "self",
        "wallet_account",
        "og_llm_server_url",
        "og_llm_streaming_server_url",
    ]
    assert all(p.kind is p.KEYWORD_ONLY for p in list(init.values())[4:])
    for method in (LLM.chat, LLM.achat):
        params = inspect.signature(method).parameters
        assert list(params)[:10] == [
            "self", "model", "messages", "max_tokens", "stop_sequence", "temperature",
            "tools", "tool_choice", "x402_settlement_mode", "stream",
        ]  # fmt: skip
        defaults = {name: p.default for name, p in params.items()}
        assert defaults["max_tokens"] == 100
        assert defaults["stop_sequence"] is None
        assert defaults["temperature"] == 0.0
        assert defaults["tools"] == () and not isinstance(defaults["tools"], list)
        assert defaults["tool_choice"] is None
        assert defaults["x402_settlement_mode"] is x402SettlementMode.SETTLE_BATCH
        assert defaults["stream"] is False
    for method in (LLM.completion, LLM.acompletion):
        params = inspect.signature(method).parameters
        assert list(params)[:7] == [
            "self", "model", "prompt", "max_tokens", "stop_sequence", "temperature",
            "x402_settlement_mode",
        ]  # fmt: skip
        assert params["max_tokens"].default == 100
        assert params["x402_settlement_mode"].default is x402SettlementMode.SETTLE_BATCH
    assert inspect.iscoroutinefunction(LLM.achat) and inspect.iscoroutinefunction(LLM.acompletion)


def test_positional_seed_construction_and_repr_hide_the_key(
    account: LocalAccount, gateway: Any
) -> None:
    llm = LLM(account, gateway.url, gateway.url)
    key_hex = bytes(account.key).hex()
    shown = repr(llm) + str(llm) + repr(vars(llm))
    assert account.address in repr(llm) and llm.wallet_address == account.address
    assert key_hex not in shown and key_hex.upper() not in shown
    llm.close()


@pytest.mark.parametrize("wallet", [None, "0x" + "ab" * 32, b"\x01" * 32])
def test_wallet_must_be_a_local_account(gateway: Any, wallet: Any) -> None:
    with pytest.raises(InvalidRequestError, match="LocalAccount") as caught:
        LLM(wallet, gateway.url)
    assert "ab" * 32 not in str(caught.value)


# ---- chat and completion -------------------------------------------------------------------


def test_paid_chat_returns_a_verified_answer_and_its_receipt(
    llm: LLM, gateway: Any, account: LocalAccount
) -> None:
    out = _chat(llm)
    assert out.transaction_hash == "external"
    assert out.chat_output is not None and out.chat_output["role"] == "assistant"
    assert out.chat_output["content"] and "tool_calls" not in out.chat_output
    assert out.finish_reason in ("stop", "length")
    assert out.usage is not None and out.usage.total_tokens > 0
    assert out.tee_proof is not None and out.tee_proof.verified
    assert out.tee_proof.tee_id == gateway.tee_id
    assert out.payment_hash  # the v1 gateway sends x-processing-hash
    receipt = out.payment
    assert receipt is not None and receipt.x402_version == 1 and receipt.scheme == "exact"
    assert receipt.payer == account.address and receipt.new_payment
    (entry,) = gateway.ledger.entries
    assert _field(entry, "payer") == account.address
    assert int(_field(entry, "amount")) == receipt.amount


def test_round_trips_two_for_the_first_paid_call_then_one(llm: LLM, gateway: Any) -> None:
    counts = []
    for _ in range(3):
        before = gateway.request_count
        _chat(llm)
        counts.append(gateway.request_count - before)
    assert counts == [2, 1, 1]
    assert len(gateway.ledger.entries) == 3
    nonces = {_field(e, "nonce") for e in gateway.ledger.entries}
    assert len(nonces) == 3


def test_tool_call_and_tool_choice_variants(llm: LLM) -> None:
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    auto = _chat(llm, messages=ask, tools=[WEATHER, TIME])
    assert auto.finish_reason == "tool_calls" and auto.chat_output is not None
    (call,) = auto.chat_output["tool_calls"]
    assert call["function"]["name"] == "get_weather" and call["id"]
    assert isinstance(json.loads(call["function"]["arguments"]), dict)
    assert auto.tee_proof is not None and auto.tee_proof.verified  # hashed over the tool calls

    named = _chat(
        llm,
        messages=ask,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert named.chat_output is not None
    assert named.chat_output["tool_calls"][0]["function"]["name"] == "get_time"

    required = _chat(llm, messages=ask, tools=[WEATHER], tool_choice="required")
    assert required.chat_output is not None and required.chat_output["tool_calls"]

    none = _chat(llm, messages=ask, tools=[WEATHER], tool_choice="none")
    assert none.chat_output is not None and "tool_calls" not in none.chat_output
    assert none.chat_output["content"]

    # the tool's answer goes back and the model answers with it
    followup = [
        *ask,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 24 degrees"},
    ]
    answer = _chat(llm, messages=followup, tools=[WEATHER])
    assert answer.chat_output is not None and "tool_calls" not in answer.chat_output
    assert answer.tee_proof is not None and answer.tee_proof.verified


def test_stop_sequence_cuts_the_answer(llm: LLM) -> None:
    full = _chat(llm).chat_output
    assert full is not None
    words = full["content"].split()
    assert len(words) >= 3, full
    stop = " " + words[2]
    cut = _chat(llm, stop_sequence=[stop]).chat_output
    assert cut is not None
    assert cut["content"] == full["content"][: full["content"].index(stop)]


def test_max_tokens_limits_the_answer(llm: LLM) -> None:
    out = _chat(llm, max_tokens=1)
    assert out.finish_reason == "length"
    assert out.usage is not None and out.usage.completion_tokens <= 1


def test_completion(llm: LLM, gateway: Any) -> None:
    out = llm.completion(MODEL, "Once upon a time", max_tokens=20)
    assert out.completion_output and out.chat_output is None
    assert out.tee_proof is not None and out.tee_proof.verified
    assert out.payment is not None and len(gateway.ledger.entries) == 1


@pytest.mark.parametrize("mode", list(dict.fromkeys(x402SettlementMode)))
def test_each_settlement_mode_reaches_the_ledger(
    account: LocalAccount, gateway: Any, proxy: fp.FaultProxy, mode: x402SettlementMode
) -> None:
    with LLM(account, proxy.url) as llm:
        _chat(llm, x402_settlement_mode=mode)
    (entry,) = gateway.ledger.entries
    assert x402SettlementMode.parse(_field(entry, "settlement_type")) is mode
    # nothing on the unpaid first try (generation unknown), then the generation-1 spelling
    sent = [seen.headers.get("x-settlement-type") for seen in proxy.seen]
    assert sent == [None, mode.wire_value(1)]


# ---- streaming -----------------------------------------------------------------------------


def _drain(stream: Any) -> list[StreamChunk]:
    assert isinstance(stream, TextGenerationStream)
    return list(stream)


def test_stream_yields_the_same_text_and_a_verified_final_chunk(llm: LLM, gateway: Any) -> None:
    plain = _chat(llm).chat_output
    stream = llm.chat(MODEL, ASK, stream=True)
    chunks = _drain(stream)
    assert len(chunks) > 2
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert plain is not None and text == plain["content"]
    final = chunks[-1]
    assert final.is_final and stream.final_chunk is final
    assert [c.is_final for c in chunks].count(True) == 1
    assert final.usage is not None and final.usage.total_tokens > 0
    assert final.tee_proof is not None and final.tee_proof.verified
    assert final.payment is not None and final.payment.new_payment
    assert len(gateway.ledger.entries) == 2


def test_stream_of_tool_call_deltas(llm: LLM) -> None:
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    plain = _chat(llm, messages=ask, tools=[WEATHER]).chat_output
    assert plain is not None
    chunks = _drain(llm.chat(MODEL, ask, tools=[WEATHER], stream=True))
    pieces = [p for c in chunks if c.choices for p in c.choices[0].delta.tool_calls or []]
    assert len(pieces) >= 2
    first = pieces[0]
    assert first["index"] == 0 and first["id"] and first["function"]["name"] == "get_weather"
    arguments = "".join(p.get("function", {}).get("arguments") or "" for p in pieces)
    assert json.loads(arguments) == json.loads(plain["tool_calls"][0]["function"]["arguments"])
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].tee_proof is not None and chunks[-1].tee_proof.verified


# ---- payments ----------------------------------------------------------------------------


def test_price_over_the_cap_is_refused_and_nothing_is_signed(
    account: LocalAccount, gateway: Any, spy: SignSpy
) -> None:
    gateway.price = 5_000
    with LLM(account, gateway.url, max_payment=4_999) as llm:
        with pytest.raises(PaymentPolicyError, match="5000.*4999"):
            _chat(llm)
        assert spy.calls == 0
        assert gateway.ledger.entries == []
        # the control: the same client pays once the price is under its cap
        gateway.price = 4_999
        _chat(llm)
    assert spy.calls == 1 and len(gateway.ledger.entries) == 1


def test_balance_too_low_is_a_rejected_payment_with_the_servers_reason(
    account: LocalAccount, spy: SignSpy
) -> None:
    from opengradient_shared.gateway import LocalGateway

    with LocalGateway(balances={account.address: 0}) as poor, LLM(account, poor.url) as llm:
        with pytest.raises(PaymentRejectedError, match="(?i)insufficient"):
            _chat(llm)
        assert spy.calls == 1 and poor.request_count == 2 and poor.ledger.entries == []


# ---- verification ------------------------------------------------------------------------


def _other_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def test_answer_signed_by_another_tee_is_withheld(account: LocalAccount, gateway: Any) -> None:
    with LLM(account, gateway.url, tee_public_key=_other_key_pem()) as llm:
        with pytest.raises(VerificationError, match="not the trusted TEE"):
            _chat(llm)
        with pytest.raises(VerificationError):
            list(llm.chat(MODEL, ASK, stream=True))


def test_pinned_key_and_tee_id_of_the_gateway_verify(account: LocalAccount, gateway: Any) -> None:
    with LLM(
        account, gateway.url, tee_public_key=gateway.public_key_pem, tee_id=gateway.tee_id
    ) as llm:
        assert _chat(llm).tee_proof.verified  # type: ignore[union-attr]
    with LLM(account, gateway.url, tee_id="0x" + "ab" * 32) as llm:
        before = gateway.request_count
        with pytest.raises(VerificationError, match="pinned"):
            _chat(llm)
        assert gateway.request_count == before  # refused before paying for anything


def test_tampered_content_fails_verification(llm: LLM, proxy: fp.FaultProxy) -> None:
    with LLM(llm._exchange.account, proxy.url) as client:
        clean = _chat(client).chat_output
        proxy.script(fp.tamper_content())
        with pytest.raises(VerificationError, match="output hash") as caught:
            _chat(client)
        assert clean is not None and clean["content"] not in str(caught.value)


def test_warn_policy_returns_the_content_with_an_unverified_proof(
    account: LocalAccount, gateway: Any
) -> None:
    pem = _other_key_pem()
    with (
        LLM(account, gateway.url, tee_public_key=pem, verification="warn") as llm,
        pytest.warns(VerificationWarning),
    ):
        out = _chat(llm)
    assert out.chat_output is not None and out.chat_output["content"]
    assert out.tee_proof is not None and not out.tee_proof.verified


def test_verification_off_returns_the_proof_unchecked(account: LocalAccount, gateway: Any) -> None:
    with LLM(account, gateway.url, tee_public_key=_other_key_pem(), verification="off") as llm:
        out = _chat(llm)
    assert out.tee_proof is not None and not out.tee_proof.verified


# ---- retries -----------------------------------------------------------------------------


def _nonces(proxy: fp.FaultProxy, since: int) -> list[str | None]:
    return [seen.payment_nonce() for seen in proxy.seen[since:]]


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(lambda: fp.status(503), id="503"),
        pytest.param(lambda: fp.status(429, retry_after="0"), id="429"),
        pytest.param(fp.close, id="dropped-before-the-gateway"),
    ],
)
def test_transient_fault_is_retried_with_the_same_payment_and_settles_once(
    account: LocalAccount, gateway: Any, proxy: fp.FaultProxy, fault: Any
) -> None:
    with LLM(account, proxy.url, timeout=5) as llm:
        _chat(llm)
        since, settled = len(proxy.seen), len(gateway.ledger.entries)
        proxy.script(fault())
        out = _chat(llm)
    assert out.tee_proof is not None and out.tee_proof.verified
    nonces = _nonces(proxy, since)
    assert len(nonces) == 2 and nonces[0] is not None and nonces[0] == nonces[1]
    assert [_field(e, "nonce") for e in gateway.ledger.entries[settled:]] == [nonces[0]]


def test_answer_dropped_after_settlement_is_never_paid_twice(
    account: LocalAccount, gateway: Any, proxy: fp.FaultProxy, spy: SignSpy
) -> None:
    with LLM(account, proxy.url, timeout=5) as llm:
        _chat(llm)
        since, settled, signed = len(proxy.seen), len(gateway.ledger.entries), spy.calls
        proxy.script(fp.reset(upstream=True))  # the gateway settles, the answer is lost
        with pytest.raises(PaymentRejectedError, match="may have been settled"):
            _chat(llm)
    nonces = _nonces(proxy, since)
    assert len(nonces) == 2 and nonces[0] == nonces[1]  # the retry resent the same payment
    assert len(gateway.ledger.entries) - settled == 1
    assert spy.calls - signed == 1


def test_server_error_is_not_retried_and_carries_the_servers_message(
    account: LocalAccount, proxy: fp.FaultProxy
) -> None:
    from opengradient_shared import ServerError

    with LLM(account, proxy.url) as llm:
        _chat(llm)
        since = len(proxy.seen)
        proxy.script(fp.status(500))
        with pytest.raises(ServerError, match="injected fault 500") as caught:
            _chat(llm)
    assert caught.value.status_code == 500 and len(proxy.seen) - since == 1


# ---- async -------------------------------------------------------------------------------


async def test_achat_acompletion_and_async_stream(llm: LLM, gateway: Any) -> None:
    out = await llm.achat(MODEL, ASK)
    assert isinstance(out, TextGenerationOutput)
    assert out.tee_proof is not None and out.tee_proof.verified
    done = await llm.acompletion(MODEL, "Once upon a time")
    assert done.completion_output and done.tee_proof is not None and done.tee_proof.verified
    stream = await llm.achat(MODEL, ASK, stream=True)
    assert isinstance(stream, TextGenerationStream)
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert out.chat_output is not None and text == out.chat_output["content"]
    assert chunks[-1].is_final and chunks[-1].tee_proof.verified
    assert len(gateway.ledger.entries) == 3
    await llm.aclose()


async def test_fifty_concurrent_achat_calls(llm: LLM, gateway: Any) -> None:
    await llm.achat(MODEL, ASK)
    before = gateway.request_count
    outs = await asyncio.gather(*(llm.achat(MODEL, ASK) for _ in range(50)))
    assert all(o.tee_proof is not None and o.tee_proof.verified for o in outs)  # type: ignore[union-attr]
    assert gateway.request_count - before == 50  # pre-paid: one request each
    nonces = [_field(e, "nonce") for e in gateway.ledger.entries]
    assert len(nonces) == 51 == len(set(nonces))
    await llm.aclose()


async def test_sync_call_inside_a_running_event_loop(llm: LLM) -> None:
    asyncio.get_running_loop()  # we are inside the loop pytest-asyncio runs
    out = _chat(llm)
    assert out.tee_proof is not None and out.tee_proof.verified
    assert len(_drain(llm.chat(MODEL, ASK, stream=True))) > 1


def test_one_client_serves_one_event_loop_after_another(llm: LLM) -> None:
    async def call() -> bool:
        out = await llm.achat(MODEL, ASK)
        return bool(out.tee_proof and out.tee_proof.verified)

    assert asyncio.run(call()) and asyncio.run(call())


async def test_async_retry_resends_the_same_payment(
    account: LocalAccount, gateway: Any, proxy: fp.FaultProxy
) -> None:
    llm = LLM(account, proxy.url, timeout=5)
    await llm.achat(MODEL, ASK)
    since, settled = len(proxy.seen), len(gateway.ledger.entries)
    proxy.script(fp.status(503), fp.reset())
    out = await llm.achat(MODEL, ASK)
    await llm.aclose()
    assert out.tee_proof is not None and out.tee_proof.verified
    nonces = _nonces(proxy, since)
    assert len(nonces) == 3 and len(set(nonces)) == 1
    assert len(gateway.ledger.entries) - settled == 1


@pytest.mark.parametrize("bypass", [False, True])
def test_proxy_settings_come_from_the_environment(
    account: LocalAccount, gateway: Any, monkeypatch: pytest.MonkeyPatch, bypass: bool
) -> None:
    """HTTP_PROXY is honoured (a proxy where nothing listens fails the call) and so is
    NO_PROXY (the same setting with the gateway's host exempted reaches it)."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setenv("NO_PROXY", "127.0.0.1" if bypass else "")
    with LLM(account, gateway.url, max_retries=0) as llm:
        if bypass:
            assert llm.chat(MODEL, [{"role": "user", "content": "hi"}]).tee_proof is not None
        else:
            with pytest.raises(NetworkError):
                llm.chat(MODEL, [{"role": "user", "content": "hi"}])
