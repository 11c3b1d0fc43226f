"""The local gateway in generation 2 (x402 v2 ``upto`` over Permit2, metered sessions), over
plain HTTP with permits signed by eth-account here."""

from __future__ import annotations

import base64
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account import Account
from opengradient_shared import tee
from opengradient_shared.gateway import LocalGateway
from opengradient_shared.x402 import encode_header, parse_challenge, upto
from opengradient_shared.x402.challenge import PaymentChallenge, PaymentRequirement
from opengradient_shared.x402.networks import OPG_BASE_ADDRESS, UPTO_PROXY_ADDRESS

CHAT = "/v1/chat/completions"
HEADERS = {"Authorization": "Bearer test"}
BODY = {"model": "gpt-4.1-2025-04-14", "messages": [{"role": "user", "content": "Say hello."}]}
EXHAUSTED = {"error": "Session expired or exhausted"}


def _ask(gw: Any, body: dict[str, Any] = BODY, path: str = CHAT, **headers: str) -> Any:
    return requests.post(gw.url + path, json=body, headers={**HEADERS, **headers}, timeout=10)


def _challenge(gw: Any, path: str = CHAT) -> PaymentChallenge:
    body = BODY if path == CHAT else {"model": "gpt-4.1-2025-04-14", "prompt": "x"}
    answer = _ask(gw, body, path)
    assert answer.status_code == 402
    challenge = parse_challenge(answer.headers, answer.content)
    assert challenge is not None
    return challenge


def _permit(account: Any, challenge: PaymentChallenge, **change: Any) -> str:
    """A PAYMENT-SIGNATURE header; ``change`` overrides permit fields (still signed right):
    token, amount, spender, nonce, deadline, to, facilitator, validAfter, accepted, signer."""
    requirement: PaymentRequirement = challenge.accepts[0]
    now = int(time.time())
    authorization = {
        "from": account.address,
        "permitted": {
            "token": change.pop("token", requirement.asset),
            "amount": str(change.pop("amount", requirement.amount)),
        },
        "spender": change.pop("spender", UPTO_PROXY_ADDRESS),
        "nonce": str(change.pop("nonce", secrets.randbits(256))),
        "deadline": str(change.pop("deadline", now + 300)),
        "witness": {
            "to": change.pop("to", requirement.pay_to),
            "facilitator": change.pop("facilitator", requirement.extra["facilitatorAddress"]),
            "validAfter": str(change.pop("validAfter", now - 600)),
        },
    }
    accepted = change.pop("accepted", dict(requirement.raw))
    signer = change.pop("signer", account)
    assert not change, change
    signed = signer.sign_typed_data(full_message=upto.typed_data(authorization, 8453))
    payload = {
        "x402Version": 2,
        "payload": {
            "permit2Authorization": authorization,
            "signature": "0x" + signed.signature.hex(),
        },
        "accepted": accepted,
        "resource": dict(challenge.resource or {}),
    }
    return encode_header(payload)


def _open(gw: Any, account: Any, path: str = CHAT, body: dict[str, Any] = BODY) -> Any:
    answer = _ask(gw, body, path, **{"PAYMENT-SIGNATURE": _permit(account, _challenge(gw, path))})
    assert answer.status_code == 200, answer.text
    return answer


def test_unpaid_request_gets_the_v2_challenge_header(gateway_v2: Any) -> None:
    answer = _ask(gateway_v2)
    assert answer.status_code == 402
    assert answer.json() == {}
    required = json.loads(base64.b64decode(answer.headers["PAYMENT-REQUIRED"]))
    assert required["x402Version"] == 2 and required["error"]
    assert required["resource"] == {
        "url": gateway_v2.url + CHAT,
        "description": "Chat completion",
        "mimeType": "application/json",
    }
    (entry,) = required["accepts"]
    assert entry == {
        "scheme": "upto",
        "network": "eip155:8453",
        "asset": OPG_BASE_ADDRESS,
        "amount": str(gateway_v2.session_cap),
        "payTo": gateway_v2.pay_to,
        "maxTimeoutSeconds": 300,
        "extra": {
            "name": "OpenGradient",
            "version": "1",
            "assetTransferMethod": "permit2",
            "facilitatorAddress": gateway_v2.facilitator,
        },
    }
    assert gateway_v2.ledger.entries == []


