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
