"""x402 payments, sans I/O: read a 402 challenge, choose under a policy, sign, encode.

Each scheme is one module behind one interface (:class:`PaymentScheme`) and one entry of
:data:`SCHEMES`: ``exact`` for x402 version 1 (EIP-3009, generation 1), ``upto`` for version 2
(Permit2 sessions, generation 2), ``exact_v2`` for version 2 ``exact`` (EIP-3009 or Permit2,
one payment per call, as the ``x402`` 2.x and ``og-x402`` servers offer it).
"""

from __future__ import annotations

from . import exact, exact_v2, upto
from .challenge import (
    ChallengeError,
    PaymentChallenge,
    PaymentRequirement,
    error_of_402,
    parse_challenge,
)
from .encoding import HeaderDecodeError, decode_header, encode_header
from .payment import PaymentScheme, SignedPayment

SCHEMES: dict[tuple[int, str], PaymentScheme] = {
    (exact.X402_VERSION, exact.SCHEME): exact,
    (upto.X402_VERSION, upto.SCHEME): upto,
    (exact_v2.X402_VERSION, exact_v2.SCHEME): exact_v2,
}


def scheme_for(requirement: PaymentRequirement) -> PaymentScheme | None:
    """The scheme module that can pay ``requirement``, or None."""
    return SCHEMES.get((requirement.x402_version, requirement.scheme))


__all__ = [
    "SCHEMES",
    "ChallengeError",
    "HeaderDecodeError",
    "PaymentChallenge",
    "PaymentRequirement",
    "PaymentScheme",
    "SignedPayment",
    "decode_header",
    "encode_header",
    "error_of_402",
    "exact",
    "exact_v2",
    "parse_challenge",
    "scheme_for",
    "upto",
]
