"""What the gateway asks to be paid, and what a payment header settles (pure, no I/O):
x402 v1 ``exact`` (EIP-3009), one payment per call, or x402 v2 ``upto`` (Permit2), one permit
opening a metered session. The ledger checks nonce reuse and funds as it records a settlement."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from typing import Any

from eth_hash.auto import keccak

from ..x402 import exact, exact_v2, scheme_for, upto
from ..x402.challenge import requirement_of
from ..x402.encoding import HeaderDecodeError, decode_header, encode_header
from ..x402.networks import UPTO_PROXY_ADDRESS, lookup_network
from .ledger import Settlement

DEFAULT_PAY_TO = "0x7e57CA7E0000000000000000000000000000A402"
DEFAULT_FACILITATOR = "0xfAC11170000000000000000000000000000F4c11"
MAX_TIMEOUT_SECONDS = 300
DESCRIPTIONS = {"/v1/chat/completions": "Chat completion", "/v1/completions": "Text completion"}
_UPTO_EXTRA = {"name": "OpenGradient", "version": "1", "assetTransferMethod": "permit2"}
_JSON = "application/json"
_NONCE32 = re.compile(r"^0x[0-9a-fA-F]{64}$")

Json = dict[str, Any]
_Terms = tuple[Any, str, list[tuple[Any, Any, str]], tuple[int, int]]
"""What a payload claims: (signer, nonce, [(got, expected, reason)], (valid after, until))."""


class PaymentInvalid(Exception):
    """A refused payment header; the message starts with a stable code (``expired``, ...)."""


def transaction_hash(text: str) -> str:
    """A deterministic stand-in for an on-chain transaction hash."""
    return "0x" + keccak(text.encode()).hex()


def exact_requirement(
    network: str, asset: str, payee: str, price: int, url: str, path: str
) -> Json:
    """One v1 ``accepts`` entry (EIP-712 name/version from the network table)."""
    known = lookup_network(network)
    asked = {"scheme": exact.SCHEME, "network": network, "maxAmountRequired": str(price)}
    resource = {"resource": url + path, "description": DESCRIPTIONS[path], "mimeType": _JSON}
    terms = {"payTo": payee, "maxTimeoutSeconds": MAX_TIMEOUT_SECONDS, "asset": asset}
    extra = {"name": known.asset_name, "version": known.asset_version} if known else {}
    return {**asked, **resource, **terms, "extra": extra}


def upto_requirement(network: str, asset: str, payee: str, cap: int, facilitator: str) -> Json:
    """One v2 ``accepts`` entry: a session capped at ``cap``."""
    asked = {"scheme": upto.SCHEME, "network": network, "asset": asset, "amount": str(cap)}
    extra = {**_UPTO_EXTRA, "facilitatorAddress": facilitator}
    return {**asked, "payTo": payee, "maxTimeoutSeconds": MAX_TIMEOUT_SECONDS, "extra": extra}


def exact_v2_requirement(
    network: str, asset: str, payee: str, price: int, *, permit2: bool = False
) -> Json:
    """One v2 ``exact`` ``accepts`` entry paying ``price`` per call, by EIP-3009 or Permit2."""
    known = lookup_network(network)
    asked = {"scheme": exact_v2.SCHEME, "network": network, "asset": asset, "amount": str(price)}
    extra: Json = {"name": known.asset_name, "version": known.asset_version} if known else {}
    extra["assetTransferMethod"] = exact_v2.PERMIT2 if permit2 else exact_v2.EIP3009
    return {**asked, "payTo": payee, "maxTimeoutSeconds": MAX_TIMEOUT_SECONDS, "extra": extra}


def upto_challenge(entry: Json, url: str, path: str, reason: str | None) -> str:
    """The ``PAYMENT-REQUIRED`` header asking for ``entry``; ``reason``: why a permit failed."""
    resource = {"url": url + path, "description": DESCRIPTIONS[path], "mimeType": _JSON}
    error = reason or "Payment required"
    required = {"x402Version": 2, "error": error, "resource": resource, "accepts": [entry]}
    return encode_header(required)


def _require(ok: Any, reason: str) -> None:
    if not ok:
        raise PaymentInvalid(reason)


def _same(a: Any, b: Any) -> bool:
    return a.lower() == b.lower() if isinstance(a, str) and isinstance(b, str) else a == b


def _exact_terms(payload: Json, entry: Json) -> _Terms:
    _require(payload.get("scheme") == "exact", f"unsupported_scheme: {payload.get('scheme')!r}")
    auth = payload["payload"]["authorization"]
    _require(_NONCE32.match(auth["nonce"]), "invalid_payload: the nonce is not 32 hex bytes")
    terms = [
        (payload.get("network"), entry["network"], "wrong_network"),
        (auth["to"], entry["payTo"], "wrong_recipient"),
        (int(auth["value"]), int(entry["maxAmountRequired"]), "amount_mismatch"),
    ]
    # validBefore is exclusive: a payment is good until the second before it
    window = (int(auth["validAfter"]), int(auth["validBefore"]) - 1)
    return auth["from"], auth["nonce"].lower(), terms, window


def _exact_v2_terms(payload: Json, entry: Json) -> _Terms:
    accepted, inner = payload["accepted"], payload["payload"]
    keys = ("scheme", "network", "asset", "amount", "payTo")  # 'accepted' echoes the entry
    terms = [(accepted.get(key), entry[key], "requirement_mismatch") for key in keys]
    permit2 = entry["extra"].get("assetTransferMethod") == exact_v2.PERMIT2
    _require(("permit2Authorization" in inner) == permit2, "invalid_payload: wrong transfer method")
    if permit2:
        permit = inner["permit2Authorization"]
        permitted, witness = permit["permitted"], permit["witness"]
        terms += [
            (permitted["token"], entry["asset"], "wrong_token"),
            (permit["spender"], exact_v2.EXACT_PERMIT2_PROXY_ADDRESS, "wrong_spender"),
            (witness["to"], entry["payTo"], "wrong_recipient"),
            (int(permitted["amount"]), int(entry["amount"]), "amount_mismatch"),
        ]
        window = (int(witness["validAfter"]), int(permit["deadline"]))
        return permit["from"], f"permit2:{int(permit['nonce'])}", terms, window
    auth = inner["authorization"]
    _require(_NONCE32.match(auth["nonce"]), "invalid_payload: the nonce is not 32 hex bytes")
    terms += [
        (auth["to"], entry["payTo"], "wrong_recipient"),
        (int(auth["value"]), int(entry["amount"]), "amount_mismatch"),
    ]
    window = (int(auth["validAfter"]), int(auth["validBefore"]) - 1)
    return auth["from"], auth["nonce"].lower(), terms, window


def _upto_terms(payload: Json, entry: Json) -> _Terms:
    accepted, permit = payload["accepted"], payload["payload"]["permit2Authorization"]
    permitted, witness = permit["permitted"], permit["witness"]
    keys = ("scheme", "network", "asset", "amount", "payTo")  # 'accepted' echoes the entry
    terms = [(accepted.get(key), entry[key], "requirement_mismatch") for key in keys]
    terms += [
        (permitted["token"], entry["asset"], "wrong_token"),
        (permit["spender"], UPTO_PROXY_ADDRESS, "wrong_spender"),
        (witness["to"], entry["payTo"], "wrong_recipient"),
        (witness["facilitator"], entry["extra"]["facilitatorAddress"], "wrong_facilitator"),
        (int(permitted["amount"]), int(entry["amount"]), "amount_mismatch"),
    ]
    window = (int(witness["validAfter"]), int(permit["deadline"]))
    return permit["from"], str(int(permit["nonce"])), terms, window


def settlement(
    value: str, entry: Json, now: int, path: str, kind: str, version: int = 0
) -> Settlement:
    """What a payment header settles (of settlement type ``kind``) if it is good for the
    ``accepts`` entry it answers (of x402 ``version``; 0: 1 for ``exact``, else 2): an
    ``X-PAYMENT`` (v1) or v2 ``exact`` ``PAYMENT-SIGNATURE`` pays the price, a v2 ``upto``
    permit opens a session capped at the amount. Else :class:`PaymentInvalid` says why."""
    version = version or (1 if entry["scheme"] == exact.SCHEME else 2)
    found = scheme_for(requirement_of(entry, version))
    scheme: Any = found if found is not None else upto
    try:
        payload = decode_header(value)
    except HeaderDecodeError as exc:
        raise PaymentInvalid(f"invalid_payment_header: {exc}") from exc
    version, got = scheme.X402_VERSION, payload.get("x402Version")
    _require(got == version, f"unsupported_x402_version: {got!r}, this gateway speaks {version}")
    read = {exact: _exact_terms, exact_v2: _exact_v2_terms}.get(scheme, _upto_terms)
    try:
        signed_from, nonce, terms, (valid_after, valid_until) = read(payload, entry)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
        raise PaymentInvalid(f"invalid_payload: missing or malformed field ({problem})") from exc
    for got, expected, reason in terms:
        _require(_same(got, expected), f"{reason}: {got!r}, expected {expected!r}")
    _require(valid_after <= now, f"not_yet_valid: valid after {valid_after}, now {now}")
    _require(now <= valid_until, f"expired: valid until {valid_until}, now {now}")
    requirement = requirement_of(entry, version)
    try:
        payer = scheme.recover_payer(payload, requirement)
    except Exception as exc:  # noqa: BLE001 - any garbled signature is simply invalid
        raise PaymentInvalid("invalid_signature: the signature cannot be recovered") from exc
    _require(_same(payer, signed_from), "invalid_signature: it does not recover to 'from'")
    paid = Settlement(
        payer=payer,
        amount=requirement.amount,
        nonce=nonce,
        settlement_type=kind,
        scheme=scheme.SCHEME,
        network=requirement.network,
        asset=requirement.asset,
        pay_to=requirement.pay_to,
        path=path,
        transaction=transaction_hash(value),
        timestamp=now,
        expires_at=valid_until,
    )
    if scheme.SESSION_HEADER is None:  # per call
        return paid
    return replace(paid, amount=0, cap=paid.amount, session_id=str(uuid.uuid4()), closed=False)
