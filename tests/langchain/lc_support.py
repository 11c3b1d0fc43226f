"""Constants and helpers the LangChain adapter tests import (conftest only holds fixtures)."""

from __future__ import annotations

from typing import Any

MODEL = "openai/gpt-4.1-2025-04-14"


def key_of(account: Any) -> str:
    """The hex private key of a throwaway test wallet."""
    return "0x" + bytes(account.key).hex()
