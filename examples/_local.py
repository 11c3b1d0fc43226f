"""What every example shares: a server and a wallet, local unless you configure real ones.

With ``OPENGRADIENT_LLM_URL`` unset, a local TEE gateway (real HTTP, real x402 checks, real TEE
signatures, a deterministic built-in model) is started on 127.0.0.1 for the example's run. With
``OPENGRADIENT_PRIVATE_KEY`` unset, a throwaway wallet is made (it holds nothing, so it can pay
only the local gateway, whose balances are unlimited). Both are put in the environment, where
``LLM``-based code, ``ChatOpenGradient`` and ``OpenGradient`` read their configuration.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from eth_account import Account
from opengradient_shared.gateway import LocalGateway

URL_ENV, KEY_ENV = "OPENGRADIENT_LLM_URL", "OPENGRADIENT_PRIVATE_KEY"


@contextlib.contextmanager
def server_and_wallet(protocol: str = "v1") -> Iterator[LocalGateway | None]:
    """Yield the local gateway started for this run, or None when a URL is configured."""
    gateway = None
    if not os.environ.get(URL_ENV):
        gateway = LocalGateway(protocol=protocol).start()
        os.environ[URL_ENV] = gateway.url
        print(
            f"[setup] local TEE gateway at {gateway.url} (x402 {protocol}); "
            f"set {URL_ENV} to use OpenGradient's network"
        )
    if not os.environ.get(KEY_ENV):
        account = Account.create()
        os.environ[KEY_ENV] = "0x" + bytes(account.key).hex()
        print(f"[setup] throwaway wallet {account.address}; set {KEY_ENV} to pay from your own")
    try:
        yield gateway
    finally:
        if gateway is not None:
            gateway.stop()


RPC_ENV, REGISTRY_ENV = "OPENGRADIENT_RPC_URL", "OPENGRADIENT_REGISTRY_ADDRESS"
ROOT_ENV = "OPENGRADIENT_ATTESTATION_ROOT_SHA256"


@contextlib.contextmanager
def local_network(protocol: str = "v1") -> Iterator[tuple[Any, LocalGateway]]:
    """A local stand-in for OpenGradient's network, for clients given no URL: a chain holding
    the TEE registry (served over JSON-RPC on 127.0.0.1) and one TLS gateway entered into it,
    whose local enclave attests its key and certificate under a test root. Yields the chain
    and the gateway; sets the RPC, registry and test-root variables (and removes the URL)."""
    from opengradient_shared.gateway.chain import LocalChain  # needs the dev extra

    with LocalChain() as chain, LocalGateway(protocol=protocol, tls=True) as gateway:
        tee_id = chain.register(gateway)
        os.environ.pop(URL_ENV, None)
        os.environ[RPC_ENV], os.environ[REGISTRY_ENV] = chain.rpc_url, chain.registry_address
        os.environ[ROOT_ENV] = gateway.enclave.root_sha256
        print(
            f"[setup] local chain: JSON-RPC {chain.rpc_url}, TEE registry {chain.registry_address}"
        )
        print(
            f"[setup] TEE {tee_id[:10]}… registered at {gateway.url} (TLS, self-signed "
            f"certificate and signing key on-chain, PCR hash {gateway.enclave.pcr_hash[:10]}…)"
        )
        print(f"[setup] the local enclave's test attestation root is pinned via {ROOT_ENV}")
        if not os.environ.get(KEY_ENV):
            account = Account.create()
            os.environ[KEY_ENV] = "0x" + bytes(account.key).hex()
            print(f"[setup] throwaway wallet {account.address}")
        yield chain, gateway
