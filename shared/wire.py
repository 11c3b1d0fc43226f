"""Strict, bounded reading of what a server sends (pure, no I/O).

Every parse of server data (answer bodies, stream events, 402 challenges, payment receipts,
``/signing-key``) goes through :func:`loads` and the typed getters here, so that a server that
lies about types, sizes or nesting gets one kind of answer: a :class:`MalformedAnswerError`
naming the field, never a raw ``TypeError``, ``OverflowError`` or a crashed interpreter.

Nesting is checked *before* ``json.loads``, by a linear scan: eth-account (py_ecc) raises the
recursion limit to 100000, and the json module then overflows the C stack on deeply nested input
instead of raising ``RecursionError``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import MalformedAnswerError, excerpt

__all__ = [
    "MAX_DEPTH",
    "MalformedAnswerError",
    "as_address",
    "as_amount",
    "as_int",
    "as_list",
    "as_object",
    "as_str",
    "loads",
    "nesting_depth",
    "opt_int",
    "opt_object",
    "opt_str",
]

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in server JSON (real answers use about 6)."""
MAX_INT_DIGITS = 100
"""Longest integer literal accepted (a uint256 has 78 digits)."""
MAX_UINT256 = 2**256 - 1

_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\Z)|[\[{]|[\]}]', re.S)
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_DECIMAL = re.compile(r"^[0-9]{1,78}$")


def nesting_depth(data: bytes, limit: int = MAX_DEPTH) -> int:
    """The deepest array/object nesting of JSON text, scanning at most to ``limit + 1``.

    Linear in ``len(data)``: string literals are skipped whole by one regular expression.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return 0  # cannot nest deeper than it has brackets
    depth = deepest = 0
    for match in _TOKENS.finditer(data):
        first = match.group()[0]
        if first in b"[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif first in b"]}":
            depth -= 1
    return deepest


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(data: bytes | str, what: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data`` as strict JSON (no NaN/Infinity, no huge integers, bounded nesting).

    ``what`` names the data in errors ("the answer", "a stream event", ...). Raises
    :class:`MalformedAnswerError`.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if nesting_depth(raw, max_depth) > max_depth:
        raise MalformedAnswerError(f"{what} is JSON nested deeper than {max_depth} levels")
    try:
        text = raw.decode("utf-8")
        return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeError included
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise MalformedAnswerError(
            f"{what} is not JSON ({excerpt(reason, 120)}): {excerpt(raw, 200)}"
        ) from None


# ---- typed getters ---------------------------------------------------------------------------


def _wrong(where: str, expected: str, value: Any) -> MalformedAnswerError:
    return MalformedAnswerError(
        f"the server's {where} should be {expected}, got {type(value).__name__} "
        f"{excerpt(value, 80)}"
    )


def as_object(value: Any, where: str) -> dict[str, Any]:
    """``value`` if it is a JSON object."""
    if not isinstance(value, dict):
        raise _wrong(where, "an object", value)
    return value


def as_list(value: Any, where: str) -> list[Any]:
    """``value`` if it is a JSON array."""
    if not isinstance(value, list):
        raise _wrong(where, "an array", value)
    return value


def as_str(value: Any, where: str) -> str:
    """``value`` if it is a string."""
    if not isinstance(value, str):
        raise _wrong(where, "a string", value)
    return value


def as_int(value: Any, where: str, *, low: int = 0, high: int = 2**63 - 1) -> int:
    """``value`` if it is an integer (not a bool, not a float) from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(where, "an integer", value)
    if not low <= value <= high:
        raise MalformedAnswerError(
            f"the server's {where} is out of range ({low} to {high}): {excerpt(value, 80)}"
        )
    return value


def as_amount(value: Any, where: str) -> int:
    """A non-negative uint256 written as a decimal string (or a JSON integer)."""
    if isinstance(value, str) and _DECIMAL.match(value):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise _wrong(where, "a decimal string of base units", value)
    if not 0 <= number <= MAX_UINT256:
        raise MalformedAnswerError(f"the server's {where} is out of range: {excerpt(value, 80)}")
    return number


def as_address(value: Any, where: str) -> str:
    """An EVM address (``0x`` and 40 hex digits)."""
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise _wrong(where, "an address (0x and 40 hex digits)", value)
    return value


def opt_str(mapping: Mapping[str, Any], key: str, where: str) -> str | None:
    """An optional string field."""
    value = mapping.get(key)
    return None if value is None else as_str(value, f"{where}.{key}" if where else key)


def opt_int(
    mapping: Mapping[str, Any], key: str, where: str, *, low: int = 0, high: int = 2**63 - 1
) -> int | None:
    """An optional integer field."""
    value = mapping.get(key)
    name = f"{where}.{key}" if where else key
    return None if value is None else as_int(value, name, low=low, high=high)


def opt_object(mapping: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
    """An optional object field."""
    value = mapping.get(key)
    return None if value is None else as_object(value, f"{where}.{key}" if where else key)
