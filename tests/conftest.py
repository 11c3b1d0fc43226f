"""Shared fixtures: a real local gateway on 127.0.0.1 and real wallets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "gateway-2026-11"
if not VECTORS.is_dir():  # CI clones main with shared/ beside it
    VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "gateway-2026-11"


def load_vector(name: str) -> Any:
    """A file of the captured gateway traffic (JSON decoded, or raw bytes for .sse)."""
    path = VECTORS / name
    if path.suffix == ".sse":
        return path.read_bytes()
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def account() -> LocalAccount:
    """A fresh throwaway wallet."""
    return Account.create()
