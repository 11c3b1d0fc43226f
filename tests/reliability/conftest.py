"""Fixtures of the reliability suite: a fault proxy in front of the local gateway and clients
with the suite's small timeouts (the signature ``spy`` comes from ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from faultproxy import FaultProxy
from harness import RETRIES, TIMEOUT
from opengradient_shared import LLM


@pytest.fixture(scope="module")
def gateway(tee_signing_key_pem: bytes) -> Iterator[Any]:
    """One v1 gateway per test module (tests read counter and ledger deltas, and restore any
    knob they turn)."""
    from opengradient_shared.gateway import LocalGateway

    with LocalGateway(signing_key_pem=tee_signing_key_pem) as gw:
        yield gw


@pytest.fixture(scope="module")
def gateway_v2(tee_signing_key_pem: bytes) -> Iterator[Any]:
    """One v2 gateway per test module."""
    from opengradient_shared.gateway import LocalGateway

    with LocalGateway(protocol="v2", signing_key_pem=tee_signing_key_pem) as gw:
        yield gw


@pytest.fixture
def set_price(gateway: Any) -> Iterator[Callable[[int], None]]:
    """Change the v1 gateway's price for one test."""
    original = gateway.price

    def set_to(price: int) -> None:
        gateway.price = price

    yield set_to
    gateway.price = original


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
