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

DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
"""8 MiB: far above any answer of ``max_tokens`` an LLM gateway sends, far below harm."""
READ_CHUNK = 64 * 1024


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
