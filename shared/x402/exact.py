"""x402 version 1, scheme ``exact``: an EIP-3009 ``TransferWithAuthorization`` (generation 1)."""

from __future__ import annotations

import secrets
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount

from .challenge import PaymentChallenge, PaymentRequirement
from .encoding import encode_header
from .networks import chain_id_of, lookup_network
from .payment import SignedPayment

X402_VERSION = 1
SCHEME = "exact"
HEADER = "X-PAYMENT"
RECEIPT_HEADER = "X-PAYMENT-RESPONSE"
CLOCK_SKEW_SECONDS = 60

_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "TransferWithAuthorization": [
        {"name": "from", "type": "address"},
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "validAfter", "type": "uint256"},
        {"name": "validBefore", "type": "uint256"},
        {"name": "nonce", "type": "bytes32"},
    ],
}


def domain_of(requirement: PaymentRequirement) -> dict[str, Any]:
    """The EIP-712 domain: the requirement's ``extra`` wins over the network table."""
    chain_id = chain_id_of(requirement.network)
    if chain_id is None:
        raise ValueError(f"unknown network {requirement.network!r}")
    network = lookup_network(requirement.network)
    name = requirement.extra.get("name") or (network.asset_name if network else None)
    version = requirement.extra.get("version") or (network.asset_version if network else None)
    if not name or not version:
        raise ValueError(f"no EIP-712 name/version for asset {requirement.asset}")
    return {
        "name": str(name),
        "version": str(version),
        "chainId": chain_id,
        "verifyingContract": requirement.asset,
    }


def typed_data(requirement: PaymentRequirement, authorization: dict[str, Any]) -> dict[str, Any]:
    """The full EIP-712 message for an authorization (numbers may be decimal strings)."""
    return {
        "types": _TYPES,
        "primaryType": "TransferWithAuthorization",
        "domain": domain_of(requirement),
        "message": {
            "from": authorization["from"],
            "to": authorization["to"],
            "value": int(authorization["value"]),
            "validAfter": int(authorization["validAfter"]),
            "validBefore": int(authorization["validBefore"]),
            "nonce": bytes.fromhex(str(authorization["nonce"]).removeprefix("0x")),
        },
    }


def sign_payment(
    account: LocalAccount,
    requirement: PaymentRequirement,
    challenge: PaymentChallenge,
    *,
    now: int,
    nonce: int | None = None,
) -> SignedPayment:
    """Sign an authorization paying ``requirement.amount`` to ``payTo``, valid from
    now − 60 s until now + ``maxTimeoutSeconds``, under a fresh random 32-byte nonce."""
    nonce_bytes = nonce.to_bytes(32, "big") if nonce is not None else secrets.token_bytes(32)
    nonce_hex = "0x" + nonce_bytes.hex()
    valid_before = now + requirement.max_timeout_seconds
    authorization = {
        "from": account.address,
        "to": requirement.pay_to,
        "value": str(requirement.amount),
        "validAfter": str(now - CLOCK_SKEW_SECONDS),
        "validBefore": str(valid_before),
        "nonce": nonce_hex,
    }
    signed = account.sign_typed_data(full_message=typed_data(requirement, authorization))
    payload = {
        "x402Version": X402_VERSION,
        "scheme": SCHEME,
        "network": requirement.network,
        "payload": {
            "signature": "0x" + signed.signature.hex().removeprefix("0x"),
            "authorization": authorization,
        },
    }
    return SignedPayment(
        header_name=HEADER,
        header_value=encode_header(payload),
        requirement=requirement,
        payer=account.address,
        nonce=nonce_hex,
        amount=requirement.amount,
        expires_at=valid_before,
        payload=payload,
    )


def recover_payer(payload: dict[str, Any], requirement: PaymentRequirement) -> str:
    """The address that signed a decoded ``X-PAYMENT`` payload (checksummed)."""
    inner = payload["payload"]
    message = encode_typed_data(full_message=typed_data(requirement, inner["authorization"]))
    return str(Account.recover_message(message, signature=inner["signature"]))