def test_a_permit_built_by_the_shared_signer_opens_a_session(gateway_v2: Any, account: Any) -> None:
    challenge = _challenge(gateway_v2)
    payment = upto.sign_payment(account, challenge.accepts[0], challenge, now=int(time.time()))
    answer = _ask(gateway_v2, **{payment.header_name: payment.header_value})
    assert answer.status_code == 200
    session = answer.headers["X-Upto-Session"]
    assert "X-PAYMENT-RESPONSE" not in answer.headers
    body = answer.json()
    message = body["choices"][0]["message"]
    assert tee.verify(
        tee.proof_from_fields(body),
        tee.load_public_key(gateway_v2.public_key_pem),
        expected_request_hash=tee.request_hash(BODY),
        expected_output_hash=tee.output_hash(message["content"]),
    ).verified
    (entry,) = gateway_v2.ledger.entries
    assert (entry.session_id, entry.payer, entry.scheme, entry.cap) == (
        session,
        account.address,
        "upto",
        gateway_v2.session_cap,
    )
    assert entry.nonce == payment.nonce and not entry.closed


def test_session_is_reused_metered_and_matches_the_ledger(gateway_v2: Any, account: Any) -> None:
    gateway_v2.token_price = 1_000
    first = _open(gateway_v2, account)
    session = first.headers["X-Upto-Session"]
    tokens = [first.json()["usage"]["total_tokens"]]
    for i in range(5):
        body = {**BODY, "messages": [{"role": "user", "content": f"Question number {i}."}]}
        answer = _ask(gateway_v2, body, **{"X-Upto-Session": session})
        assert answer.status_code == 200
        assert answer.headers["X-Upto-Session"] == session
        tokens.append(answer.json()["usage"]["total_tokens"])
    (entry,) = gateway_v2.ledger.entries
    assert entry.amount == sum(tokens) * 1_000
    assert gateway_v2.request_count == 7  # the ask, the paid call, five session calls


def test_per_model_token_price(gateway_v2: Any, account: Any) -> None:
    gateway_v2.token_price = {"gpt-4.1-2025-04-14": 10, "o4-mini": 1_000}
    session = _open(gateway_v2, account).headers["X-Upto-Session"]
    cheap = gateway_v2.ledger.entries[0].amount
    body = {**BODY, "model": "o4-mini"}
    tokens = _ask(gateway_v2, body, **{"X-Upto-Session": session}).json()["usage"]["total_tokens"]
    assert gateway_v2.ledger.entries[0].amount == cheap + tokens * 1_000


def test_session_runs_out_at_its_cap_and_settles_the_cap(
    gateway_v2: Any, account: Any, tmp_path: Path
) -> None:
    gateway_v2.session_cap = 50
    gateway_v2.token_price = 7
    session = _open(gateway_v2, account).headers["X-Upto-Session"]
    statuses = []
    for _ in range(20):
        answer = _ask(gateway_v2, **{"X-Upto-Session": session})
        statuses.append(answer.status_code)
        if answer.status_code == 402:
            assert answer.json() == EXHAUSTED
            assert "PAYMENT-REQUIRED" not in answer.headers
            break
    assert statuses[-1] == 402 and set(statuses[:-1]) == {200}
    (entry,) = gateway_v2.ledger.entries
    assert entry.amount == 50 and entry.closed  # never above the cap
    # a new permit opens a new session
    assert _open(gateway_v2, account).headers["X-Upto-Session"] != session


def test_idle_session_expires(gateway_v2: Any, account: Any) -> None:
    session = _open(gateway_v2, account).headers["X-Upto-Session"]
    gateway_v2.session_idle_timeout = 0.0  # any pause is too long now
    time.sleep(0.01)
    answer = _ask(gateway_v2, **{"X-Upto-Session": session})
    assert answer.status_code == 402 and answer.json() == EXHAUSTED
    assert gateway_v2.ledger.entries[0].closed


def test_unknown_session_and_session_of_another_route_are_exhausted(
    gateway_v2: Any, account: Any
) -> None:
    assert _ask(gateway_v2, **{"X-Upto-Session": "no-such-session"}).json() == EXHAUSTED
    session = _open(gateway_v2, account).headers["X-Upto-Session"]
    other = _ask(
        gateway_v2,
        {"model": "gpt-4.1-2025-04-14", "prompt": "hi"},
        "/v1/completions",
        **{"X-Upto-Session": session},
    )
    assert other.status_code == 402 and other.json() == EXHAUSTED
    assert _ask(gateway_v2, **{"X-Upto-Session": session}).status_code == 200


def test_streaming_on_a_session(gateway_v2: Any, account: Any) -> None:
    session = _open(gateway_v2, account).headers["X-Upto-Session"]
    used = gateway_v2.ledger.entries[0].amount
    answer = _ask(gateway_v2, {**BODY, "stream": True}, **{"X-Upto-Session": session})
    assert answer.status_code == 200
    frames = answer.content.split(b"\n\n")
    assert frames[-2] == b"data: [DONE]"
    final = json.loads(frames[-3].removeprefix(b"data: "))
    cost = final["usage"]["total_tokens"] * gateway_v2.token_price
    assert gateway_v2.ledger.entries[0].amount == used + cost


