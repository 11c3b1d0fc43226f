"""x402 version 2 ``exact`` (EIP-3009 and Permit2 variants): signatures reproduced from fixed
inputs, and the whole exchange against the local gateway offering it (real signatures)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from opengradient_shared import LLM, TEE_LLM, PaymentError, TextGenerationOutput
from opengradient_shared.exchange import Exchange, HttpResponse
from opengradient_shared.protocol import prepare_chat
from opengradient_shared.verification import TrustAnchor, VerificationPolicy
from opengradient_shared.x402 import SCHEMES, decode_header, exact_v2, scheme_for
from opengradient_shared.x402.challenge import PaymentChallenge, requirement_of
from opengradient_shared.x402.policy import PaymentPolicy
from signing_spy import SignSpy

# Fixed inputs: the well-known eth-account documentation key, a pinned clock and nonce.
KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
NOW, NONCE = 1_800_000_000, 0x1234
USDC_BASE = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
PAY_TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
# The signatures of these inputs (RFC 6979 signatures are deterministic): any change to the
# message, types or domain changes them.
EIP3009_SIGNATURE = (
    "0xef1538c7dfc0ca3c3037372cc29622752adbc0ec63ea976b19e7d91b9fef877a"
    "0da3944a993c65f5cb269d9408a9b240fe862a3268b95b7ae24f44dcb778b9451c"
)
PERMIT2_SIGNATURE = (
    "0x524d0b4dc7adf8081ea0377460f430ccf688dc23bc7b5ee24f448bfa3059717e"
    "3e505de69871b5f7b3e9cb244a1fb77134109539f9b9f4d76a1e8d273b2bd7671b"
)
MODEL = TEE_LLM.GPT_4_1_2025_04_14
ASK = [{"role": "user", "content": "One short sentence, please."}]


def _entry(method: str | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"name": "USD Coin", "version": "2"}
    if method is not None:
        extra["assetTransferMethod"] = method
    return {
        "scheme": "exact",
        "network": "eip155:8453",
        "asset": USDC_BASE,
        "amount": "10000",
        "payTo": PAY_TO,
        "maxTimeoutSeconds": 300,
        "extra": extra,
    }


def _signed(method: str | None) -> dict[str, Any]:
    requirement = requirement_of(_entry(method), 2)
    resource = {"url": "http://gw.test/v1/chat/completions", "description": "Chat"}
    challenge = PaymentChallenge(2, None, (requirement,), resource)
    account = Account.from_key(KEY)
    payment = exact_v2.sign_payment(account, requirement, challenge, now=NOW, nonce=NONCE)
    assert payment.header_name == "PAYMENT-SIGNATURE"
    assert decode_header(payment.header_value) == payment.payload
    assert payment.payload["accepted"] == _entry(method)
    assert payment.payload["resource"] == resource and payment.payload["x402Version"] == 2
    return payment.payload["payload"]  # type: ignore[no-any-return]


def test_one_registry_entry_makes_v2_exact_payable() -> None:
    assert SCHEMES[(2, "exact")] is exact_v2
    assert scheme_for(requirement_of(_entry(None), 2)) is exact_v2


@pytest.mark.parametrize("method", [None, "eip3009"])
def test_eip3009_signature_reproduced_from_fixed_inputs(method: str | None) -> None:
    inner = _signed(method)
    account = Account.from_key(KEY)
    assert inner["authorization"] == {
        "from": account.address,
        "to": PAY_TO,
        "value": "10000",
        "validAfter": str(NOW - 600),
        "validBefore": str(NOW + 300),
        "nonce": "0x" + NONCE.to_bytes(32, "big").hex(),
    }
    # independently: eth-account's general EIP-712 encoder over the EIP-3009 types
    expected = Account.sign_message(
        encode_typed_data(
            domain_data={
                "name": "USD Coin",
                "version": "2",
                "chainId": 8453,
                "verifyingContract": USDC_BASE,
            },
            message_types={
                "TransferWithAuthorization": [
                    {"name": "from", "type": "address"},
                    {"name": "to", "type": "address"},
                    {"name": "value", "type": "uint256"},
                    {"name": "validAfter", "type": "uint256"},
                    {"name": "validBefore", "type": "uint256"},
                    {"name": "nonce", "type": "bytes32"},
                ]
            },
            message_data={
                "from": account.address,
                "to": PAY_TO,
                "value": 10000,
                "validAfter": NOW - 600,
                "validBefore": NOW + 300,
                "nonce": NONCE.to_bytes(32, "big"),
            },
        ),
        KEY,
    )
    assert inner["signature"] == "0x" + expected.signature.hex().removeprefix("0x")
    assert inner["signature"] == EIP3009_SIGNATURE


def test_permit2_signature_reproduced_from_fixed_inputs() -> None:
    inner = _signed("permit2")
    account = Account.from_key(KEY)
    proxy = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"
    assert inner["permit2Authorization"] == {
        "from": account.address,
        "permitted": {"token": USDC_BASE, "amount": "10000"},
        "spender": proxy,
        "nonce": str(NONCE),
        "deadline": str(NOW + 300),
        "witness": {"to": PAY_TO, "validAfter": str(NOW - 600)},
    }
    expected = Account.sign_message(
        encode_typed_data(
            domain_data={
                "name": "Permit2",
                "chainId": 8453,
                "verifyingContract": "0x000000000022D473030F116dDEE9F6B43aC78BA3",
            },
            message_types={
                "PermitWitnessTransferFrom": [
                    {"name": "permitted", "type": "TokenPermissions"},
                    {"name": "spender", "type": "address"},
                    {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"},
                    {"name": "witness", "type": "Witness"},
                ],
                "TokenPermissions": [
                    {"name": "token", "type": "address"},
                    {"name": "amount", "type": "uint256"},
                ],
                "Witness": [
                    {"name": "to", "type": "address"},
                    {"name": "validAfter", "type": "uint256"},
                ],
            },
            message_data={
                "permitted": {"token": USDC_BASE, "amount": 10000},
                "spender": proxy,
                "nonce": NONCE,
                "deadline": NOW + 300,
                "witness": {"to": PAY_TO, "validAfter": NOW - 600},
            },
        ),
        KEY,
    )
    assert inner["signature"] == "0x" + expected.signature.hex().removeprefix("0x")
    assert inner["signature"] == PERMIT2_SIGNATURE


def test_unknown_transfer_method_is_refused_before_signing(account: LocalAccount) -> None:
    exchange = Exchange(
        account=account,
        policy=PaymentPolicy(),
        verification=VerificationPolicy.OFF,
        anchor=TrustAnchor(None, None),
    )
    challenge = {"x402Version": 2, "accepts": [_entry("permit3")], "resource": {"url": "x"}}
    header = base64.b64encode(json.dumps(challenge).encode()).decode()
    flow = exchange.flow("http://gw.test", prepare_chat(MODEL, ASK))
    next(flow)
    with pytest.raises(PaymentError, match="assetTransferMethod"):
        flow.send(HttpResponse(402, {"PAYMENT-REQUIRED": header}, b"{}"))


@pytest.mark.parametrize("method", ["eip3009", "permit2"])
@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"payTo": "0x1234"}, "payTo"),
        ({"asset": "0x" + "zz" * 20}, "asset"),
        ({"network": f"eip155:{2**256}"}, "chain id"),
        ({"maxTimeoutSeconds": 2**256}, "maxTimeoutSeconds"),
    ],
)
def test_every_value_is_checked_before_the_key_is_used(
    method: str, changes: dict[str, Any], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad server value is a ValueError naming it, raised before any signing code runs (so
    no frame that holds the key can appear in a traceback)."""
    signed: list[str] = []
    for name in ("sign_typed_data", "unsafe_sign_hash"):
        monkeypatch.setattr(LocalAccount, name, lambda *a, _n=name, **k: signed.append(_n))
    requirement = replace(requirement_of(_entry(method), 2), **_fields(changes))
    challenge = PaymentChallenge(2, None, (requirement,), {"url": "x"})
    with pytest.raises(ValueError, match=named):
        exact_v2.sign_payment(Account.from_key(KEY), requirement, challenge, now=NOW)
    assert signed == []


