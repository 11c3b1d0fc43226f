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
_NONCE32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
DESCRIPTIONS = {"/v1/chat/completions": "Chat completion", "/v1/completions": "Text completion"}


class PaymentInvalid(Exception):
    """A payment header the gateway refuses; ``reason`` starts with a stable code
    (``invalid_signature``, ``expired``, ``amount_mismatch``, ``wrong_recipient``, ...)."""

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


def _require(ok: Any, reason: str) -> None:
    if not ok:
        raise PaymentInvalid(reason)


def exact_requirement(network: str, asset: str, pay_to: str, price: int, url: str, path: str
                      ) -> dict[str, Any]:
    """One v1 ``accepts`` entry (EIP-712 name/version from the network table)."""
    known = lookup_network(network)
    return {
        "scheme": exact.SCHEME, "network": network, "maxAmountRequired": str(price),
        "resource": url + path, "description": DESCRIPTIONS[path], "mimeType": "application/json",
        "payTo": pay_to, "maxTimeoutSeconds": MAX_TIMEOUT_SECONDS, "asset": asset,
        "extra": {"name": known.asset_name, "version": known.asset_version} if known else {},
    }


def upto_requirement(network: str, asset: str, pay_to: str, cap: int, facilitator: str
                     ) -> dict[str, Any]:
    """One v2 ``accepts`` entry: a session capped at ``cap``."""
    extra = {"name": "OpenGradient", "version": "1", "assetTransferMethod": "permit2",
             "facilitatorAddress": facilitator}
    return {"scheme": upto.SCHEME, "network": network, "asset": asset, "amount": str(cap),
            "payTo": pay_to, "maxTimeoutSeconds": MAX_TIMEOUT_SECONDS, "extra": extra}


def _requirement(entry: Mapping[str, Any], version: int) -> PaymentRequirement:
    amount = entry["maxAmountRequired"] if version == 1 else entry["amount"]
    return PaymentRequirement(version, entry["scheme"], entry["network"], entry["asset"],
                              int(amount), entry["payTo"], MAX_TIMEOUT_SECONDS, entry["extra"])


def _decode(value: str, version: int) -> dict[str, Any]:
    try:
        payload = decode_header(value)
    except HeaderDecodeError as exc:
        raise PaymentInvalid(f"invalid_payment_header: {exc}") from None
    got = payload.get("x402Version")
    _require(got == version, f"unsupported_x402_version: {got!r}, this gateway speaks {version}")
    return payload


def _int(data: Mapping[str, Any], key: str, where: str) -> int:
    try:
        return int(str(data[key]))
    except (KeyError, TypeError, ValueError):
        raise PaymentInvalid(f"invalid_payload: {where}.{key} is missing or not a number") from None


def _object(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, dict):
        raise PaymentInvalid(f"invalid_payload: '{key}' is missing or not an object")
    return value


def _same(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.lower() == b.lower()


def _check(payload: dict[str, Any], entry: Mapping[str, Any], signed_from: Any,
           terms: list[tuple[Any, Any, str]], window: tuple[int, int, int]) -> str:
    """Compare each (got, expected, reason), check the time window, recover the signer."""
    for got, expected, reason in terms:
        _require(_same(got, expected) if isinstance(expected, str) else got == expected,
                 f"{reason}: {got!r}, expected {expected!r}")
    valid_after, valid_until, now = window
    _require(valid_after <= now, f"not_yet_valid: valid after {valid_after}, now {now}")
    _require(now <= valid_until, f"expired: valid until {valid_until}, now {now}")
    scheme = exact if payload["x402Version"] == 1 else upto
    try:
        signer: str = scheme.recover_payer(payload, _requirement(entry, payload["x402Version"]))
    except Exception:  # noqa: BLE001 - any garbled signature is simply invalid
        raise PaymentInvalid("invalid_signature: the signature cannot be recovered") from None
    _require(_same(signer, signed_from), "invalid_signature: it does not recover to 'from'")
    return signer


def verify_exact(value: str, entry: Mapping[str, Any], now: int) -> VerifiedPayment:
    """Check an ``X-PAYMENT`` header against the v1 requirement ``entry``."""
    payload = _decode(value, exact.X402_VERSION)
    _require(payload.get("scheme") == "exact", f"unsupported_scheme: {payload.get('scheme')!r}")
    inner = _object(payload, "payload")
    auth = _object(inner, "authorization")
    _require(isinstance(inner.get("signature"), str)
             and all(isinstance(auth.get(k), str) for k in ("from", "to", "nonce")),
             "invalid_payload: payload.signature and authorization {from, to, nonce} required")
    _require(_NONCE32.match(auth["nonce"]), "invalid_payload: the nonce is not 32 hex bytes")
    price = int(entry["maxAmountRequired"])
    terms = [(payload.get("network"), entry["network"], "wrong_network"),
             (auth["to"], entry["payTo"], "wrong_recipient"),
             (_int(auth, "value", "authorization"), price, "amount_mismatch")]
    # validBefore is exclusive: a payment is good until the second before it
    until = _int(auth, "validBefore", "authorization") - 1
    window = (_int(auth, "validAfter", "authorization"), until, now)
    signer = _check(payload, entry, auth["from"], terms, window)
    return VerifiedPayment(signer, auth["nonce"].lower(), price, until)


def verify_upto(value: str, entry: Mapping[str, Any], now: int) -> VerifiedPayment:
    """Check a ``PAYMENT-SIGNATURE`` header (a Permit2 witness) against the v2 requirement."""
    payload = _decode(value, upto.X402_VERSION)
    accepted = payload.get("accepted")
    _require(isinstance(accepted, dict) and all(
        str(accepted.get(k, "")).lower() == str(entry[k]).lower()
        for k in ("scheme", "network", "asset", "amount", "payTo")),
        "requirement_mismatch: 'accepted' is not this gateway's requirement")
    inner = _object(payload, "payload")
    permit = _object(inner, "permit2Authorization")
    permitted, witness = _object(permit, "permitted"), _object(permit, "witness")
    _require(isinstance(inner.get("signature"), str), "invalid_payload: no signature")
    facilitator = entry["extra"]["facilitatorAddress"]
    terms = [(permitted.get("token"), entry["asset"], "wrong_token"),
             (permit.get("spender"), UPTO_PROXY_ADDRESS, "wrong_spender"),
             (witness.get("to"), entry["payTo"], "wrong_recipient"),
             (witness.get("facilitator"), facilitator, "wrong_facilitator"),
             (_int(permitted, "amount", "permitted"), int(entry["amount"]), "amount_mismatch")]
    nonce = _int(permit, "nonce", "permit2Authorization")
    deadline = _int(permit, "deadline", "permit2Authorization")
    window = (_int(witness, "validAfter", "witness"), deadline, now)
    signer = _check(payload, entry, permit.get("from"), terms, window)
    return VerifiedPayment(signer, str(nonce), int(entry["amount"]), deadline)
