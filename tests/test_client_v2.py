"""``LLM`` against the local gateway speaking generation 2 (x402 v2 ``upto`` over Permit2 with
metered sessions), over real HTTP with real Permit2 signatures and real TEE proofs."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from opengradient_shared import (
    LLM,
    TEE_LLM,
    PaymentPolicyError,
    TextGenerationOutput,
    x402SettlementMode,
)
from opengradient_shared.x402 import parse_challenge
from reliability import faultproxy as fp
from signing_spy import SignSpy

MODEL = TEE_LLM.GPT_4_1_2025_04_14
ASK = [{"role": "user", "content": "Tell me something about sessions."}]


@pytest.fixture
def proxy(gateway_v2: Any) -> Iterator[fp.FaultProxy]:
    """A pass-through proxy that records the headers the client sent (no faults scripted)."""
    with fp.FaultProxy(gateway_v2.url) as p:
        yield p


def _chat(llm: LLM, **kwargs: Any) -> TextGenerationOutput:
    out = llm.chat(MODEL, ASK, **kwargs)
    assert isinstance(out, TextGenerationOutput)
    assert out.tee_proof is not None and out.tee_proof.verified
    return out


def _permits(proxy: fp.FaultProxy) -> list[dict[str, Any]]:
    return [
        json.loads(base64.b64decode(seen.headers["payment-signature"]))
        for seen in proxy.seen
        if "payment-signature" in seen.headers
    ]


def _cap(gateway: Any) -> int:
    answer = __import__("requests").post(
        gateway.url + "/v1/chat/completions",
        json={"model": "gpt-4.1-2025-04-14", "messages": ASK},
        headers={"Authorization": "Bearer x"},
        timeout=5,
    )
    challenge = parse_challenge(answer.headers, answer.content)
    assert challenge is not None and challenge.x402_version == 2
    return challenge.accepts[0].amount


def test_first_call_opens_a_session_the_next_twenty_ride_on_it(
    account: LocalAccount, gateway_v2: Any, proxy: fp.FaultProxy, spy: SignSpy
) -> None:
    with LLM(account, proxy.url) as llm:
        before = gateway_v2.request_count
        first = _chat(llm)
        assert gateway_v2.request_count - before == 2
        receipt = first.payment
        assert receipt is not None and receipt.x402_version == 2 and receipt.scheme == "upto"
        assert receipt.session_id and receipt.new_payment and receipt.payer == account.address
        assert spy.calls == 1
        for _ in range(20):
            before = gateway_v2.request_count
            out = _chat(llm)
            assert gateway_v2.request_count - before == 1
            assert out.payment is not None and not out.payment.new_payment
            assert out.payment.session_id == receipt.session_id
    assert spy.calls == 1
    (permit,) = _permits(proxy)
    assert permit["accepted"]["scheme"] == "upto"
    assert [s.headers.get("x-upto-session") for s in proxy.seen[2:]] == [receipt.session_id] * 20


def test_exhausted_session_leads_to_exactly_one_new_permit(
    account: LocalAccount, gateway_v2: Any, proxy: fp.FaultProxy, spy: SignSpy
) -> None:
    price = gateway_v2.token_price
    with LLM(account, proxy.url) as llm:
        first = _chat(llm)
        gateway_v2.token_price = price * 10**9  # the next answer costs more than the cap
        spending = _chat(llm)  # rides the session, which the gateway then marks spent
        assert spending.payment is not None and not spending.payment.new_payment
        gateway_v2.token_price = price
        before = gateway_v2.request_count
        renewed = _chat(llm)  # "Session expired or exhausted" -> ask again -> one new permit
        assert gateway_v2.request_count - before == 3
        assert spy.calls == 2
        assert renewed.payment is not None and renewed.payment.new_payment
        assert renewed.payment.session_id != first.payment.session_id  # type: ignore[union-attr]
        after = _chat(llm)  # and the new session is reused
        assert after.payment is not None and not after.payment.new_payment
    assert spy.calls == 2
    nonces = [p["payload"]["permit2Authorization"]["nonce"] for p in _permits(proxy)]
    assert len(nonces) == 2 and nonces[0] != nonces[1]  # a fresh permit, never a replay
    sessions = [e for e in gateway_v2.ledger.entries if e.session_id]
    assert len(sessions) == 2 and sessions[0].amount == sessions[0].cap  # spent up to its cap


def test_ledger_amount_equals_the_metered_cost(account: LocalAccount, gateway_v2: Any) -> None:
    with LLM(account, gateway_v2.url) as llm:
        outs = [_chat(llm) for _ in range(5)]
        outs.append(llm.completion(MODEL, "Once upon a time"))  # type: ignore[arg-type]
    tokens = {}
    for out in outs:
        assert out.usage is not None and out.payment is not None
        tokens[out.payment.session_id] = tokens.get(out.payment.session_id, 0) + (
            out.usage.prompt_tokens + out.usage.completion_tokens
        )
    for entry in gateway_v2.ledger.entries:
        assert entry.amount == tokens[entry.session_id] * gateway_v2.token_price
        assert entry.amount <= entry.cap and entry.payer == account.address
    assert len(tokens) == 2  # chat and completion are two routes, one session each


def test_cap_below_the_session_price_signs_nothing(
    account: LocalAccount, gateway_v2: Any, spy: SignSpy
) -> None:
    cap = _cap(gateway_v2)
    llm = LLM(account, gateway_v2.url, max_payment=cap - 1)
    with llm, pytest.raises(PaymentPolicyError, match=f"{cap}.*{cap - 1}"):
        llm.chat(MODEL, ASK)
    assert spy.calls == 0 and gateway_v2.ledger.entries == []


def test_streaming_on_a_session(account: LocalAccount, gateway_v2: Any, spy: SignSpy) -> None:
    with LLM(account, gateway_v2.url) as llm:
        plain = _chat(llm)
        before = gateway_v2.request_count
        chunks = list(llm.chat(MODEL, ASK, stream=True))  # type: ignore[arg-type]
        assert gateway_v2.request_count - before == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert plain.chat_output is not None and text == plain.chat_output["content"]
    final = chunks[-1]
    assert final.is_final and final.tee_proof is not None and final.tee_proof.verified
    assert final.payment is not None and final.payment.session_id == plain.payment.session_id  # type: ignore[union-attr]
    assert spy.calls == 1


@pytest.mark.parametrize("mode", list(dict.fromkeys(x402SettlementMode)))
def test_settlement_mode_is_sent_in_the_generation_2_spelling(
    account: LocalAccount, gateway_v2: Any, proxy: fp.FaultProxy, mode: x402SettlementMode
) -> None:
    with LLM(account, proxy.url) as llm:
        _chat(llm, x402_settlement_mode=mode)
    paid = [s for s in proxy.seen if "payment-signature" in s.headers]
    assert [s.headers["x-settlement-type"] for s in paid] == [mode.wire_value(2)]
    (entry,) = gateway_v2.ledger.entries
    assert x402SettlementMode.parse(entry.settlement_type) is mode


async def test_async_calls_share_the_session(
    account: LocalAccount, gateway_v2: Any, spy: SignSpy
) -> None:
    llm = LLM(account, gateway_v2.url)
    first = await llm.achat(MODEL, ASK)
    before = gateway_v2.request_count
    outs = await asyncio.gather(*(llm.achat(MODEL, ASK) for _ in range(10)))
    await llm.aclose()
    assert gateway_v2.request_count - before == 10
    assert {o.payment.session_id for o in outs} == {first.payment.session_id}  # type: ignore[union-attr]
    assert spy.calls == 1


def test_concurrent_first_calls_open_one_session(
    account: LocalAccount, gateway_v2: Any, spy: SignSpy
) -> None:
    """Sixteen threads call a route nobody has paid yet: one of them learns the terms and opens
    the session, the others wait for it and ride on it (one permit, one cap authorized)."""
    from concurrent.futures import ThreadPoolExecutor

    with LLM(account, gateway_v2.url) as llm, ThreadPoolExecutor(16) as pool:
        before = gateway_v2.request_count
        outs = list(pool.map(lambda _: _chat(llm), range(16)))
    assert spy.calls == 1
    assert gateway_v2.request_count - before == 17  # one 402, then one request per call
    assert len({o.payment.session_id for o in outs}) == 1  # type: ignore[union-attr]
    assert sum(o.payment.new_payment for o in outs) == 1  # type: ignore[union-attr]


async def test_concurrent_first_async_calls_open_one_session(
    account: LocalAccount, gateway_v2: Any, spy: SignSpy
) -> None:
    llm = LLM(account, gateway_v2.url)
    before = gateway_v2.request_count
    outs = await asyncio.gather(*(llm.achat(MODEL, ASK) for _ in range(16)))
    await llm.aclose()
    assert spy.calls == 1
    assert gateway_v2.request_count - before == 17
    assert len({o.payment.session_id for o in outs}) == 1  # type: ignore[union-attr]
