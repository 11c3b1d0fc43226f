"""Error messages about server data say what is wrong with it: a proof field that is a string,
but too long, is not called "not a string"; a PAYMENT-REQUIRED header that decodes to a JSON
array says it is not base64 of a JSON object."""

from __future__ import annotations

import base64

import pytest
from opengradient_shared import tee
from opengradient_shared.errors import VerificationError
from opengradient_shared.x402.challenge import ChallengeError, parse_challenge

PROOF = {
    "tee_id": "0x" + "ab" * 32,
    "tee_signature": "c2ln",
    "tee_request_hash": "00" * 32,
    "tee_output_hash": "00" * 32,
    "tee_timestamp": 1_700_000_000,
}


def test_an_over_long_proof_field_is_named_with_its_limit() -> None:
    with pytest.raises(VerificationError) as caught:
        tee.proof_from_fields({**PROOF, "tee_signature": "A" * 5000})
    assert "tee_signature" in str(caught.value)
    assert "not a string of 1 to 4096 characters" in str(caught.value)
    assert tee.proof_from_fields(PROOF) is not None  # control: the same fields otherwise read


def test_a_payment_required_header_holding_an_array_says_so() -> None:
    header = base64.b64encode(b"[1]").decode()
    with pytest.raises(ChallengeError) as caught:
        parse_challenge({"PAYMENT-REQUIRED": header}, b"{}")
    assert "PAYMENT-REQUIRED header is not base64 of a JSON object" in str(caught.value)
