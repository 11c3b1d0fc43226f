"""The local gateway in generation 1 (x402 v1 ``exact``), over plain HTTP with payments signed
by eth-account here: the 402 challenge, paid answers, every rejection, the ledger, TEE proofs."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account import Account
from opengradient_shared import VerificationError, tee
from opengradient_shared.gateway import LocalGateway
from opengradient_shared.x402 import encode_header, exact, parse_challenge
from opengradient_shared.x402.challenge import PaymentRequirement

CHAT = "/v1/chat/completions"
HEADERS = {"Authorization": "Bearer test"}
BODY = {
    "model": "gpt-4.1-2025-04-14",
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 20,
}


def _ask(gw: Any, body: dict[str, Any] = BODY, path: str = CHAT, **headers: str) -> Any:
    return requests.post(gw.url + path, json=body, headers={**HEADERS, **headers}, timeout=10)


def _requirement(gw: Any, path: str = CHAT) -> PaymentRequirement:
    answer = _ask(
        gw, path=path, body=BODY if path == CHAT else {"model": "gpt-4.1-2025-04-14", "prompt": "x"}
    )
    challenge = parse_challenge(answer.headers, answer.content)
    assert challenge is not None
    return challenge.accepts[0]


def _sign(account: Any, requirement: PaymentRequirement, **change: Any) -> str:
    """An X-PAYMENT header for ``requirement``; ``change`` overrides authorization fields
    (still signed correctly), ``network`` the payload's network, ``signer`` who signs."""
    now = int(time.time())
    authorization = {
        "from": account.address,
        "to": requirement.pay_to,
        "value": str(requirement.amount),
        "validAfter": str(now - 60),
        "validBefore": str(now + 300),
        "nonce": "0x" + secrets.token_bytes(32).hex(),
    }
    network = change.pop("network", requirement.network)
    signer = change.pop("signer", account)
    authorization.update({k: str(v) for k, v in change.items()})
    signed = signer.sign_typed_data(full_message=exact.typed_data(requirement, authorization))
    payload = {
        "x402Version": 1,
        "scheme": "exact",
        "network": network,
        "payload": {"signature": "0x" + signed.signature.hex(), "authorization": authorization},
    }
    return encode_header(payload)


def _paid(gw: Any, account: Any, body: dict[str, Any] = BODY, path: str = CHAT, **kw: str) -> Any:
    return _ask(gw, body, path, **{"X-PAYMENT": _sign(account, _requirement(gw, path))}, **kw)


def test_unpaid_request_gets_the_v1_challenge(gateway: Any) -> None:
    answer = _ask(gateway)
    assert answer.status_code == 402
    body = answer.json()
    assert body["x402Version"] == 1 and body["error"]
    (entry,) = body["accepts"]
    assert entry == {
        "scheme": "exact",
        "network": "og-evm",
        "maxAmountRequired": "1000",
        "resource": gateway.url + CHAT,
        "description": "Chat completion",
        "mimeType": "application/json",
        "payTo": gateway.pay_to,
        "maxTimeoutSeconds": 300,
        "asset": "0x094E464A23B90A71a0894D5D1e5D470FfDD074e1",
        "extra": {"name": "OUSDC", "version": "2"},
    }
    assert gateway.ledger.entries == []


def test_network_asset_payee_and_price_per_model_are_configurable(
    tee_signing_key_pem: bytes,
) -> None:
    pay_to = Account.create().address
    with LocalGateway(
        network="base",
        pay_to=pay_to,
        price={"gpt-4.1-2025-04-14": 7, "openai/o4-mini": 9},
        signing_key_pem=tee_signing_key_pem,
    ) as gw:
        entry = _ask(gw).json()["accepts"][0]
        assert (entry["network"], entry["payTo"], entry["maxAmountRequired"]) == (
            "base",
            pay_to,
            "7",
        )
        assert entry["extra"] == {"name": "USD Coin", "version": "2"}
        assert entry["asset"] == "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
        other = _ask(gw, {**BODY, "model": "o4-mini"}).json()["accepts"][0]
        assert other["maxAmountRequired"] == "9"
        gw.price = 12  # a knob changed while running
        assert _ask(gw).json()["accepts"][0]["maxAmountRequired"] == "12"


