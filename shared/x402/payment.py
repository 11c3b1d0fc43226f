"""The interface every payment scheme module implements, the signed payment it returns, and
the pieces the schemes share (the x402 v2 envelope, the settlement answer)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount

from ..errors import excerpt
from ..headers import header
from .challenge import PaymentChallenge, PaymentRequirement
from .encoding import HeaderDecodeError, decode_header


@dataclass(frozen=True)
class SignedPayment:
    """A payment ready to attach to a request. Resending it is safe: the server settles a
    nonce at most once.

    ``expires_at`` is the unix time after which the server will refuse it (``validBefore``
    or the permit's ``deadline``).
    """

    header_name: str
    header_value: str
    requirement: PaymentRequirement
    payer: str
    nonce: str
    amount: int
    expires_at: int
    payload: dict[str, Any]


class PaymentScheme(Protocol):
    """One x402 scheme of one protocol version (a module: ``exact``, ``exact_v2``, ``upto``).

    What the exchange needs to know is declared here, so it never tests versions or names:

    - ``HEADER``: the request header the signed payment goes in;
    - ``RECEIPT_HEADER``: the answer header with the server's settlement report (base64 JSON
      ``{success, transaction, network, payer, amount?}``), or None when the scheme has none;
    - ``SESSION_HEADER``: None for a scheme that pays per call, else the header naming the
      metered session a payment opens (later calls send it instead of paying);
    - ``GENERATION``: the OpenGradient protocol generation its servers speak (which spelling
      of the settlement mode they read).
    """

    @property
    def X402_VERSION(self) -> int: ...  # noqa: N802 - module constants implement these
    @property
    def SCHEME(self) -> str: ...  # noqa: N802
    @property
    def HEADER(self) -> str: ...  # noqa: N802
    @property
    def RECEIPT_HEADER(self) -> str | None: ...  # noqa: N802
    @property
    def SESSION_HEADER(self) -> str | None: ...  # noqa: N802
    @property
    def GENERATION(self) -> int: ...  # noqa: N802

    def sign_payment(
        self,
        account: LocalAccount,
        requirement: PaymentRequirement,
        challenge: PaymentChallenge,
        *,
        now: int,
        nonce: int | None = None,
    ) -> SignedPayment: ...

    def recover_payer(self, payload: dict[str, Any], requirement: PaymentRequirement) -> str: ...


def v2_envelope(
    inner: dict[str, Any], requirement: PaymentRequirement, challenge: PaymentChallenge
) -> dict[str, Any]:
    """The x402 version 2 ``PAYMENT-SIGNATURE`` JSON: the scheme's signed ``payload``, the chosen
    requirement echoed verbatim as ``accepted``, and the challenge's ``resource``."""
    envelope: dict[str, Any] = {
        "x402Version": 2,
        "payload": inner,
        "accepted": dict(requirement.raw),
    }
    if challenge.resource:
        envelope["resource"] = dict(challenge.resource)
    return envelope


@dataclass(frozen=True)
class Settlement:
    """A server's settlement report (the scheme's ``RECEIPT_HEADER``), as far as readable.

    ``success`` is None when the header is missing or unreadable (nothing is claimed);
    ``amount`` is what the server says it settled, in base units, when it says so."""

    success: bool | None = None
    transaction: str | None = None
    network: str | None = None
    payer: str | None = None
    amount: int | None = None
    error: str | None = None


def read_settlement(headers: Mapping[str, str], name: str | None) -> Settlement:
    """Read the settlement header ``name`` of an answer; never raises (a garbled header is
    simply no report)."""
    value = header(headers, name) if name else None
    if not value:
        return Settlement()
    try:
        data = decode_header(value)
    except HeaderDecodeError:
        return Settlement()
    success = data.get("success")
    amount = data.get("amount")
    try:
        settled = int(str(amount)) if amount is not None else None
    except ValueError:
        settled = None
    return Settlement(
        success=success if isinstance(success, bool) else None,
        transaction=_text(data.get("transaction")),
        network=_text(data.get("network")),
        payer=_text(data.get("payer")),
        amount=settled if settled is None or settled >= 0 else None,
        error=_text(data.get("errorReason") or data.get("error")),
    )


def _text(value: Any) -> str | None:
    """A settlement header's string field, escaped and bounded (None when not a string)."""
    return excerpt(value, 200) if isinstance(value, str) and value else None
