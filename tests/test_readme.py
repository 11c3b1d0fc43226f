"""The README's ``python`` blocks run as pasted (``py`` blocks are fragments, not run), on both
protocol generations: for generation 2 the blocks' ``LocalGateway()`` serves x402 v2 ``upto``
sessions (the only change: a subclass whose default protocol is v2)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from opengradient_shared import gateway

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)


class _Gen2Gateway(gateway.LocalGateway):
    """``LocalGateway`` whose default protocol is generation 2."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**{"protocol": "v2", **options})


def test_readme_has_runnable_quickstarts_and_seed_block() -> None:
    assert len(BLOCKS) >= 3
    assert any("from opengradient_shared import LLM" in block for block in BLOCKS)


@pytest.mark.parametrize("protocol", ["v1", "v2"])
@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(
    code: str, protocol: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[str] = []

    class Recording(_Gen2Gateway if protocol == "v2" else gateway.LocalGateway):  # type: ignore[misc]
        def start(self) -> Any:
            served.append(self.protocol)
            return super().start()

    monkeypatch.setattr(gateway, "LocalGateway", Recording)
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert served == [protocol]
    assert "TEE proof verified: True" in printed
    if "cost" in code:  # the quickstarts print what each call cost, on both generations
        assert re.search(r"^cost: (\d+|not reported) ", printed, re.M), printed
