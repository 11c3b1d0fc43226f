"""What the LangChain adapter costs, as ratios measured in one run on a LocalGateway:

- ``ChatOpenGradient.invoke`` vs ``LLM.chat`` per call, on the same transport and gateway
  (goal <= 1.3x): the adapter's own overhead (message mapping, callbacks, metadata);
- ``abatch`` of 64 prompts with 200 ms gateway latency vs one ``ainvoke`` (goal <= 2x): calls
  really run concurrently on the async path. Measured for both protocol generations, next to
  the same burst made with the transport alone (``LLM.achat`` under ``asyncio.gather``), so that
  what the adapter adds is visible apart from what the transport costs;
- the time to import ``langchain_opengradient`` once ``langchain_core``'s chat and LLM base
  classes are imported, in a fresh interpreter (goal <= 100 ms).

The gateway runs in a child process so that its CPU work (payment recovery, RSA signing) does
not share this process's GIL with the client being measured; it listens with a deep backlog,
as a production server would (socketserver's default of 5 turns a burst of 64 connections into
1 s SYN retries).

``rows()`` feeds ``benchmarks/run_all.py``; run alone: ``python benchmarks/langchain_adapter.py``.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from eth_account import Account
from opengradient_shared import LLM, TEE_LLM

from langchain_opengradient import ChatOpenGradient

from _burst import Burst, One, burst_ratio
from _child_gateway import ChildGateway

MODEL = TEE_LLM.GPT_4_1_2025_04_14
PROMPT = "Say something short about benchmarks."
ROUNDS = 5
CALLS = 15


def _best_round(run: Callable[[], Any]) -> float:
    """Seconds per call: the median of ``ROUNDS`` rounds of ``CALLS`` calls."""
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(CALLS):
            run()
        times.append((time.perf_counter() - started) / CALLS)
    return statistics.median(times)


def invoke_ratio(transport: LLM) -> tuple[float, float]:
    """``ChatOpenGradient.invoke`` over ``LLM.chat`` on the same transport, and the difference
    in milliseconds per call."""
    chat = ChatOpenGradient(model=MODEL, client=transport)
    messages = [{"role": "user", "content": PROMPT}]
    chat.invoke(PROMPT)  # warm: the first 402 and the TEE key are behind us
    bare = _best_round(lambda: transport.chat(MODEL, messages))
    adapted = _best_round(lambda: chat.invoke(PROMPT))
    return adapted / bare, (adapted - bare) * 1000


def _abatch_calls(transport: LLM) -> tuple[One, Burst]:
    """``ainvoke`` and ``abatch`` of a ChatOpenGradient on ``transport``."""
    chat = ChatOpenGradient(model=MODEL, client=transport)

    def burst(n: int) -> Awaitable[list[Any]]:
        return chat.abatch([PROMPT] * n, config={"max_concurrency": n})

    return (lambda: chat.ainvoke(PROMPT)), burst


def _gather_calls(transport: LLM) -> tuple[One, Burst]:
    """The baseline: ``LLM.achat`` alone, the burst under ``asyncio.gather``."""
    messages = [{"role": "user", "content": PROMPT}]

    async def burst(n: int) -> list[Any]:
        return list(await asyncio.gather(*(transport.achat(MODEL, messages) for _ in range(n))))

    return (lambda: transport.achat(MODEL, messages)), burst


_IMPORT = """
import time
import langchain_core.language_models.chat_models, langchain_core.language_models.llms
import langchain_core.messages
started = time.perf_counter()
import langchain_opengradient
print(time.perf_counter() - started)
"""


def import_ms(runs: int = 5) -> float:
    """Milliseconds to import the package beyond langchain_core, in fresh interpreters."""
    times = [
        float(subprocess.run([sys.executable, "-c", _IMPORT], capture_output=True, text=True,
                             check=True).stdout)
        for _ in range(runs)
    ]  # fmt: skip
    return statistics.median(times) * 1000


def rows() -> list[tuple[str, float, str]]:
    """(measurement, value, goal) rows for ``benchmarks/run_all.py``."""
    out: list[tuple[str, float, str]] = []
    for protocol in ("v1", "v2"):
        gateway = ChildGateway(protocol)
        try:
            if protocol == "v1":
                with LLM(Account.create(), gateway.url) as transport:
                    ratio, extra_ms = invoke_ratio(transport)
                out.append(("ChatOpenGradient.invoke / LLM.chat", ratio, "<= 1.3x"))
                out.append(("invoke minus LLM.chat per call (ms)", extra_ms, "info"))
            for calls, name, goal in (
                (_abatch_calls, "abatch(64) / one ainvoke, 200 ms", "<= 2x"),
                (_gather_calls, "baseline: gather(64 LLM.achat) / one", "info"),
            ):
                out.append((f"{protocol} {name}", burst_ratio(gateway, calls), goal))
        finally:
            gateway.close()
    out.append(("import beyond langchain_core (ms)", import_ms(), "<= 100 ms"))
    return out


if __name__ == "__main__":
    for name, value, goal in rows():
        print(f"{name:<44} {value:8.3f}   goal {goal}")
