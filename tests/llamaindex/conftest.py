"""Fixtures of the LlamaIndex adapter tests: an ``OpenGradient`` built on the module's local
gateway and wallet (``shared_gateway`` and ``wallet`` come from tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
from li_support import MODEL, key_of

from llamaindex_opengradient import OpenGradient


@pytest.fixture
def llm(shared_gateway: Any, wallet: Any) -> OpenGradient:
    """An OpenGradient LLM on the module's gateway."""
    return OpenGradient(model=MODEL, private_key=key_of(wallet), base_url=shared_gateway.url)
