"""Running a crash case in a child process: a regression that overflows the C stack (SIGSEGV)
then fails its test instead of killing the whole run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
"""Put on the child's path (as ``sys.argv[-1]``) so that it can import :mod:`hostile`."""


def run_in_child(code: str, *args: str) -> str:
    """Run ``code`` with ``args`` (then the tests folder) as ``sys.argv[1:]``; the child must
    exit normally. Returns what it printed, stripped."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args, str(TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout.strip()
