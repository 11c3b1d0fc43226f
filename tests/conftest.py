"""Shared fixtures: a real local gateway on 127.0.0.1 and real wallets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from signing_spy import SignSpy


@pytest.fixture(autouse=True)
def _no_real_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL-less client in a test never reaches OpenGradient's devnet: unless a test sets one,
    the registry RPC is a closed loopback port (pytest-socket also refuses non-loopback hosts)."""
    monkeypatch.setenv("OPENGRADIENT_RPC_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("OPENGRADIENT_ATTESTATION_ROOT_SHA256", raising=False)
    from opengradient_shared import network

    # the registry listings and attestation verdicts are shared per process: a later test's
    # local chain may reuse an earlier one's port (and its registry address is the same)
    network._DIRECTORIES.clear()
    network._VERDICTS.clear()


@pytest.fixture
def account() -> LocalAccount:
    """A fresh throwaway wallet."""
    return Account.create()


@pytest.fixture(scope="module")
def wallet() -> LocalAccount:
    """A throwaway wallet for a whole module (pairs with ``shared_gateway``)."""
    return Account.create()


@pytest.fixture
def spy(account: LocalAccount, monkeypatch: pytest.MonkeyPatch) -> SignSpy:
    """Counts the signatures ``account`` makes (every x402 payment is one)."""
    return SignSpy(account, monkeypatch)


@pytest.fixture(scope="session")
def tee_signing_key_pem() -> bytes:
    """One RSA-2048 TEE key for the whole test session (generating one per gateway is slow)."""
    from opengradient_shared.gateway import generate_key_pem

    return generate_key_pem()


@pytest.fixture
def gateway(tee_signing_key_pem: bytes) -> Iterator[Any]:
    """A fresh generation-1 (x402 v1 ``exact``) LocalGateway on 127.0.0.1, stopped after."""
    from opengradient_shared.gateway import LocalGateway

    with LocalGateway(signing_key_pem=tee_signing_key_pem) as gw:
        yield gw


@pytest.fixture
def gateway_v2(tee_signing_key_pem: bytes) -> Iterator[Any]:
    """A fresh generation-2 (x402 v2 ``upto`` sessions) LocalGateway, stopped after."""
    from opengradient_shared.gateway import LocalGateway

    with LocalGateway(protocol="v2", signing_key_pem=tee_signing_key_pem) as gw:
        yield gw


@pytest.fixture(scope="module")
def shared_gateway(tee_signing_key_pem: bytes) -> Iterator[Any]:
    """One generation-1 LocalGateway for a whole module (its tests assert on counter and ledger
    deltas, never on absolute counts)."""
    from opengradient_shared.gateway import LocalGateway

    with LocalGateway(signing_key_pem=tee_signing_key_pem) as gw:
        yield gw


@pytest.fixture
def hostile(tee_signing_key_pem: bytes) -> Iterator[Any]:
    """A fresh scriptable hostile server on 127.0.0.1 signing its own TEE proofs
    (``tests/hostile/server.py``), stopped after."""
    from hostile import HostileServer

    with HostileServer(signing_key_pem=tee_signing_key_pem) as server:
        yield server
