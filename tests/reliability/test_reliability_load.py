"""A small version of ``benchmarks/load.py``: many threads and a burst of async calls on one
shared client, against one gateway. No errors, one settlement per call, no nonce used twice.
(The large run and its throughput and memory figures are in ``make bench``.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

LOAD_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "load.py"


def _load_module() -> Any:
    spec = importlib.util.spec_from_file_location("benchmarks_load", LOAD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_concurrent_sync_and_async_calls_settle_once_each(gateway: Any) -> None:
    result = _load_module().run_load(calls=200, threads=16, async_calls=50, gateway=gateway)
    assert result.errors == []
    assert result.calls == 250
    assert result.settled == result.calls
    assert result.reused_nonces == 0
