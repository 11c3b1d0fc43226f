"""Run every benchmark script in this folder and print one table of ratios.

Each script exposes ``rows()`` returning ``(name, measured, goal)`` tuples, where ``measured``
is a float (a ratio against a baseline measured in the same run, or a figure with its unit in
the name) and ``goal`` a short text such as ``"<= 1.15x"``. A script can also be run alone.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"benchmarks.{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _meets(measured: float, goal: str) -> str:
    text = goal.replace("x", "").replace("×", "").replace("ms", "").replace("MB", "").strip()
    for op in ("<=", ">="):
        if text.startswith(op):
            try:
                bound = float(text[len(op) :].strip())
            except ValueError:
                return ""
            met = measured <= bound if op == "<=" else measured >= bound
            return "yes" if met else "NO"
    return ""


def main() -> int:
    this = Path(__file__).name
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != this and not p.name.startswith("_"))
    table: list[tuple[str, str, float, str, str]] = []
    for path in scripts:
        print(f"[bench] {path.name} ...", flush=True)
        started = time.perf_counter()
        rows: Callable[[], list[tuple[str, float, str]]] = _load(path).rows
        for name, measured, goal in rows():
            table.append((path.stem, name, measured, goal, _meets(measured, goal)))
        print(f"[bench] {path.name} done in {time.perf_counter() - started:.1f} s", flush=True)
    width = max(len(name) for _, name, *_ in table) if table else 10
    print()
    print(f"{'script':<20} {'measurement':<{width}} {'measured':>10}  {'goal':<10} met")
    print("-" * (width + 48))
    for script, name, measured, goal, met in table:
        print(f"{script:<20} {name:<{width}} {measured:>10.3f}  {goal:<10} {met}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
