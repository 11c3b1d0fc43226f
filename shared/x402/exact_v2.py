"""x402 version 2, scheme ``exact``: one payment per call, as servers built with the ``x402``
2.x package or OpenGradient's ``og-x402`` offer it. Two ways of moving the asset, chosen by the
requirement's ``extra.assetTransferMethod``:

- ``eip3009`` (the default): an EIP-3009 ``TransferWithAuthorization`` (the same EIP-712
  message as x402 version 1, under the requirement's ``extra.name``/``extra.version``);
- ``permit2``: a Permit2 ``PermitWitnessTransferFrom`` to the x402 exact Permit2 proxy, with the
  payee and the start of validity as witness.

Time rules (as the reference client): valid from now − 600 s until now + ``maxTimeoutSeconds``.
Nonces: 32 random bytes (EIP-3009, hex) or a random uint256 (Permit2, decimal). The signed
payload goes in ``PAYMENT-SIGNATURE`` inside the v2 envelope; the server reports the settlement
in ``PAYMENT-RESPONSE``.
"""

from __future__ import annotations

import secrets
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from . import exact, permit2
from .challenge import PaymentChallenge, PaymentRequirement
from .encoding import encode_header
from .payment import SignedPayment, v2_envelope
from .typed import address, positive_seconds, uint256

X402_VERSION = 2
SCHEME = "exact"
HEADER = "PAYMENT-SIGNATURE"
RECEIPT_HEADER = "PAYMENT-RESPONSE"
SESSION_HEADER: str | None = None
"""Pays per call: no sessions."""
GENERATION = 2
CLOCK_SKEW_SECONDS = 600
"""``validAfter`` is set this far in the past, as the ``x402`` reference client does."""

EXACT_PERMIT2_PROXY_ADDRESS = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"
"""The x402 exact Permit2 proxy: the Permit2 ``spender``, which pays only ``witness.to``."""

PERMIT2 = "permit2"
EIP3009 = "eip3009"

_WITNESS = [
    {"name": "to", "type": "address"},
    {"name": "validAfter", "type": "uint256"},
]


def transfer_method(requirement: PaymentRequirement) -> str:
    """``permit2`` or ``eip3009`` (any other value of ``extra.assetTransferMethod`` is a
    ``ValueError``: this client would not know what it signs)."""
    method = requirement.extra.get("assetTransferMethod") or EIP3009
    if method not in (PERMIT2, EIP3009):
        raise ValueError(f"unknown extra.assetTransferMethod {method!r}")
    return str(method)


def permit2_typed_data(authorization: dict[str, Any], chain_id: int) -> dict[str, Any]:
    """The full EIP-712 message of an exact ``permit2Authorization`` (numbers may be strings)."""
    return permit2.typed_data(authorization, chain_id, _WITNESS)


def _sign_eip3009(
    account: LocalAccount, requirement: PaymentRequirement, now: int, nonce: int | None
) -> tuple[dict[str, Any], str, int]:
    authorization, signature = exact.sign_authorization(
        account, requirement, valid_after=now - CLOCK_SKEW_SECONDS, now=now, nonce=nonce
    )
    inner = {"authorization": authorization, "signature": signature}
    return inner, authorization["nonce"], int(authorization["validBefore"])


def _sign_permit2(
    account: LocalAccount, requirement: PaymentRequirement, now: int, nonce: int | None
) -> tuple[dict[str, Any], str, int]:
    permit_nonce = nonce if nonce is not None else secrets.randbits(256)
    deadline = now + requirement.max_timeout_seconds
    authorization = {
        "from": account.address,
        "permitted": {
            "token": to_checksum_address(requirement.asset),
            "amount": str(requirement.amount),
        },
        "spender": EXACT_PERMIT2_PROXY_ADDRESS,
        "nonce": str(permit_nonce),
        "deadline": str(deadline),
        "witness": {
            "to": to_checksum_address(requirement.pay_to),
            "validAfter": str(now - CLOCK_SKEW_SECONDS),
        },
    }
    typed = permit2_typed_data(authorization, permit2.chain_id(requirement))
    signed = account.sign_typed_data(full_message=typed)
    signature = "0x" + signed.signature.hex().removeprefix("0x")
    inner = {"permit2Authorization": authorization, "signature": signature}
    return inner, str(permit_nonce), deadline


def sign_payment(
    account: LocalAccount,
    requirement: PaymentRequirement,
    challenge: PaymentChallenge,
    *,
    now: int,
    nonce: int | None = None,
) -> SignedPayment:
    """Sign a payment of exactly ``requirement.amount`` to ``payTo`` with the requirement's
    transfer method; ``nonce`` pins the nonce (tests), else a random one is drawn.

    Every value of the message is checked first: a bad server value is a ``ValueError``
    raised before the key is used."""
    sign = _sign_permit2 if transfer_method(requirement) == PERMIT2 else _sign_eip3009
    address(requirement.pay_to, "payTo")
    address(requirement.asset, "asset")
    uint256(requirement.amount, "the amount")
    positive_seconds(requirement.max_timeout_seconds, "maxTimeoutSeconds")
    uint256(now - CLOCK_SKEW_SECONDS, "validAfter")
    uint256(now + requirement.max_timeout_seconds, "the deadline")
    if sign is _sign_eip3009:
        uint256(exact.domain_of(requirement)["chainId"], "the chain id")
    else:
        uint256(permit2.chain_id(requirement), "the chain id")
    if nonce is not None:
        uint256(nonce, "the nonce")
    try:
        inner, nonce_text, expires_at = sign(account, requirement, now, nonce)
    except (KeyError, TypeError, OverflowError) as exc:
        # no cause kept: it comes from the signing code (key material)
        raise ValueError(f"the exact requirement cannot be signed: {exc}") from None
    payload = v2_envelope(inner, requirement, challenge)
    return SignedPayment(
        header_name=HEADER,
        header_value=encode_header(payload),
        requirement=requirement,
        payer=account.address,
        nonce=nonce_text,
        amount=requirement.amount,
        expires_at=expires_at,
        payload=payload,
    )


def recover_payer(payload: dict[str, Any], requirement: PaymentRequirement) -> str:
    """The address that signed a decoded ``PAYMENT-SIGNATURE`` payload (checksummed), through
    eth-account's general EIP-712 encoder."""
    inner = payload["payload"]
    if "permit2Authorization" in inner:
        typed = permit2_typed_data(inner["permit2Authorization"], permit2.chain_id(requirement))
    else:
        typed = exact.typed_data(requirement, inner["authorization"])
    message = encode_typed_data(full_message=typed)
    return str(Account.recover_message(message, signature=inner["signature"]))
