"""x402 version 2, scheme ``upto``: a Permit2 ``PermitWitnessTransferFrom`` that opens a metered
session capped at the requirement's amount (generation 2)."""

from __future__ import annotations

import secrets
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount

from .challenge import PaymentChallenge, PaymentRequirement
from .encoding import encode_header
from .networks import PERMIT2_ADDRESS, UPTO_PROXY_ADDRESS, chain_id_of
from .payment import SignedPayment, v2_envelope
from .typed import address, positive_seconds, uint256

X402_VERSION = 2
SCHEME = "upto"
HEADER = "PAYMENT-SIGNATURE"
SESSION_HEADER = "X-Upto-Session"
RECEIPT_HEADER = "PAYMENT-RESPONSE"
"""x402 2.x servers settling per request send it; OpenGradient's session middleware does not."""
GENERATION = 2
CLOCK_SKEW_SECONDS = 600
"""``validAfter`` is set this far in the past (as OpenGradient's own client does), so a
payer whose clock runs ahead of the chain's is not refused."""

_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
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
        {"name": "facilitator", "type": "address"},
        {"name": "validAfter", "type": "uint256"},
    ],
}


def typed_data(authorization: dict[str, Any], chain_id: int) -> dict[str, Any]:
    """The full EIP-712 message of a ``permit2Authorization`` (numbers may be decimal strings)."""
    permitted = authorization["permitted"]
    witness = authorization["witness"]
    return {
        "types": _TYPES,
        "primaryType": "PermitWitnessTransferFrom",
        "domain": {"name": "Permit2", "chainId": chain_id, "verifyingContract": PERMIT2_ADDRESS},
        "message": {
            "permitted": {"token": permitted["token"], "amount": int(permitted["amount"])},
            "spender": authorization["spender"],
            "nonce": int(authorization["nonce"]),
            "deadline": int(authorization["deadline"]),
            "witness": {
                "to": witness["to"],
                "facilitator": witness["facilitator"],
                "validAfter": int(witness["validAfter"]),
            },
        },
    }


def _chain_id(requirement: PaymentRequirement) -> int:
    chain_id = chain_id_of(requirement.network)
    if chain_id is None:
        raise ValueError(f"unknown network {requirement.network!r}")
    return chain_id


def sign_payment(
    account: LocalAccount,
    requirement: PaymentRequirement,
    challenge: PaymentChallenge,
    *,
    now: int,
    nonce: int | None = None,
) -> SignedPayment:
    """Sign a permit for ``requirement.amount`` (the session cap) to the upto proxy, with the
    payee and facilitator as witness, valid from now − 600 s until now + ``maxTimeoutSeconds``.

    Every value of the message is checked first: a bad server value is a ``ValueError``
    raised before the key is used (never an ABI error inside ``sign_typed_data``)."""
    facilitator = requirement.extra.get("facilitatorAddress")
    if not facilitator:
        raise ValueError("the upto requirement names no facilitatorAddress in 'extra'")
    address(facilitator, "extra.facilitatorAddress")
    address(requirement.pay_to, "payTo")
    address(requirement.asset, "asset")
    uint256(requirement.amount, "the amount")
    positive_seconds(requirement.max_timeout_seconds, "maxTimeoutSeconds")
    uint256(now - CLOCK_SKEW_SECONDS, "validAfter")
    uint256(_chain_id(requirement), "the chain id")
    permit_nonce = uint256(nonce if nonce is not None else secrets.randbits(256), "the nonce")
    deadline = uint256(now + requirement.max_timeout_seconds, "the deadline")
    authorization = {
        "from": account.address,
        "permitted": {"token": requirement.asset, "amount": str(requirement.amount)},
        "spender": UPTO_PROXY_ADDRESS,
        "nonce": str(permit_nonce),
        "deadline": str(deadline),
        "witness": {
            "to": requirement.pay_to,
            "facilitator": str(facilitator),
            "validAfter": str(now - CLOCK_SKEW_SECONDS),
        },
    }
    signed = account.sign_typed_data(full_message=typed_data(authorization, _chain_id(requirement)))
    inner = {
        "permit2Authorization": authorization,
        "signature": "0x" + signed.signature.hex().removeprefix("0x"),
    }
    payload = v2_envelope(inner, requirement, challenge)
    return SignedPayment(
        header_name=HEADER,
        header_value=encode_header(payload),
        requirement=requirement,
        payer=account.address,
        nonce=str(permit_nonce),
        amount=requirement.amount,
        expires_at=deadline,
        payload=payload,
    )


def recover_payer(payload: dict[str, Any], requirement: PaymentRequirement) -> str:
    """The address that signed a decoded ``PAYMENT-SIGNATURE`` payload (checksummed)."""
    inner = payload["payload"]
    message = encode_typed_data(
        full_message=typed_data(inner["permit2Authorization"], _chain_id(requirement))
    )
    return str(Account.recover_message(message, signature=inner["signature"]))