def test_paid_request_is_answered_settled_and_receipted(gateway: Any, account: Any) -> None:
    answer = _paid(gateway, account)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["choices"][0]["message"]["content"]
    receipt = json.loads(base64.b64decode(answer.headers["X-PAYMENT-RESPONSE"]))
    assert receipt["success"] is True and receipt["payer"] == account.address
    assert receipt["network"] == "og-evm" and receipt["transaction"].startswith("0x")
    assert answer.headers["x-processing-hash"].startswith("0x")
    (entry,) = gateway.ledger.entries
    assert (entry.payer, entry.amount, entry.scheme, entry.network) == (
        account.address,
        1000,
        "exact",
        "og-evm",
    )
    assert entry.path == CHAT and entry.settlement_type == "settle-batch"
    assert entry.transaction == receipt["transaction"] and entry.session_id is None


def test_answer_carries_a_tee_proof_that_verifies(gateway: Any, account: Any) -> None:
    body = _paid(gateway, account).json()
    key = tee.load_public_key(
        requests.get(gateway.url + "/signing-key", timeout=5).json()["public_key"]
    )
    message = body["choices"][0]["message"]
    proof = tee.verify(
        tee.proof_from_fields(body),
        key,
        expected_request_hash=tee.request_hash(BODY),
        expected_output_hash=tee.output_hash(message["content"], message.get("tool_calls")),
    )
    assert proof.verified and proof.tee_id == gateway.tee_id
    assert body["tee_request_hash"] == tee.request_hash(BODY)  # bare hex, no 0x
    assert isinstance(body["tee_timestamp"], int)
    with pytest.raises(VerificationError, match="output hash"):
        tee.verify(
            tee.proof_from_fields(body),
            key,
            expected_request_hash=tee.request_hash(BODY),
            expected_output_hash=tee.output_hash(message["content"] + "!"),
        )


def test_signing_key_endpoint_and_health(gateway: Any, account: Any) -> None:
    info = requests.get(gateway.url + "/signing-key", timeout=5).json()
    assert info["public_key"] == gateway.public_key_pem
    assert (
        info["tee_id"] == gateway.tee_id == tee.tee_id_of(tee.load_public_key(info["public_key"]))
    )
    before = requests.get(gateway.url + "/health", timeout=5).json()
    _paid(gateway, account)  # one unpaid ask, one paid call
    after = requests.get(gateway.url + "/health", timeout=5).json()
    assert after["status"] == "ok"
    assert after["request_count"] - before["request_count"] == 2 == gateway.request_count


def test_completion_is_paid_and_proved(gateway: Any, account: Any) -> None:
    body = {"model": "gpt-4.1-2025-04-14", "prompt": "Say hi to the reader", "max_tokens": 30}
    answer = _paid(gateway, account, body, "/v1/completions")
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["object"] == "text_completion" and data["choices"][0]["text"]
    proof = tee.verify(
        tee.proof_from_fields(data),
        tee.load_public_key(gateway.public_key_pem),
        expected_request_hash=tee.request_hash(body, completion=True),
        expected_output_hash=tee.output_hash(data["choices"][0]["text"]),
    )
    assert proof.verified
    assert gateway.ledger.entries[0].path == "/v1/completions"