def test_replayed_permit_is_refused(gateway_v2: Any, account: Any) -> None:
    header = _permit(account, _challenge(gateway_v2))
    assert _ask(gateway_v2, **{"PAYMENT-SIGNATURE": header}).status_code == 200
    replay = _ask(gateway_v2, **{"PAYMENT-SIGNATURE": header})
    assert replay.status_code == 402
    assert replay.json()["error"].startswith("nonce_already_used")
    assert "PAYMENT-REQUIRED" in replay.headers  # ask again: a fresh permit is welcome
    assert len(gateway_v2.ledger.entries) == 1


REJECTIONS = [
    pytest.param({"signer": Account.create()}, "invalid_signature", id="other-signer"),
    pytest.param({"spender": Account.create().address}, "wrong_spender", id="spender"),
    pytest.param({"to": Account.create().address}, "wrong_recipient", id="payee"),
    pytest.param({"facilitator": Account.create().address}, "wrong_facilitator", id="facilitator"),
    pytest.param({"token": Account.create().address}, "wrong_token", id="token"),
    pytest.param({"amount": 1}, "amount_mismatch", id="amount"),
    pytest.param({"deadline": 1}, "expired", id="expired"),
    pytest.param({"validAfter": 4_000_000_000}, "not_yet_valid", id="not-yet-valid"),
    pytest.param({"accepted": {"scheme": "exact"}}, "requirement_mismatch", id="accepted"),
]


@pytest.mark.parametrize(("change", "reason"), REJECTIONS)
def test_each_permit_rejection_names_its_reason(
    gateway_v2: Any, account: Any, change: dict[str, Any], reason: str
) -> None:
    answer = _ask(
        gateway_v2, **{"PAYMENT-SIGNATURE": _permit(account, _challenge(gateway_v2), **change)}
    )
    assert answer.status_code == 402
    assert answer.json()["error"].startswith(reason), answer.json()
    required = json.loads(base64.b64decode(answer.headers["PAYMENT-REQUIRED"]))
    assert required["error"] == answer.json()["error"]
    assert gateway_v2.ledger.entries == []


def test_balance_must_cover_the_session_cap(gateway_v2: Any, account: Any) -> None:
    gateway_v2.balances = {account.address: gateway_v2.session_cap - 1}
    answer = _ask(gateway_v2, **{"PAYMENT-SIGNATURE": _permit(account, _challenge(gateway_v2))})
    assert answer.status_code == 402 and answer.json()["error"].startswith("insufficient_funds")
    gateway_v2.balances = {account.address: gateway_v2.session_cap}
    assert _open(gateway_v2, account).status_code == 200


def test_open_sessions_settle_into_the_ledger_file_on_stop(
    tmp_path: Path, tee_signing_key_pem: bytes, account: Any
) -> None:
    path = tmp_path / "ledger.jsonl"
    with LocalGateway(
        protocol="v2", ledger_path=str(path), token_price=3, signing_key_pem=tee_signing_key_pem
    ) as gw:
        tokens = _open(gw, account).json()["usage"]["total_tokens"]
        assert not path.exists()  # open sessions are in memory until they end
    (line,) = [json.loads(text) for text in path.read_text().splitlines()]
    assert line["amount"] == tokens * 3 and line["closed"] is True
    assert line["session_id"] == gw.ledger.entries[0].session_id


@pytest.mark.parametrize(
    ("sent", "recorded"),
    [
        ("private", "settle"),
        ("individual", "settle-metadata"),
        ("batch", "settle-batch"),
        ("settle-metadata", "settle-metadata"),
        ("INDIVIDUAL_FULL", "settle-metadata"),
    ],
)
def test_settlement_names_of_both_generations(
    gateway_v2: Any, account: Any, sent: str, recorded: str
) -> None:
    challenge = _challenge(gateway_v2)
    answer = _ask(
        gateway_v2, **{"PAYMENT-SIGNATURE": _permit(account, challenge), "X-SETTLEMENT-TYPE": sent}
    )
    assert answer.status_code == 200
    assert gateway_v2.ledger.entries[0].settlement_type == recorded


def test_unknown_settlement_name_is_refused_before_the_permit_is_used(
    gateway_v2: Any, account: Any
) -> None:
    header = _permit(account, _challenge(gateway_v2))
    answer = _ask(gateway_v2, **{"PAYMENT-SIGNATURE": header, "X-SETTLEMENT-TYPE": "hashed"})
    assert answer.status_code == 400 and "hashed" in answer.json()["error"]
    assert gateway_v2.ledger.entries == []
    assert _ask(gateway_v2, **{"PAYMENT-SIGNATURE": header}).status_code == 200
