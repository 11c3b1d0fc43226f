"""LangChain's standard integration-test suite for ChatOpenGradient, against a real
LocalGateway on 127.0.0.1 (real x402 payments, real TEE proofs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_opengradient import ChatOpenGradient

_KEY = "0x" + bytes(Account.create().key).hex()
_served: dict[str, str] = {}


@pytest.fixture(autouse=True, scope="module")
def _serve(shared_gateway: Any) -> Iterator[None]:
    _served["url"] = shared_gateway.url
    yield
    _served.clear()


class TestChatOpenGradientIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatOpenGradient]:
        return ChatOpenGradient

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "model": "openai/gpt-4.1-2025-04-14",
            "private_key": _KEY,
            "base_url": _served["url"],
        }

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def structured_output_kwargs(self) -> dict[str, Any]:
        return {"method": "function_calling"}

    @property
    def supports_json_mode(self) -> bool:
        return True  # the local model answers JSON mode with the keys the prompt names

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "anthropic/claude-sonnet-4-5"
