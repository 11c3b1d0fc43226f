"""Reading a 402 answer: which protocol generation, and what it asks to be paid (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..headers import header as find_header
from .encoding import HeaderDecodeError, decode_header

PAYMENT_REQUIRED_HEADER = "PAYMENT-REQUIRED"
SESSION_EXHAUSTED = "Session expired or exhausted"


class ChallengeError(ValueError):
    """A 402 answer whose challenge cannot be read."""


@dataclass(frozen=True)
class PaymentRequirement:
    """One way of paying that a server accepts (an entry of ``accepts``).

    ``amount`` is in the asset's base units: ``maxAmountRequired`` in generation 1, the
    session cap ``amount`` in generation 2. ``raw`` is the entry verbatim (generation 2
    echoes it back as ``accepted``).
    """

    x402_version: int
    scheme: str
    network: str
    asset: str
    amount: int
    pay_to: str
    max_timeout_seconds: int
    extra: Mapping[str, Any] = field(default_factory=dict)
    resource: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PaymentChallenge:
    """A decoded 402 challenge."""

    x402_version: int
    error: str | None
    accepts: tuple[PaymentRequirement, ...]
    resource: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


def requirement_of(entry: Any, version: int, resource_url: str = "") -> PaymentRequirement:
    """Read one ``accepts`` entry of an x402 ``version`` challenge; raises
    :class:`ChallengeError` when it lacks or garbles a field."""
    if not isinstance(entry, dict):
        raise ChallengeError("an 'accepts' entry is not an object")
    amount_key = "maxAmountRequired" if version == 1 else "amount"
    try:
        return PaymentRequirement(
            x402_version=version,
            scheme=str(entry["scheme"]),
            network=str(entry["network"]),
            asset=str(entry["asset"]),
            amount=int(str(entry[amount_key])),
            pay_to=str(entry["payTo"]),
            max_timeout_seconds=int(entry.get("maxTimeoutSeconds") or 60),
            extra=dict(entry.get("extra") or {}),
            resource=str(entry.get("resource") or resource_url),
            raw=entry,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ChallengeError(f"an 'accepts' entry lacks or garbles {exc}") from None


def parse_challenge(headers: Mapping[str, str], body: bytes) -> PaymentChallenge | None:
    """Decode the challenge of a 402 answer.

    Generation 2 sends it in the ``PAYMENT-REQUIRED`` header; generation 1 as a JSON body with
    ``accepts``. Returns None when the 402 carries no challenge (for example generation 2's
    ``{"error": "Session expired or exhausted"}``). Raises :class:`ChallengeError` when a
    challenge is present but unreadable.
    """
    header = find_header(headers, PAYMENT_REQUIRED_HEADER)
    if header:
        try:
            data = decode_header(header)
        except HeaderDecodeError as exc:
            raise ChallengeError(f"the PAYMENT-REQUIRED header is {exc}") from None
        version = int(data.get("x402Version") or 2)
        resource = data.get("resource") if isinstance(data.get("resource"), dict) else None
        url = str((resource or {}).get("url", ""))
    else:
        try:
            data = json.loads(body or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ChallengeError("the 402 body is not JSON") from None
        if not isinstance(data, dict) or "accepts" not in data:
            return None
        version = int(data.get("x402Version") or 1)
        resource, url = None, ""
    accepts = data.get("accepts")
    if not isinstance(accepts, list):
        raise ChallengeError("the challenge's 'accepts' is not a list")
    return PaymentChallenge(
        x402_version=version,
        error=data.get("error"),
        accepts=tuple(requirement_of(entry, version, url) for entry in accepts),
        resource=resource,
        raw=data,
    )


def error_of_402(body: bytes) -> str | None:
    """The ``error`` text of a 402 body, if any (e.g. a rejection reason)."""
    try:
        data = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return str(data["error"]) if isinstance(data, dict) and data.get("error") else None