def _fields(changes: dict[str, Any]) -> dict[str, Any]:
    names = {"payTo": "pay_to", "maxTimeoutSeconds": "max_timeout_seconds"}
    return {names.get(key, key): value for key, value in changes.items()}


# ---- against the local gateway ---------------------------------------------------------------


@pytest.fixture(params=["v2-exact", "v2-exact-permit2"])
def gateway_exact(request: Any, tee_signing_key_pem: bytes) -> Any:
    from opengradient_shared.gateway import LocalGateway

    with LocalGateway(protocol=request.param, signing_key_pem=tee_signing_key_pem) as gw:
        yield gw


def test_v2_exact_pays_each_call_once_and_reads_payment_response(
    account: LocalAccount, gateway_exact: Any, spy: SignSpy
) -> None:
    with LLM(account, gateway_exact.url) as llm:
        outs = [llm.chat(MODEL, ASK) for _ in range(3)]
    assert spy.calls == 3  # one payment per call
    assert gateway_exact.request_count == 4  # one 402, then each call pre-pays
    entries = gateway_exact.ledger.entries
    for out, entry in zip(outs, entries, strict=True):
        assert isinstance(out, TextGenerationOutput)
        assert out.tee_proof is not None and out.tee_proof.verified
        receipt = out.payment
        assert receipt is not None and receipt.x402_version == 2 and receipt.scheme == "exact"
        assert receipt.success is True and receipt.transaction == entry.transaction
        assert receipt.cost == receipt.amount == 1000 and receipt.session_id is None
        assert receipt.payer == account.address and receipt.new_payment


async def test_v2_exact_async_stream_carries_the_receipt(
    account: LocalAccount, gateway_exact: Any
) -> None:
    llm = LLM(account, gateway_exact.url)
    stream = await llm.achat(MODEL, ASK, stream=True)
    assert not isinstance(stream, TextGenerationOutput)
    chunks = [c async for c in stream]
    await llm.aclose()
    final = stream.final_chunk
    assert chunks and final is not None and final.payment is not None
    assert final.payment.success is True and final.payment.cost == 1000


@pytest.mark.parametrize(
    "payload",
    [
        {"x402Version": 2},
        {"x402Version": 2, "payload": "x", "accepted": []},
        {"x402Version": 2, "payload": 7, "accepted": {}},
        {"x402Version": 2, "payload": {"authorization": {"nonce": 5}}, "accepted": {}},
        {"x402Version": 2, "payload": {"permit2Authorization": []}, "accepted": {"scheme": 1}},
        {"x402Version": 1, "payload": {}},
    ],
)
def test_malformed_v2_exact_payment_gets_402_with_a_reason(
    gateway_exact: Any, payload: dict[str, Any]
) -> None:
    import requests

    header = base64.b64encode(json.dumps(payload).encode()).decode()
    answer = requests.post(
        gateway_exact.url + "/v1/chat/completions",
        json={"model": "gpt-4.1-2025-04-14", "messages": ASK},
        headers={"Authorization": "Bearer x", "PAYMENT-SIGNATURE": header},
        timeout=5,
    )
    assert answer.status_code == 402 and answer.json()["error"]
    assert "PAYMENT-REQUIRED" in answer.headers and gateway_exact.ledger.entries == []
