"""Fixtures of the reliability suite: a fault proxy in front of the local gateway, a spy that
counts payment signatures, and the time bound every faulty call must meet."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from faultproxy import FaultProxy
from opengradient_shared import LLM, TEE_LLM

MODEL = TEE_LLM.GPT_4O
MESSAGES = [{"role": "user", "content": "Tell me about fault tolerance."}]
TIMEOUT = 0.6  # seconds per attempt: small, so that faults cost little wall time
RETRIES = 2
MARGIN = 2.5  # backoff between attempts plus scheduling slack


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


class SignSpy:
    """Counts EIP-712 signatures made with an account (wraps its ``sign_typed_data``)."""

    def __init__(self, account: LocalAccount) -> None:
        self.calls = 0
        self._inner = account.sign_typed_data

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self._inner(*args, **kwargs)


@pytest.fixture
def spy(account: LocalAccount, monkeypatch: pytest.MonkeyPatch) -> SignSpy:
    """A spy on ``account``'s signatures (every payment is an EIP-712 signature)."""
    spy = SignSpy(account)
    monkeypatch.setattr(account, "sign_typed_data", spy)
    return spy


@pytest.fixture
def proxy(gateway: Any) -> Iterator[FaultProxy]:
    """A fault proxy in front of the v1 gateway."""
    with FaultProxy(gateway.url) as p:
        yield p


@pytest.fixture
def proxy_v2(gateway_v2: Any) -> Iterator[FaultProxy]:
    """A fault proxy in front of the v2 gateway."""
    with FaultProxy(gateway_v2.url) as p:
        yield p


@pytest.fixture
def make_llm(account: LocalAccount) -> Iterator[Callable[..., LLM]]:
    """Build ``LLM``s on ``account`` with the suite's small timeout; closed after the test."""
    made: list[LLM] = []

    def build(url: str, **options: Any) -> LLM:
        options.setdefault("timeout", TIMEOUT)
        options.setdefault("max_retries", RETRIES)
        llm = LLM(account, url, **options)
        made.append(llm)
        return llm

    yield build
    for llm in made:
        llm.close()
