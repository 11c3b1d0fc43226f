"""Checks of the values a payment's EIP-712 message will carry, made before anything is signed.

A server's value that the ABI encoder would reject (a short address, a negative or 2**300
amount, a deadline past uint256) must fail here, with a message naming the field, and never
inside the signing library, where the key is a local of the failing frames.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import excerpt

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
UINT256_MAX = (1 << 256) - 1


def address(value: Any, what: str) -> str:
    """``value`` if it is a 0x-prefixed 20-byte hex address, else a ``ValueError``."""
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise ValueError(f"{what} is not a 0x-prefixed 20-byte address: {excerpt(value, 80)}")
    return value


def uint256(value: Any, what: str) -> int:
    """``value`` if it is an integer in the uint256 range, else a ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= UINT256_MAX:
        raise ValueError(f"{what} is not an unsigned 256-bit integer: {excerpt(value, 80)}")
    return value


def positive_seconds(value: Any, what: str, limit: int = 10**9) -> int:
    """A positive whole number of seconds up to ``limit`` (~30 years), else a ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
        raise ValueError(f"{what} is not a positive number of seconds: {excerpt(value, 80)}")
    return value
