"""What this client agrees to pay: a cap, allow-lists and pinned terms (pure, no I/O).

:meth:`PaymentPolicy.choose` picks the requirement of a 402 challenge to pay, or raises
:class:`PaymentPolicyError` naming the price and the cap (or the value not allowed) — before
anything is signed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import InvalidRequestError, PaymentPolicyError
from .budget import Budget
from .challenge import PaymentChallenge, PaymentRequirement
from .networks import canonical_network, chain_id_of, known_decimals, lookup_network

DEFAULT_NETWORKS = ("og-evm", "eip155:8453")
_OTHER_X402_NETWORKS = frozenset(
    {
        "avalanche",
        "avalanche-fuji",
        "iotex",
        "peaq",
        "polygon",
        "polygon-amoy",
        "sei",
        "sei-testnet",
        "solana",
        "solana-devnet",
        "solana-mainnet",
    }
)
"""Networks x402 servers name that this client knows of but cannot pay on (an allow-list may
name them; a challenge on them is refused)."""
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_CAIP2 = re.compile(r"^[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}$")


@dataclass(frozen=True)
class PinnedTerms:
    """The payee and asset an endpoint was paid with before."""

    pay_to: str
    asset: str


def _addresses(values: Iterable[str] | None, name: str) -> frozenset[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = (values,)
    out = set()
    for value in values:
        if not isinstance(value, str) or not _ADDRESS.match(value):
            raise InvalidRequestError(f"{name}: {value!r} is not a 0x-prefixed 20-byte address")
        out.add(value.lower())
    return frozenset(out)


def _networks(values: Iterable[str]) -> frozenset[str]:
    if isinstance(values, str):
        values = (values,)
    out = set()
    for value in values:
        known = isinstance(value, str) and (
            chain_id_of(value) is not None
            or value in _OTHER_X402_NETWORKS
            or _CAIP2.match(value) is not None
        )
        if not known:
            raise InvalidRequestError(
                f"allowed_networks: unknown network {value!r}; use a name such as 'og-evm' or "
                "'base', or a CAIP-2 id such as 'eip155:8453'"
            )
        out.add(canonical_network(value))
    return frozenset(out)


class PaymentPolicy:
    """The limits of what a client pays.

    ``max_payment`` caps one call (generation 1) or one session (generation 2), in the asset's
    base units; None means one whole token of the asset (``10**decimals``) for the assets whose
    decimals this client knows, and refuses any other asset. Everything one call signs counts
    against the cap together (a refused pre-payment plus the payment that replaces it).
    ``budget`` bounds the total this client (every client sharing this policy) may authorize
    across calls and sessions, per asset in its base units; None is no limit. ``allowed_networks``
    are names or CAIP-2 ids; ``allowed_assets`` and ``allowed_payees`` are addresses (None
    allows any). A requirement valid for longer than ``max_validity_seconds`` is refused. Once
    an endpoint was paid, a challenge from it with another payee or asset is refused unless
    that payee or asset is explicitly allowed.
    """

    def __init__(
        self,
        *,
        max_payment: int | None = None,
        allowed_networks: Iterable[str] = DEFAULT_NETWORKS,
        allowed_assets: Iterable[str] | None = None,
        allowed_payees: Iterable[str] | None = None,
        max_validity_seconds: int = 3600,
        budget: int | None = None,
    ) -> None:
        if max_payment is not None and (
            isinstance(max_payment, bool) or not isinstance(max_payment, int) or max_payment < 0
        ):
            raise InvalidRequestError(
                f"max_payment must be a non-negative integer of base units (or None), "
                f"got {max_payment!r}"
            )
        if (
            isinstance(max_validity_seconds, bool)
            or not isinstance(max_validity_seconds, int)
            or max_validity_seconds <= 0
        ):
            raise InvalidRequestError(
                f"max_validity_seconds must be a positive integer, got {max_validity_seconds!r}"
            )
        self.max_payment = max_payment
        self.allowed_networks = _networks(allowed_networks)
        self.allowed_assets = _addresses(allowed_assets, "allowed_assets")
        self.allowed_payees = _addresses(allowed_payees, "allowed_payees")
        self.max_validity_seconds = max_validity_seconds
        self.budget = Budget(budget)

    def __repr__(self) -> str:
        return (
            f"PaymentPolicy(max_payment={self.max_payment!r}, "
            f"allowed_networks={sorted(self.allowed_networks)!r}, "
            f"allowed_assets={sorted(self.allowed_assets) if self.allowed_assets else None!r}, "
            f"allowed_payees={sorted(self.allowed_payees) if self.allowed_payees else None!r}, "
            f"max_validity_seconds={self.max_validity_seconds!r}, "
            f"budget={self.budget.limit!r})"
        )

    def cap_for(self, asset: str) -> int | None:
        """The cap in base units of ``asset``: ``max_payment``, else one whole token of an asset
        whose decimals are known; None (nothing may be paid) for an unknown asset."""
        if self.max_payment is not None:
            return self.max_payment
        decimals = known_decimals(asset)
        return None if decimals is None else int(10**decimals)

    def refusal(
        self,
        requirement: PaymentRequirement,
        pinned: PinnedTerms | None = None,
        spent: Mapping[str, int] | None = None,
    ) -> str | None:
        """Why ``requirement`` may not be paid, or None when it may. ``spent`` is what the
        current call already signed, per lower-cased asset (it counts against the cap)."""
        from . import scheme_for  # the scheme registry imports this package's modules

        what = f"{requirement.scheme} payment on {requirement.network}"
        if scheme_for(requirement) is None:
            return (
                f"the server asks for an x402 v{requirement.x402_version} "
                f"{requirement.scheme!r} payment, which this client cannot make"
            )
        if lookup_network(requirement.network) is None and chain_id_of(requirement.network) is None:
            return f"the server asks for a payment on unknown network {requirement.network!r}"
        if canonical_network(requirement.network) not in self.allowed_networks:
            return (
                f"the server asks for a payment on network {requirement.network!r}, which is not "
                f"in allowed_networks ({', '.join(sorted(self.allowed_networks))})"
            )
        asset, payee = requirement.asset.lower(), requirement.pay_to.lower()
        if self.allowed_assets is not None and asset not in self.allowed_assets:
            return f"the server asks for asset {requirement.asset}, which is not in allowed_assets"
        if self.allowed_payees is not None and payee not in self.allowed_payees:
            return f"the server asks to pay {requirement.pay_to}, who is not in allowed_payees"
        if pinned is not None:
            if payee != pinned.pay_to.lower() and self.allowed_payees is None:
                return (
                    f"the server now asks to pay {requirement.pay_to}, but this endpoint was paid "
                    f"to {pinned.pay_to} before; pass allowed_payees to accept the new payee"
                )
            if asset != pinned.asset.lower() and self.allowed_assets is None:
                return (
                    f"the server now asks for asset {requirement.asset}, but this endpoint was "
                    f"paid in {pinned.asset} before; pass allowed_assets to accept the new asset"
                )
        if requirement.max_timeout_seconds > self.max_validity_seconds:
            return (
                f"the server asks for a {what} valid for {requirement.max_timeout_seconds} s, "
                f"longer than max_validity_seconds={self.max_validity_seconds}"
            )
        if requirement.amount < 0:
            return f"the server asks a negative amount ({requirement.amount}) for a {what}"
        cap = self.cap_for(requirement.asset)
        if cap is None:
            return (
                f"the server asks for asset {requirement.asset}, whose decimals this client does "
                "not know, so its default cap (one whole token) cannot be computed; set "
                "max_payment (in that asset's base units) to pay it"
            )
        per = "session" if requirement.x402_version >= 2 else "call"
        if requirement.amount > cap:
            return (
                f"the server asks {requirement.amount} base units of {requirement.asset} per "
                f"{per} ({what}), over this client's cap of {cap}; raise max_payment to pay it"
            )
        already = (spent or {}).get(asset, 0)
        if already + requirement.amount > cap:
            return (
                f"the server asks {requirement.amount} base units of {requirement.asset} "
                f"({what}) after this call already signed {already}: together over this "
                f"client's cap of {cap} per {per}"
            )
        remaining = self.budget.remaining(requirement.asset)
        if remaining is not None and requirement.amount > remaining:
            return (
                f"the server asks {requirement.amount} base units of {requirement.asset} "
                f"({what}), but this client's budget is {self.budget.limit} and "
                f"{self.budget.spent(requirement.asset)} are already authorized; raise budget "
                "to pay more"
            )
        return None

    def choose(
        self,
        challenge: PaymentChallenge,
        pinned: PinnedTerms | None = None,
        spent: Mapping[str, int] | None = None,
    ) -> PaymentRequirement:
        """The cheapest acceptable requirement of ``challenge`` (``spent``: what this call
        already signed, per lower-cased asset).

        Raises :class:`PaymentPolicyError` naming why each offer was refused.
        """
        reasons = []
        acceptable = []
        for requirement in challenge.accepts:
            reason = self.refusal(requirement, pinned, spent)
            if reason is None:
                acceptable.append(requirement)
            else:
                reasons.append(reason)
        if acceptable:
            return min(acceptable, key=lambda r: r.amount)
        if not reasons:
            reasons.append("the server's challenge offers no way to pay")
        raise PaymentPolicyError(refused(spent) + "; ".join(dict.fromkeys(reasons)))


def refused(spent: Mapping[str, int] | None) -> str:
    """The opening of a refusal: nothing was signed, or nothing more for a call that already
    signed a payment."""
    more = " more" if spent and any(spent.values()) else ""
    return f"payment refused, nothing{more} was signed: "
