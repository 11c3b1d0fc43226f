"""The interface every payment scheme module implements, and the signed payment it returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount

from .challenge import PaymentChallenge, PaymentRequirement


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
    """One x402 scheme of one protocol version (a module: ``exact`` or ``upto``)."""

    X402_VERSION: int
    SCHEME: str
    HEADER: str

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
