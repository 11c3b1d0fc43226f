"""Base64-JSON encoding of x402 headers (``X-PAYMENT``, ``PAYMENT-SIGNATURE``, ...)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


class HeaderDecodeError(ValueError):
    """A payment header is not base64 of a JSON object."""


def encode_header(payload: dict[str, Any]) -> str:
    """``base64(JSON)`` of a payload, compact and ASCII."""
    raw = json.dumps(payload, separators=(",", ":")).encode("ascii")
    return base64.b64encode(raw).decode("ascii")


def decode_header(value: str) -> dict[str, Any]:
    """Decode a ``base64(JSON object)`` header; raises :class:`HeaderDecodeError` saying why."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise HeaderDecodeError("not valid base64") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HeaderDecodeError("not valid JSON inside the base64") from None
    if not isinstance(data, dict):
        raise HeaderDecodeError("the JSON is not an object")
    return data
