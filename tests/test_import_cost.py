"""Importing the LangChain adapter stays cheap (the benchmark's import goal): the transport's
hashing, crypto and client are imported when a model is built, not with the package."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("opengradient_shared.protocol", "opengradient_shared.client", "cryptography", "httpx")


def test_importing_the_langchain_adapter_does_not_import_the_transport() -> None:
    code = (
        "import sys, langchain_opengradient\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()
    assert found == ""
