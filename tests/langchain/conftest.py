"""Fixtures of the LangChain adapter tests: models built on the module's local gateway and
wallet (``shared_gateway`` and ``wallet`` come from tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest
from lc_support import MODEL, key_of

from langchain_opengradient import ChatOpenGradient


@pytest.fixture
def chat(shared_gateway: Any, wallet: Any) -> ChatOpenGradient:
    """A ChatOpenGradient on the module's gateway."""
    return ChatOpenGradient(model=MODEL, private_key=key_of(wallet), base_url=shared_gateway.url)
