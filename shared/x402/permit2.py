"""The EIP-712 message of a Permit2 ``PermitWitnessTransferFrom``, shared by the v2 schemes
that pay through Permit2 (``exact`` with ``assetTransferMethod=permit2``, and ``upto``); they
differ only in the fields of their ``Witness`` struct."""

from __future__ import annotations

from typing import Any

from .challenge import PaymentRequirement
from .networks import PERMIT2_ADDRESS, chain_id_of

_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "PermitWitnessTransferFrom": [
        {"name": "permitted", "type": "TokenPermissions"},
        {"name": "spender", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
        {"name": "witness", "type": "Witness"},
    ],
    "TokenPermissions": [
        {"name": "token", "type": "address"},
        {"name": "amount", "type": "uint256"},
    ],
}


def chain_id(requirement: PaymentRequirement) -> int:
    """The requirement's chain id; an unknown network is a ``ValueError``."""
    value = chain_id_of(requirement.network)
    if value is None:
        raise ValueError(f"unknown network {requirement.network!r}")
    return value


def typed_data(
    authorization: dict[str, Any], chain_id: int, witness_fields: list[dict[str, str]]
) -> dict[str, Any]:
    """The full EIP-712 message of a ``permit2Authorization`` whose ``Witness`` struct has
    ``witness_fields`` (in order); numbers may be decimal strings."""
    permitted, witness = authorization["permitted"], authorization["witness"]
    return {
        "types": {**_TYPES, "Witness": witness_fields},
        "primaryType": "PermitWitnessTransferFrom",
        "domain": {"name": "Permit2", "chainId": chain_id, "verifyingContract": PERMIT2_ADDRESS},
        "message": {
            "permitted": {"token": permitted["token"], "amount": int(permitted["amount"])},
            "spender": authorization["spender"],
            "nonce": int(authorization["nonce"]),
            "deadline": int(authorization["deadline"]),
            "witness": {
                field["name"]: (
                    int(witness[field["name"]])
                    if field["type"] == "uint256"
                    else witness[field["name"]]
                )
                for field in witness_fields
            },
        },
    }
