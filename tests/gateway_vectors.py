"""The captured gateway traffic in tests/vectors/, loaded for tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parent / "vectors" / "gateway-2026-11"


def load_vector(name: str) -> Any:
    """A captured file: JSON decoded, or raw bytes for ``.sse``."""
    path = VECTORS / name
    if path.suffix == ".sse":
        return path.read_bytes()
    return json.loads(path.read_text(encoding="utf-8"))