def test_stream_is_framed_as_sse_and_ends_with_done(gateway: Any, account: Any) -> None:
    body = {**BODY, "stream": True, "messages": [{"role": "user", "content": "one two three four"}]}
    answer = _paid(gateway, account, body)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    assert "X-PAYMENT-RESPONSE" in answer.headers
    raw = answer.content
    frames = raw.split(b"\n\n")
    assert frames[-1] == b"" and frames[-2] == b"data: [DONE]"
    events = [json.loads(f.removeprefix(b"data: ")) for f in frames[:-2]]
    assert all(f.startswith(b"data: ") for f in frames[:-1])
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    assert len(events) > 3  # the text comes in several chunks
    assert all(e["choices"][0]["delta"]["role"] == "assistant" for e in events[:-1])
    final = events[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["usage"]["total_tokens"] > 0
    proof = tee.verify(
        tee.proof_from_fields(final),
        tee.load_public_key(gateway.public_key_pem),
        expected_request_hash=tee.request_hash(body),
        expected_output_hash=tee.output_hash(text),
    )
    assert proof.verified
    # a streamed and a plain call hash alike
    assert final["tee_request_hash"] == tee.request_hash({**body, "stream": False})


# ---- rejections -----------------------------------------------------------------------------


def _refusal(gw: Any, header: str) -> str:
    answer = _ask(gw, **{"X-PAYMENT": header})
    assert answer.status_code == 402
    body = answer.json()
    assert body["accepts"], "a refusal repeats the challenge"
    return str(body["error"])


REJECTIONS = [
    pytest.param(lambda a, r: {"signer": Account.create()}, "invalid_signature", id="other-signer"),
    pytest.param(lambda a, r: {"to": Account.create().address}, "wrong_recipient", id="recipient"),
    pytest.param(lambda a, r: {"value": r.amount - 1}, "amount_mismatch", id="underpaid"),
    pytest.param(lambda a, r: {"value": r.amount + 1}, "amount_mismatch", id="overpaid"),
    pytest.param(lambda a, r: {"network": "base"}, "wrong_network", id="network"),
    pytest.param(lambda a, r: {"validBefore": int(time.time()) - 1}, "expired", id="expired"),
    pytest.param(
        lambda a, r: {"validAfter": int(time.time()) + 3600}, "not_yet_valid", id="not-yet-valid"
    ),
]


@pytest.mark.parametrize(("change", "reason"), REJECTIONS)
def test_each_rejection_names_its_reason(
    gateway: Any, account: Any, change: Any, reason: str
) -> None:
    requirement = _requirement(gateway)
    error = _refusal(gateway, _sign(account, requirement, **change(account, requirement)))
    assert error.startswith(reason), error
    assert gateway.ledger.entries == []


def test_signature_over_another_asset_is_invalid(gateway: Any, account: Any) -> None:
    requirement = _requirement(gateway)
    other = PaymentRequirement(**{**requirement.__dict__, "asset": Account.create().address})
    assert _refusal(gateway, _sign(account, other)).startswith("invalid_signature")


def test_tampered_signature_is_invalid(gateway: Any, account: Any) -> None:
    payload = json.loads(base64.b64decode(_sign(account, _requirement(gateway))))
    signature = payload["payload"]["signature"]
    payload["payload"]["signature"] = (
        signature[:-4] + ("00" if signature[-4:-2] != "00" else "11") + signature[-2:]
    )
    assert _refusal(gateway, encode_header(payload)).startswith("invalid_signature")


def test_replayed_nonce_is_refused_and_settled_once(gateway: Any, account: Any) -> None:
    header = _sign(account, _requirement(gateway))
    assert _ask(gateway, **{"X-PAYMENT": header}).status_code == 200
    assert _refusal(gateway, header).startswith("nonce_already_used")
    # also with another body: the nonce, not the request, is what was paid
    other = {**BODY, "messages": [{"role": "user", "content": "Another question."}]}
    replay = _ask(gateway, other, **{"X-PAYMENT": header})
    assert replay.status_code == 402 and replay.json()["error"].startswith("nonce_already_used")
    assert len(gateway.ledger.entries) == 1


def test_balances_are_enforced_and_settable_at_runtime(gateway: Any, account: Any) -> None:
    gateway.balances = {account.address.lower(): 1500}
    assert _paid(gateway, account).status_code == 200
    assert _refusal(gateway, _sign(account, _requirement(gateway))).startswith("insufficient_funds")
    stranger = Account.create()  # not listed: no funds
    assert _refusal(gateway, _sign(stranger, _requirement(gateway))).startswith(
        "insufficient_funds"
    )
    gateway.balances = None  # unlimited again
    assert _paid(gateway, account).status_code == 200
    assert [e.amount for e in gateway.ledger.entries] == [1000, 1000]


def test_concurrent_requests_with_one_payment_settle_once(gateway: Any, account: Any) -> None:
    header = _sign(account, _requirement(gateway))
    start = threading.Barrier(10)
    statuses: list[int] = []

    def send() -> None:
        start.wait()
        statuses.append(_ask(gateway, **{"X-PAYMENT": header}).status_code)

    threads = [threading.Thread(target=send) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [402] * 9
    assert len(gateway.ledger.entries) == 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("***", "invalid_payment_header"),
        (_b64(b"{not json"), "invalid_payment_header"),
        (_b64(b"[1]"), "invalid_payment_header"),
        (_b64(b'{"x402Version": 2, "scheme": "exact"}'), "unsupported_x402_version"),
        (_b64(b'{"x402Version": 1, "scheme": "upto", "network": "og-evm"}'), "unsupported_scheme"),
        (_b64(b'{"x402Version": 1, "scheme": "exact", "network": "og-evm"}'), "invalid_payload"),
        (
            _b64(
                json.dumps(
                    {
                        "x402Version": 1,
                        "scheme": "exact",
                        "network": "og-evm",
                        "payload": {
                            "signature": "0x12",
                            "authorization": {"from": "x", "to": "y", "nonce": "0x1"},
                        },
                    }
                ).encode()
            ),
            "invalid_payload",
        ),
    ],
)
def test_malformed_payment_header_is_a_402_with_a_reason(
    gateway: Any, header: str, reason: str
) -> None:
    assert _refusal(gateway, header).startswith(reason)
    assert gateway.ledger.entries == []


