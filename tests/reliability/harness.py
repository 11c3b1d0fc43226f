"""Shared helpers of the reliability suite: the call used everywhere, the small timeouts, the
time bound every faulty call must meet, and the ledger view."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
from opengradient_shared import TEE_LLM

MODEL = TEE_LLM.GPT_4_1_2025_04_14
MESSAGES = [{"role": "user", "content": "Tell me about fault tolerance."}]
TIMEOUT = 0.5  # seconds per attempt: small, so that faults cost little wall time
RETRIES = 2
MARGIN = 2.0  # backoff between attempts (at most 0.15 s here) plus scheduling slack


def bound(timeout: float = TIMEOUT, retries: int = RETRIES) -> float:
    """The longest a call may take under any fault: every attempt times out, plus a margin."""
    return timeout * (retries + 1) + MARGIN


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Assert the block returns or raises within ``seconds`` (a bound check on a fault; the
    suite never asserts speed)."""
    started = time.monotonic()
    try:
        yield
    finally:
        elapsed = time.monotonic() - started
        assert elapsed <= seconds, f"took {elapsed:.2f} s, bound {seconds:.2f} s"


def field(entry: Any, name: str) -> Any:
    """A field of a ledger entry (a mapping or an object)."""
    return entry[name] if isinstance(entry, Mapping) else getattr(entry, name)


def settled_nonces(gateway: Any) -> list[str]:
    """The nonces of every settlement in the gateway's ledger, in order."""
    return [str(field(e, "nonce")) for e in gateway.ledger.entries]


def adapter(name: str) -> Any:
    """The adapter module ``langchain_opengradient`` or ``llamaindex_opengradient``; the
    calling test is skipped while its class is not built yet."""
    module = pytest.importorskip(name)
    cls = {"langchain_opengradient": "ChatOpenGradient"}.get(name, "OpenGradient")
    if not hasattr(module, cls):
        pytest.skip(f"{name}.{cls} is not built yet")
    return module
