"""Base64-JSON encoding of x402 headers (``X-PAYMENT``, ``PAYMENT-SIGNATURE``, ...)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .. import wire
from ..errors import ServerError

MAX_HEADER_CHARS = 65_536
"""The longest payment header decoded (a real one is under 2 KB)."""


class HeaderDecodeError(ValueError):
    """A payment header is not base64 of a JSON object."""


def encode_header(payload: dict[str, Any]) -> str:
    """``base64(JSON)`` of a payload, compact and ASCII."""
    raw = json.dumps(payload, separators=(",", ":")).encode("ascii")
    return base64.b64encode(raw).decode("ascii")


def decode_header(value: str) -> dict[str, Any]:
    """Decode a ``base64(JSON object)`` header; raises :class:`HeaderDecodeError` saying why."""
    if not isinstance(value, str) or len(value) > MAX_HEADER_CHARS:
        raise HeaderDecodeError(f"not a header of at most {MAX_HEADER_CHARS} characters")
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise HeaderDecodeError("not valid base64") from None
    try:
        data = wire.loads(raw, "the header's JSON")
    except ServerError as exc:
        raise HeaderDecodeError(f"not valid JSON inside the base64 ({exc})") from None
    if not isinstance(data, dict):
        raise HeaderDecodeError("not base64 of a JSON object")
    return data
