"""Networks, chain ids, assets and contract addresses that x402 payments name."""

from __future__ import annotations

from dataclasses import dataclass

PERMIT2_ADDRESS = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
"""The canonical Permit2 contract (the EIP-712 ``verifyingContract`` of generation 2)."""

UPTO_PROXY_ADDRESS = "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002"
"""The x402 ``upto`` proxy: the Permit2 ``spender`` of generation-2 payments."""

OPG_BASE_ADDRESS = "0xFbC2051AE2265686a469421b2C5A2D5462FbF5eB"
"""OPG on Base (18 decimals), the asset of today's gateway."""


@dataclass(frozen=True)
class Network:
    """An EVM network x402 payments may use."""

    name: str
    chain_id: int
    default_asset: str
    asset_name: str
    asset_version: str
    decimals: int

    @property
    def caip2(self) -> str:
        """The CAIP-2 id generation 2 uses, e.g. ``eip155:8453``."""
        return f"eip155:{self.chain_id}"


NETWORKS: dict[str, Network] = {
    n.name: n
    for n in (
        Network("og-evm", 10740, "0x094E464A23B90A71a0894D5D1e5D470FfDD074e1", "OUSDC", "2", 6),
        Network(
            "base-sepolia", 84532, "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "USDC", "2", 6
        ),
        Network("base", 8453, "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "USD Coin", "2", 6),
    )
}

_BY_CAIP2 = {n.caip2: n for n in NETWORKS.values()}


def lookup_network(name_or_caip2: str) -> Network | None:
    """Find a network by its name (``base``) or CAIP-2 id (``eip155:8453``)."""
    return NETWORKS.get(name_or_caip2) or _BY_CAIP2.get(name_or_caip2)


def canonical_network(name_or_caip2: str) -> str:
    """One spelling per network, for comparing allow-lists: the name when known."""
    network = lookup_network(name_or_caip2)
    return network.name if network else name_or_caip2


def chain_id_of(name_or_caip2: str) -> int | None:
    """The chain id of a known network or of any ``eip155:<id>`` string."""
    network = lookup_network(name_or_caip2)
    if network:
        return network.chain_id
    prefix, _, number = name_or_caip2.partition(":")
    if prefix == "eip155" and number.isdigit():
        return int(number)
    return None


def known_decimals(asset: str) -> int | None:
    """Decimals of a known asset (18 for OPG, 6 for the USDC-like ones); None when unknown.

    The payment policy relies on this: it never guesses the decimals of an asset it does not
    know (a guess of 18 for a 6-decimal token would make "one whole token" 10^12 tokens)."""
    if asset.lower() == OPG_BASE_ADDRESS.lower():
        return 18
    for network in NETWORKS.values():
        if network.default_asset.lower() == asset.lower():
            return network.decimals
    return None


def token_decimals(asset: str) -> int:
    """Decimals of an asset for display only (18 when unknown); limits use
    :func:`known_decimals`."""
    decimals = known_decimals(asset)
    return 18 if decimals is None else decimals
