"""Fixtures of the LangChain adapter tests: a real local gateway, a throwaway wallet, and models
built on them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from lc_support import MODEL, key_of

from langchain_opengradient import ChatOpenGradient


@pytest.fixture(scope="module")
def shared_gateway(tee_signing_key_pem: bytes) -> Iterator[Any]:
    """One generation-1 LocalGateway for a whole module (tests assert on counter deltas)."""
    from opengradient_shared.gateway import LocalGateway

    with LocalGateway(signing_key_pem=tee_signing_key_pem) as gw:
        yield gw


@pytest.fixture(scope="module")
def wallet() -> Any:
    """A throwaway wallet for a module."""
    return Account.create()


@pytest.fixture
def chat(shared_gateway: Any, wallet: Any) -> ChatOpenGradient:
    """A ChatOpenGradient on the module's gateway."""
    return ChatOpenGradient(model=MODEL, private_key=key_of(wallet), base_url=shared_gateway.url)
