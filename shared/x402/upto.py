"""x402 version 2, scheme ``upto``: a Permit2 ``PermitWitnessTransferFrom`` that opens a metered
session capped at the requirement's amount (generation 2)."""

from __future__ import annotations

import secrets
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount

from . import permit2
from .challenge import PaymentChallenge, PaymentRequirement
from .encoding import encode_header
from .networks import UPTO_PROXY_ADDRESS
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

_WITNESS = [
    {"name": "to", "type": "address"},
    {"name": "facilitator", "type": "address"},
    {"name": "validAfter", "type": "uint256"},
]


def typed_data(authorization: dict[str, Any], chain_id: int) -> dict[str, Any]:
    """The full EIP-712 message of a ``permit2Authorization`` (numbers may be decimal strings)."""
    return permit2.typed_data(authorization, chain_id, _WITNESS)


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
    chain_id = uint256(permit2.chain_id(requirement), "the chain id")
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
    signed = account.sign_typed_data(full_message=typed_data(authorization, chain_id))
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
        full_message=typed_data(inner["permit2Authorization"], permit2.chain_id(requirement))
    )
    return str(Account.recover_message(message, signature=inner["signature"]))
