"""Cost of reading server data strictly (shared/wire.py, shared/sse.py), as ratios against
baselines measured in the same run: the SSE decoder stays linear on a line without a newline
(issue 13: it was quadratic), the nesting check costs little beside ``json.loads``, and a
100,000-deep body is refused in about the time of parsing an ordinary body of the same size.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from opengradient_shared import wire
from opengradient_shared.sse import SSEDecoder

PIECE = 4096
SIZE = 4 * 1024 * 1024


def _best(run: Callable[[], object], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def _feed(data: bytes, limit: int) -> None:
    decoder = SSEDecoder(max_event_bytes=limit)
    for start in range(0, len(data), PIECE):
        decoder.feed(data[start : start + PIECE])


def sse_line_ratio() -> float:
    """Decoding one 4 MB line without a newline / decoding 4 MB of ordinary events."""
    event = b'data: {"choices": [{"index": 0, "delta": {"content": "word "}}], "model": "m"}\n\n'
    events = event * (SIZE // len(event))
    line = b"data: " + b"x" * SIZE
    return _best(lambda: _feed(line, 2 * SIZE)) / _best(lambda: _feed(events, 2 * SIZE))


def _answer(size: int) -> bytes:
    words = " ".join(["token"] * (size // 6))
    choice = {"index": 0, "message": {"role": "assistant", "content": words}}
    return json.dumps({"choices": [choice], "usage": {"prompt_tokens": 1}}).encode()


def strict_loads_ratio() -> float:
    """wire.loads / json.loads of a 200 KB answer."""
    body = _answer(200_000)
    return _best(lambda: [wire.loads(body, "a") for _ in range(20)]) / _best(
        lambda: [json.loads(body) for _ in range(20)]
    )


def deep_refusal_ratio() -> float:
    """Refusing a 200 KB body nested 100,000 deep / json.loads of a 200 KB ordinary answer."""
    deep = b"[" * 100_000 + b"]" * 100_000
    body = _answer(200_000)

    def refuse() -> None:
        try:
            wire.loads(deep, "a")
        except wire.MalformedAnswerError:
            return
        raise AssertionError("the deep body was not refused")

    return _best(lambda: [refuse() for _ in range(20)]) / _best(
        lambda: [json.loads(body) for _ in range(20)]
    )


def rows() -> list[tuple[str, float, str]]:
    """(measurement, value, goal) rows for ``benchmarks/run_all.py``."""
    return [
        ("SSE 4 MB line / 4 MB of events", sse_line_ratio(), "<= 2x"),
        ("wire.loads / json.loads (200 KB)", strict_loads_ratio(), "<= 2x"),
        ("refuse 100k-deep / json.loads (200 KB)", deep_refusal_ratio(), "<= 3x"),
    ]


if __name__ == "__main__":
    for name, value, goal in rows():
        print(f"{name:<45} {value:8.3f}  {goal}")
