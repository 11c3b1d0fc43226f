"""LangChain's standard unit-test suite for ChatOpenGradient (construction, binding, params).

Construction does no I/O, so these models point at a closed port."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_opengradient import ChatOpenGradient

_KEY = "0x" + bytes(Account.create().key).hex()
_URL = "http://127.0.0.1:9"


class TestChatOpenGradientUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatOpenGradient]:
        return ChatOpenGradient

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # "api_key" (the alias of private_key) replaces the suite's placeholder "test".
        return {"model": "openai/gpt-4.1-2025-04-14", "api_key": _KEY, "base_url": _URL}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {
                "OPENGRADIENT_PRIVATE_KEY": _KEY,
                "OPENGRADIENT_LLM_URL": _URL,
                "OPENGRADIENT_LLM_STREAMING_URL": "http://127.0.0.1:10",
                "OPENGRADIENT_MAX_PAYMENT": "5000",
            },
            {"model": "openai/gpt-4.1-2025-04-14"},
            {
                "private_key": _KEY,
                "base_url": _URL,
                "streaming_url": "http://127.0.0.1:10",
                "max_payment": 5000,
            },
        )

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
    def supports_json_mode(self) -> bool:
        return True  # the local model answers JSON mode with the keys the prompt names

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "anthropic/claude-sonnet-4-5"