# ---- settlement type and the ledger file ---------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "recorded"),
    [
        ("settle", "settle"),
        ("settle-metadata", "settle-metadata"),
        ("settle-batch", "settle-batch"),
        ("private", "settle"),
        ("individual", "settle-metadata"),
        ("batch", "settle-batch"),
    ],
)
def test_settlement_type_of_either_generation_is_recorded(
    gateway: Any, account: Any, sent: str, recorded: str
) -> None:
    assert _paid(gateway, account, **{"X-SETTLEMENT-TYPE": sent}).status_code == 200
    assert gateway.ledger.entries[0].settlement_type == recorded


def test_unknown_settlement_type_is_a_400_before_payment(gateway: Any, account: Any) -> None:
    header = _sign(account, _requirement(gateway))
    answer = _ask(gateway, **{"X-PAYMENT": header, "X-SETTLEMENT-TYPE": "whenever"})
    assert answer.status_code == 400 and "whenever" in answer.json()["error"]
    assert gateway.ledger.entries == []
    assert _ask(gateway, **{"X-PAYMENT": header}).status_code == 200  # the payment is still good


def test_ledger_file_gets_one_json_line_per_settlement(
    tmp_path: Path, tee_signing_key_pem: bytes, account: Any
) -> None:
    path = tmp_path / "ledger.jsonl"
    with LocalGateway(ledger_path=str(path), signing_key_pem=tee_signing_key_pem) as gw:
        for _ in range(2):
            assert _paid(gw, account).status_code == 200
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert [line["nonce"] for line in lines] == [e.nonce for e in gw.ledger.entries]
        assert lines[0]["payer"] == account.address and lines[0]["amount"] == 1000
