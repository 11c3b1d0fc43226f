"""Helpers of the LlamaIndex adapter tests (a module of its own: test folders cannot import
each other's conftest reliably)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MODEL = "openai/gpt-4.1-2025-04-14"


def key_of(account: Any) -> str:
    """The hex private key of a throwaway test wallet."""
    return "0x" + bytes(account.key).hex()


def assert_proven(extra: Mapping[str, Any], gateway: Any, wallet: Any) -> None:
    """``extra`` (a response's ``additional_kwargs``) holds a verified proof by ``gateway``'s
    TEE, a receipt paid by ``wallet``, usage, the finish reason and the model."""
    proof, receipt = extra["tee_proof"], extra["payment"]
    assert proof["verified"] is True
    assert proof["tee_id"] == gateway.tee_id
    assert proof["request_hash"] and proof["output_hash"] and proof["timestamp"] > 0
    assert receipt["payer"] == wallet.address and receipt["amount"] > 0
    if receipt["x402_version"] == 1:  # generation 2 has no processing hash
        assert extra["payment_hash"].startswith("0x")
    usage = extra["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert extra["finish_reason"] in ("stop", "length", "tool_calls")
    assert extra["model"] == MODEL
