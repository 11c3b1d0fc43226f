"""What the LlamaIndex adapter costs, as ratios measured in one run on a LocalGateway:

- ``OpenGradient.chat`` vs ``LLM.chat`` per call, on the same transport and gateway (goal
  <= 1.3x): the adapter's own overhead (message mapping, callbacks and instrumentation events,
  metadata);
- 64 concurrent ``OpenGradient.achat`` with 200 ms gateway latency vs one ``achat`` (goal
  <= 2x): calls really run concurrently on the async path. Measured for both protocol
  generations, next to the same burst made with the transport alone (``LLM.achat``), so that
  what the adapter adds is visible apart from what the transport costs.

The gateway runs in a child process so that its CPU work (payment recovery, RSA signing) does
not share this process's GIL with the client being measured, with a deep listen backlog.

``rows()`` feeds ``benchmarks/run_all.py``; run alone: ``python benchmarks/llamaindex_adapter.py``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from eth_account import Account
from llama_index.core.llms import ChatMessage
from opengradient_shared import LLM, TEE_LLM

from llamaindex_opengradient import OpenGradient

from _burst import Burst, One, burst_ratio
from _child_gateway import ChildGateway

MODEL = TEE_LLM.GPT_4_1_2025_04_14
PROMPT = "Say something short about benchmarks."
MESSAGES = [{"role": "user", "content": PROMPT}]
ROUNDS = 5
CALLS = 15


def _median_round(run: Callable[[], Any]) -> float:
    """Seconds per call: the median of ``ROUNDS`` rounds of ``CALLS`` calls."""
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(CALLS):
            run()
        times.append((time.perf_counter() - started) / CALLS)
    return statistics.median(times)


def chat_ratio(transport: LLM) -> tuple[float, float]:
    """``OpenGradient.chat`` over ``LLM.chat`` on the same transport, and the difference in
    milliseconds per call."""
    llm = OpenGradient(model=MODEL, client=transport)
    messages = [ChatMessage(role="user", content=PROMPT)]
    llm.chat(messages)  # warm: the first 402 and the TEE key are behind us
    bare = _median_round(lambda: transport.chat(MODEL, MESSAGES))
    adapted = _median_round(lambda: llm.chat(messages))
    return adapted / bare, (adapted - bare) * 1000


def _achat_calls(transport: LLM) -> tuple[One, Burst]:
    """``OpenGradient.achat`` on ``transport``, the burst under ``asyncio.gather``."""
    llm = OpenGradient(model=MODEL, client=transport)
    messages = [ChatMessage(role="user", content=PROMPT)]

    async def burst(n: int) -> list[Any]:
        return list(await asyncio.gather(*(llm.achat(messages) for _ in range(n))))

    return (lambda: llm.achat(messages)), burst


def _transport_calls(transport: LLM) -> tuple[One, Burst]:
    """The baseline: ``LLM.achat`` alone."""

    async def burst(n: int) -> list[Any]:
        return list(await asyncio.gather(*(transport.achat(MODEL, MESSAGES) for _ in range(n))))

    return (lambda: transport.achat(MODEL, MESSAGES)), burst


def rows() -> list[tuple[str, float, str]]:
    """(measurement, value, goal) rows for ``benchmarks/run_all.py``."""
    out: list[tuple[str, float, str]] = []
    for protocol in ("v1", "v2"):
        gateway = ChildGateway(protocol)
        try:
            if protocol == "v1":
                with LLM(Account.create(), gateway.url) as transport:
                    ratio, extra_ms = chat_ratio(transport)
                out.append(("OpenGradient.chat / LLM.chat", ratio, "<= 1.3x"))
                out.append(("OpenGradient.chat minus LLM.chat per call (ms)", extra_ms, "info"))
            for calls, name, goal in (
                (_achat_calls, "64 concurrent achat / one achat, 200 ms", "<= 2x"),
                (_transport_calls, "baseline: 64 LLM.achat / one", "info"),
            ):
                out.append((f"{protocol} {name}", burst_ratio(gateway, calls), goal))
        finally:
            gateway.close()
    return out


if __name__ == "__main__":
    for name, value, goal in rows():
        print(f"{name:<48} {value:8.3f}   goal {goal}")
