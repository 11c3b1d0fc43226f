"""What the gateway asks to be paid, and the check of a payment header (pure, no I/O).

Generation 1: x402 v1 ``exact`` (EIP-3009), one payment per call. Generation 2: x402 v2
``upto`` (Permit2), one permit opens a metered session. Nonce reuse and funds are checked by
the ledger, atomically with settling.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..x402 import exact, upto
from ..x402.challenge import PaymentRequirement
from ..x402.encoding import HeaderDecodeError, decode_header
from ..x402.networks import UPTO_PROXY_ADDRESS, lookup_network

DEFAULT_PAY_TO = "0x7e57CA7E0000000000000000000000000000A402"
DEFAULT_FACILITATOR = "0xfAC11170000000000000000000000000000F4c11"
MAX_TIMEOUT_SECONDS = 300
UPTO_DOMAIN_EXTRA = {"name": "OpenGradient", "version": "1", "assetTransferMethod": "permit2"}
_NONCE32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_DESCRIPTIONS = {"/v1/chat/completions": "Chat completion", "/v1/completions": "Text completion"}


class PaymentInvalid(Exception):
    """A payment header the gateway refuses; ``reason`` starts with a stable code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedPayment:
    """A payment whose signature and terms check out (not yet settled)."""

    payer: str
    nonce: str
    amount: int
    expires_at: int


def resource_of(base_url: str, path: str) -> dict[str, str]:
    """The x402 ``resource`` object of a route."""
    return {
        "url": base_url + path,
        "description": _DESCRIPTIONS.get(path, "Inference"),
        "mimeType": "application/json",
    }


def exact_requirement(
    *, network: str, asset: str, pay_to: str, price: int, resource_url: str, path: str
) -> dict[str, Any]:
    """One v1 ``accepts`` entry (EIP-712 name/version from the network table)."""
    known = lookup_network(network)
    return {
        "scheme": exact.SCHEME,
        "network": network,
        "maxAmountRequired": str(price),
        "resource": resource_url,
        "description": _DESCRIPTIONS.get(path, "Inference"),
        "mimeType": "application/json",
        "payTo": pay_to,
        "maxTimeoutSeconds": MAX_TIMEOUT_SECONDS,
        "asset": asset,
        "extra": {"name": known.asset_name, "version": known.asset_version} if known else {},
    }


def upto_requirement(
    *, network: str, asset: str, pay_to: str, cap: int, facilitator: str
) -> dict[str, Any]:
    """One v2 ``accepts`` entry: a session capped at ``cap``."""
    return {
        "scheme": upto.SCHEME,
        "network": network,
        "asset": asset,
        "amount": str(cap),
        "payTo": pay_to,
        "maxTimeoutSeconds": MAX_TIMEOUT_SECONDS,
        "extra": {**UPTO_DOMAIN_EXTRA, "facilitatorAddress": facilitator},
    }


def _requirement(entry: Mapping[str, Any], version: int) -> PaymentRequirement:
    amount = entry["maxAmountRequired"] if version == 1 else entry["amount"]
    return PaymentRequirement(
        x402_version=version,
        scheme=entry["scheme"],
        network=entry["network"],
        asset=entry["asset"],
        amount=int(amount),
        pay_to=entry["payTo"],
        max_timeout_seconds=int(entry["maxTimeoutSeconds"]),
        extra=dict(entry["extra"]),
        raw=entry,
    )


def _decode(value: str, version: int) -> dict[str, Any]:
    try:
        payload = decode_header(value)
    except HeaderDecodeError as exc:
        raise PaymentInvalid(f"invalid_payment_header: {exc}") from None
    if payload.get("x402Version") != version:
        raise PaymentInvalid(
            f"unsupported_x402_version: got {payload.get('x402Version')!r}, this gateway "
            f"speaks x402 version {version}"
        )
    return payload


def _int(data: Mapping[str, Any], key: str, where: str) -> int:
    try:
        return int(str(data[key]))
    except (KeyError, TypeError, ValueError):
        raise PaymentInvalid(f"invalid_payload: {where}.{key} is missing or not a number") from None


