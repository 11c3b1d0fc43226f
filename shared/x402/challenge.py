"""Reading a 402 answer: which protocol generation, and what it asks to be paid (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import wire
from ..errors import ServerError, excerpt
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


MAX_TIMEOUT_SECONDS = 2**31 - 1
"""The largest ``maxTimeoutSeconds`` read from a challenge (the policy caps what it signs)."""


MAX_EXTRA_TEXT = 256
"""The longest EIP-712 ``name``/``version`` read from a challenge's ``extra``."""


def _version(value: Any, default: int) -> int:
    return default if value is None else wire.as_int(value, "x402Version", low=1, high=255)


def _short(value: Any, key: str) -> str:
    text = wire.as_str(value, f"'accepts' entry {key}")
    if not 0 < len(text) <= MAX_EXTRA_TEXT:
        raise ChallengeError(f"the 'accepts' entry {key} is empty or over {MAX_EXTRA_TEXT} chars")
    return text


def _extra(extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` with the fields that get signed checked: the EIP-712 ``name`` and ``version``
    are short strings, ``facilitatorAddress`` is an address."""
    for key in ("name", "version", "assetTransferMethod"):
        value = wire.opt_str(extra, key, "'accepts' entry extra")
        if value is not None and len(value) > MAX_EXTRA_TEXT:
            raise ChallengeError(f"the 'accepts' entry extra.{key} is over {MAX_EXTRA_TEXT} chars")
    if extra.get("facilitatorAddress") is not None:
        wire.as_address(extra["facilitatorAddress"], "'accepts' entry extra.facilitatorAddress")
    return dict(extra)


def requirement_of(entry: Any, version: int, resource_url: str = "") -> PaymentRequirement:
    """Read one ``accepts`` entry of an x402 ``version`` challenge; raises
    :class:`ChallengeError` when it lacks or garbles a field."""
    amount_key = "maxAmountRequired" if version == 1 else "amount"
    try:
        data = wire.as_object(entry, "'accepts' entry")
        timeout = wire.opt_int(
            data, "maxTimeoutSeconds", "'accepts' entry", low=1, high=MAX_TIMEOUT_SECONDS
        )
        return PaymentRequirement(
            x402_version=version,
            scheme=_short(data.get("scheme"), "scheme"),
            network=_short(data.get("network"), "network"),
            asset=wire.as_address(data.get("asset"), "'accepts' entry asset"),
            amount=wire.as_amount(data.get(amount_key), f"'accepts' entry {amount_key}"),
            pay_to=wire.as_address(data.get("payTo"), "'accepts' entry payTo"),
            max_timeout_seconds=timeout or 60,
            extra=_extra(wire.opt_object(data, "extra", "'accepts' entry") or {}),
            resource=wire.opt_str(data, "resource", "'accepts' entry") or resource_url,
            raw=data,
        )
    except ServerError as exc:
        raise ChallengeError(str(exc)) from None


def parse_challenge(headers: Mapping[str, str], body: bytes) -> PaymentChallenge | None:
    """Decode the challenge of a 402 answer.

    Generation 2 sends it in the ``PAYMENT-REQUIRED`` header; generation 1 as a JSON body with
    ``accepts``. Returns None when the 402 carries no challenge (for example generation 2's
    ``{"error": "Session expired or exhausted"}``). Raises :class:`ChallengeError` when a
    challenge is present but unreadable.
    """
    header = find_header(headers, PAYMENT_REQUIRED_HEADER)
    try:
        if header:
            try:
                data = decode_header(header)
            except HeaderDecodeError as exc:
                raise ChallengeError(f"the PAYMENT-REQUIRED header is {exc}") from None
            version = _version(data.get("x402Version"), 2)
            resource = wire.opt_object(data, "resource", "challenge")
            url = wire.opt_str(resource or {}, "url", "challenge resource") or ""
        else:
            try:
                data = wire.loads(body or b"{}", "the 402 body")
            except ServerError as exc:
                raise ChallengeError(str(exc)) from None
            if not isinstance(data, dict) or "accepts" not in data:
                return None
            version = _version(data.get("x402Version"), 1)
            resource, url = None, ""
        accepts = wire.as_list(data.get("accepts"), "challenge's 'accepts'")
        error = data.get("error")
        return PaymentChallenge(
            x402_version=version,
            error=None if error is None else excerpt(error, 500),
            accepts=tuple(requirement_of(entry, version, url) for entry in accepts),
            resource=resource,
            raw=data,
        )
    except ServerError as exc:
        raise ChallengeError(str(exc)) from None


def error_of_402(body: bytes) -> str | None:
    """The ``error`` text of a 402 body, if any (e.g. a rejection reason)."""
    try:
        data = wire.loads(body or b"{}", "the 402 body")
    except ServerError:
        return None
    return excerpt(data["error"], 500) if isinstance(data, dict) and data.get("error") else None
