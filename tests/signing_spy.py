"""A spy that counts the signatures a wallet makes: every x402 payment is one (generation 1
signs its EIP-712 digest with ``unsafe_sign_hash``, generation 2 its permit with
``sign_typed_data``)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

SIGNING_METHODS = ("sign_typed_data", "unsafe_sign_hash")


class SignSpy:
    """``calls``: how many signatures ``account`` made since the spy was installed."""

    def __init__(self, account: LocalAccount, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        for name in SIGNING_METHODS:
            monkeypatch.setattr(account, name, self._counting(getattr(account, name)))

    def _counting(self, sign: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return sign(*args, **kwargs)

        return counted
