"""Resource limits of one call, shared by both drivers (pure): the largest answer read, and
the call's overall deadline (``time.monotonic`` instants), with their error messages.

Defaults (documented in the README's Configuration table): an answer, streamed or not, may be
at most ``DEFAULT_MAX_RESPONSE_BYTES``; a plain call keeps ``timeout`` per try unless a
``deadline`` is set; a stream must end within ``deadline`` or, by default, within
``timeout × (max_retries + 1)`` of the call's start (an idle gap longer than ``timeout`` ends it
sooner).
"""

from __future__ import annotations

import time
import zlib
from typing import Any

DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
"""8 MiB: far above any answer of ``max_tokens`` an LLM gateway sends, far below harm."""
READ_CHUNK = 64 * 1024


class LimitExceeded(Exception):
    """More than the limit was decoded."""


class UndecodableBody(Exception):
    """The body's ``Content-Encoding`` is unknown or its bytes do not inflate."""


class BoundedDecoder:
    """Decodes a body as its raw bytes arrive (identity, gzip or deflate), never producing more
    than ``limit`` bytes in all: a small compressed body that would inflate past the limit
    raises :class:`LimitExceeded` after at most ``limit + 1`` inflated bytes."""

    def __init__(self, encoding: str | None, limit: int) -> None:
        name = (encoding or "").strip().lower()
        self._inflater: Any = None
        if name in ("gzip", "x-gzip", "deflate"):
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip header
        elif name not in ("", "identity"):
            raise UndecodableBody(f"the answer is compressed with {name[:40]!r}, not decoded here")
        self.limit = limit
        self.total = 0

    def feed(self, raw: bytes) -> bytes:
        """The decoded bytes of ``raw`` (raises past the limit)."""
        out = raw if self._inflater is None else self._inflate(raw)
        self.total += len(out)
        if self.total > self.limit:
            raise LimitExceeded
        return out

    def _inflate(self, raw: bytes) -> bytes:
        out = bytearray()
        data = raw
        try:
            while True:
                room = self.limit - self.total - len(out) + 1
                out += self._inflater.decompress(data, room)
                if self.total + len(out) > self.limit:
                    raise LimitExceeded
                data = self._inflater.unconsumed_tail
                if not data:
                    return bytes(out)
        except zlib.error:
            raise UndecodableBody("the compressed answer does not inflate") from None


def remaining(timeout: float, end: float | None) -> float | None:
    """The timeout of the next try: ``timeout``, shortened to what is left before ``end``;
    None when ``end`` has passed."""
    if end is None:
        return timeout
    left = end - time.monotonic()
    return min(timeout, left) if left > 0 else None


def stream_end(start: float, timeout: float, retries: int, deadline: float | None) -> float:
    """When a stream started at ``start`` must be over (see the module's defaults)."""
    return start + (deadline if deadline is not None else timeout * (retries + 1))


def too_large(url: str, limit: int, announced: int | None = None) -> str:
    """The message of an answer cut at ``limit`` bytes."""
    size = f"announces {announced} bytes" if announced is not None else f"passed {limit} bytes"
    return (
        f"the answer of {url} {size}, over max_response_bytes={limit}; it was not read further "
        "(raise max_response_bytes if this server's answers are legitimately that large)"
    )


def stream_too_large(limit: int) -> str:
    """The message of a stream cut at ``limit`` bytes."""
    return (
        f"the stream passed max_response_bytes={limit} and was cut; what arrived was not verified"
    )


def deadline_passed(url: str, attempts: int = 0, *, stream: bool = False) -> str:
    """The message of a call stopped by its overall deadline."""
    if stream:
        return (
            f"the stream from {url} did not end within the call's deadline and was cut; what "
            "arrived was not verified (raise deadline for longer answers)"
        )
    tries = f" after {attempts} {'try' if attempts == 1 else 'tries'}" if attempts else ""
    return f"no answer from {url} within the call's deadline{tries}; raise deadline or retry"
