"""Generation 1's hand-built EIP-712 digest (``exact.authorization_digest``) against
eth-account's general encoder: the same digest, the same signature, for every network and
value range, and a clear error for a value the struct cannot hold."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from opengradient_shared.x402 import PaymentChallenge, exact
from opengradient_shared.x402.challenge import PaymentRequirement

PAYEE = "0x" + "ab" * 20
UINT256_MAX = (1 << 256) - 1


def _requirement(network: str = "og-evm", **changes: Any) -> PaymentRequirement:
    fields: dict[str, Any] = {
        "x402_version": 1,
        "scheme": "exact",
        "network": network,
        "asset": "0x094E464A23B90A71a0894D5D1e5D470FfDD074e1",
        "amount": 1000,
        "pay_to": PAYEE,
        "max_timeout_seconds": 300,
        **changes,
    }
    return PaymentRequirement(**fields)


def _authorization(**changes: Any) -> dict[str, Any]:
    return {
        "from": "0x" + "12" * 20,
        "to": PAYEE,
        "value": "1000",
        "validAfter": "1764000000",
        "validBefore": "1764000300",
        "nonce": "0x" + "5a" * 32,
        **changes,
    }


def _general_digest(requirement: PaymentRequirement, authorization: dict[str, Any]) -> bytes:
    return _hash_eip191_message(
        encode_typed_data(full_message=exact.typed_data(requirement, authorization))
    )


@pytest.mark.parametrize(
    "requirement",
    [
        _requirement("og-evm"),
        _requirement("base", asset="0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
        _requirement("eip155:84532", extra={"name": "USDC", "version": "2"}),
        _requirement("og-evm", extra={"name": "Ünïcode Token", "version": "10"}),
    ],
    ids=["og-evm", "base", "caip2-with-extra", "non-ascii-name"],
)
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"value": "0", "validAfter": "0", "validBefore": "1"},
        {"value": str(UINT256_MAX), "validBefore": str(UINT256_MAX), "nonce": "0x" + "ff" * 32},
        {"nonce": "0x" + "00" * 32, "from": "0x" + "00" * 20},
    ],
    ids=["typical", "zeros", "maxima", "zero-nonce-and-address"],
)
def test_digest_equals_the_general_encoder(
    requirement: PaymentRequirement, changes: dict[str, Any]
) -> None:
    authorization = _authorization(**changes)
    assert exact.authorization_digest(requirement, authorization) == _general_digest(
        requirement, authorization
    )


def test_signed_payment_equals_a_sign_typed_data_signature() -> None:
    account = Account.from_key("0x" + "22" * 32)
    requirement = _requirement()
    challenge = PaymentChallenge(x402_version=1, error=None, accepts=(requirement,))
    signed = exact.sign_payment(account, requirement, challenge, now=1764000000, nonce=7)
    authorization = signed.payload["payload"]["authorization"]
    reference = account.sign_typed_data(full_message=exact.typed_data(requirement, authorization))
    assert signed.payload["payload"]["signature"] == "0x" + reference.signature.hex()
    assert exact.recover_payer(signed.payload, requirement) == account.address


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"value": "-1"}, "-1 is not a uint256"),
        ({"validBefore": str(UINT256_MAX + 1)}, "is not a uint256"),
        ({"to": "0x" + "ab" * 19}, "is not a 20-byte address"),
        ({"nonce": "0x" + "5a" * 31}, "nonce is not 32 bytes"),
    ],
)
def test_values_the_struct_cannot_hold_are_named(changes: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        exact.authorization_digest(_requirement(), _authorization(**changes))