def _same(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.lower() == b.lower()


def _window(valid_after: int, valid_before: int, now: int, *, inclusive: bool) -> None:
    if valid_after > now:
        raise PaymentInvalid(f"not_yet_valid: valid after {valid_after}, now {now}")
    if now > valid_before or (not inclusive and now == valid_before):
        raise PaymentInvalid(f"expired: valid until {valid_before}, now {now}")


def verify_exact(value: str, entry: Mapping[str, Any], now: int) -> VerifiedPayment:
    """Check an ``X-PAYMENT`` header against the v1 requirement ``entry``.

    Raises :class:`PaymentInvalid` with the reason (``invalid_signature``, ``expired``,
    ``amount_mismatch``, ``wrong_recipient``, ``wrong_network``, ...).
    """
    payload = _decode(value, exact.X402_VERSION)
    if payload.get("scheme") != exact.SCHEME:
        raise PaymentInvalid(f"unsupported_scheme: {payload.get('scheme')!r}, expected 'exact'")
    if payload.get("network") != entry["network"]:
        raise PaymentInvalid(
            f"wrong_network: {payload.get('network')!r}, expected {entry['network']!r}"
        )
    inner = payload.get("payload")
    auth = inner.get("authorization") if isinstance(inner, dict) else None
    if not isinstance(auth, dict) or not isinstance(inner.get("signature"), str):
        raise PaymentInvalid("invalid_payload: payload.authorization and signature are required")
    for key in ("from", "to", "nonce"):
        if not isinstance(auth.get(key), str):
            raise PaymentInvalid(f"invalid_payload: authorization.{key} is missing")
    if not _NONCE32.match(auth["nonce"]):
        raise PaymentInvalid("invalid_payload: authorization.nonce is not 32 hex bytes")
    value_paid = _int(auth, "value", "authorization")
    window = (_int(auth, "validAfter", "authorization"), _int(auth, "validBefore", "authorization"))
    if not _same(auth["to"], entry["payTo"]):
        raise PaymentInvalid(f"wrong_recipient: pays {auth['to']}, expected {entry['payTo']}")
    if value_paid != int(entry["maxAmountRequired"]):
        raise PaymentInvalid(
            f"amount_mismatch: pays {value_paid}, the price is {entry['maxAmountRequired']}"
        )
    _window(*window, now, inclusive=False)
    try:
        signer = exact.recover_payer(payload, _requirement(entry, 1))
    except Exception:  # noqa: BLE001 - any garbled signature is simply invalid
        raise PaymentInvalid("invalid_signature: the signature cannot be recovered") from None
    if not _same(signer, auth["from"]):
        raise PaymentInvalid("invalid_signature: the signature does not recover to 'from'")
    return VerifiedPayment(signer, auth["nonce"].lower(), value_paid, window[1])


def verify_upto(value: str, entry: Mapping[str, Any], now: int) -> VerifiedPayment:
    """Check a ``PAYMENT-SIGNATURE`` header (Permit2 witness) against the v2 requirement."""
    payload = _decode(value, upto.X402_VERSION)
    accepted = payload.get("accepted")
    if not isinstance(accepted, dict) or any(
        str(accepted.get(k, "")).lower() != str(entry[k]).lower()
        for k in ("scheme", "network", "asset", "amount", "payTo")
    ):
        raise PaymentInvalid("requirement_mismatch: 'accepted' is not this gateway's requirement")
    inner = payload.get("payload")
    permit = inner.get("permit2Authorization") if isinstance(inner, dict) else None
    if not isinstance(permit, dict) or not isinstance(inner.get("signature"), str):
        raise PaymentInvalid("invalid_payload: permit2Authorization and signature are required")
    permitted, witness = permit.get("permitted"), permit.get("witness")
    if not isinstance(permitted, dict) or not isinstance(witness, dict):
        raise PaymentInvalid("invalid_payload: permitted and witness are required")
    amount = _int(permitted, "amount", "permitted")
    nonce = _int(permit, "nonce", "permit2Authorization")
    deadline = _int(permit, "deadline", "permit2Authorization")
    valid_after = _int(witness, "validAfter", "witness")
    checks = (
        (permitted.get("token"), entry["asset"], "wrong_token"),
        (permit.get("spender"), UPTO_PROXY_ADDRESS, "wrong_spender"),
        (witness.get("to"), entry["payTo"], "wrong_recipient"),
        (witness.get("facilitator"), entry["extra"]["facilitatorAddress"], "wrong_facilitator"),
    )
    for got, expected, reason in checks:
        if not _same(got, expected):
            raise PaymentInvalid(f"{reason}: {got!r}, expected {expected}")
    if amount != int(entry["amount"]):
        raise PaymentInvalid(f"amount_mismatch: permits {amount}, the cap is {entry['amount']}")
    _window(valid_after, deadline, now, inclusive=True)
    try:
        signer = upto.recover_payer(payload, _requirement(entry, 2))
    except Exception:  # noqa: BLE001 - any garbled signature is simply invalid
        raise PaymentInvalid("invalid_signature: the signature cannot be recovered") from None
    if not _same(signer, str(permit.get("from"))):
        raise PaymentInvalid("invalid_signature: the signature does not recover to 'from'")
    return VerifiedPayment(signer, str(nonce), amount, deadline)
