"""The public API type-checks as users write it: ``mypy --strict`` over tests/typing/.

An installed wheel holds ``opengradient_shared/`` with its ``py.typed``; the editable install
used here maps it from the folder ``shared/`` with an import hook that static checkers cannot
follow, so the test gives mypy the wheel's layout through a symlink on ``MYPYPATH``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
USER_CODE = ROOT / "tests" / "typing" / "user_code.py"


def test_user_code_type_checks_strictly(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    layout = tmp_path / "site"
    layout.mkdir()
    (layout / "opengradient_shared").symlink_to(ROOT / "shared", target_is_directory=True)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
         str(USER_CODE)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MYPYPATH": str(layout)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
