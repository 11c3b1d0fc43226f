"""Generation-2 payment facts from the captured traffic: decoding the challenge and an accepted
payment, and the Permit2 witness signature reproduced byte for byte."""

from __future__ import annotations

import base64
import json

from eth_account import Account
from gateway_vectors import load_vector
from opengradient_shared.x402 import decode_header, encode_header, parse_challenge, upto
from opengradient_shared.x402.networks import OPG_BASE_ADDRESS, UPTO_PROXY_ADDRESS
from opengradient_shared.x402.policy import PaymentPolicy

PERMIT2 = load_vector("eip712_upto_permit2_vector.json")


def _challenge_header() -> str:
    decoded = load_vector("payment_required.json")["PAYMENT-REQUIRED(decoded)"]
    return base64.b64encode(json.dumps(decoded).encode()).decode()


def test_payment_required_decodes() -> None:
    vector = load_vector("payment_required.json")
    challenge = parse_challenge({"payment-required": _challenge_header()}, vector["body"].encode())
    assert challenge is not None and challenge.x402_version == 2
    (requirement,) = challenge.accepts
    assert requirement.scheme == "upto" and requirement.network == "eip155:8453"
    assert requirement.asset == OPG_BASE_ADDRESS
    assert requirement.amount == 10**17
    assert requirement.max_timeout_seconds == 300
    assert requirement.extra["assetTransferMethod"] == "permit2"
    assert challenge.resource and challenge.resource["url"].endswith("/v1/chat/completions")


def test_session_exhausted_402_has_no_challenge() -> None:
    assert parse_challenge({}, b'{"error": "Session expired or exhausted"}') is None


def test_accepted_payment_example_decodes_and_recovers_its_payer() -> None:
    payload = load_vector("payment_payload_example.json")
    assert decode_header(encode_header(payload)) == payload
    challenge = parse_challenge({"PAYMENT-REQUIRED": _challenge_header()}, b"{}")
    assert challenge is not None
    (requirement,) = challenge.accepts
    assert payload["accepted"] == dict(requirement.raw)
    permit = payload["payload"]["permit2Authorization"]
    assert permit["spender"] == UPTO_PROXY_ADDRESS
    assert upto.recover_payer(payload, requirement) == permit["from"]


def test_permit2_vector_reproduced_byte_for_byte() -> None:
    account = Account.from_key("0x" + "22" * 32)
    assert account.address == PERMIT2["signer"]
    message = PERMIT2["typedData"]["message"]
    decoded = load_vector("payment_required.json")["PAYMENT-REQUIRED(decoded)"]
    entry = dict(decoded["accepts"][0])
    entry["amount"] = str(message["permitted"]["amount"])
    entry["payTo"] = message["witness"]["to"]
    entry["extra"] = {**entry["extra"], "facilitatorAddress": message["witness"]["facilitator"]}
    decoded = {**decoded, "accepts": [entry]}
    header = base64.b64encode(json.dumps(decoded).encode()).decode()
    challenge = parse_challenge({"PAYMENT-REQUIRED": header}, b"{}")
    assert challenge is not None
    requirement = PaymentPolicy().choose(challenge)
    now = 1_800_000_000
    signed = upto.sign_payment(
        account, requirement, challenge, now=now, nonce=int(message["nonce"])
    )
    assert signed.payload["payload"]["signature"] == PERMIT2["signature"]
    assert signed.expires_at == message["deadline"]
    assert signed.payload["accepted"] == entry  # a verbatim copy of the chosen requirement
    assert decode_header(signed.header_value) == signed.payload
