"""Fixtures of the LlamaIndex adapter tests: one real local gateway per module (tests assert on
counter and ledger deltas), a throwaway wallet, and an ``OpenGradient`` built on them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from li_support import MODEL, key_of

from llamaindex_opengradient import OpenGradient


@pytest.fixture(scope="module")
def shared_gateway(tee_signing_key_pem: bytes) -> Iterator[Any]:
    """One generation-1 LocalGateway for a whole module."""
    from opengradient_shared.gateway import LocalGateway

    with LocalGateway(signing_key_pem=tee_signing_key_pem) as gw:
        yield gw


@pytest.fixture(scope="module")
def wallet() -> Any:
    """A throwaway wallet for a module."""
    return Account.create()


@pytest.fixture
def llm(shared_gateway: Any, wallet: Any) -> OpenGradient:
    """An OpenGradient LLM on the module's gateway."""
    return OpenGradient(model=MODEL, private_key=key_of(wallet), base_url=shared_gateway.url)
