"""Load: many paid calls from many threads plus a burst of concurrent async calls against one
local gateway, with one shared ``LLM``.

Checks what must hold under load — zero errors, exactly one settlement per call, no payment
nonce used twice — and measures throughput and memory growth (RSS, after a warm-up).
``rows()`` feeds ``benchmarks/run_all.py``; ``run_load()`` is reused by the reliability tests
with smaller numbers. Run alone: ``python benchmarks/load.py [calls threads async_calls]``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from opengradient_shared import LLM, TEE_LLM, OpenGradientError
from opengradient_shared.gateway import LocalGateway

_MESSAGES = [{"role": "user", "content": "Say something short about load tests."}]
_MODEL = TEE_LLM.GPT_4_1_2025_04_14


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured."""

    calls: int
    errors: list[str]
    settled: int
    reused_nonces: int
    seconds: float
    rss_growth_mb: float

    @property
    def calls_per_second(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _nonce(entry: Any) -> str:
    return str(entry["nonce"] if isinstance(entry, Mapping) else entry.nonce)


def _call(llm: LLM, errors: list[str]) -> None:
    try:
        out = llm.chat(_MODEL, _MESSAGES, max_tokens=16)
        if not out.chat_output.get("content") or not (out.tee_proof and out.tee_proof.verified):
            errors.append("an answer without content or without a verified proof")
    except OpenGradientError as exc:
        errors.append(f"{type(exc).__name__}: {exc}")


async def _acall(llm: LLM, errors: list[str]) -> None:
    try:
        out = await llm.achat(_MODEL, _MESSAGES, max_tokens=16)
        if not out.chat_output.get("content") or not (out.tee_proof and out.tee_proof.verified):
            errors.append("an async answer without content or without a verified proof")
    except OpenGradientError as exc:
        errors.append(f"{type(exc).__name__}: {exc}")


async def _burst(llm: LLM, n: int, errors: list[str]) -> None:
    await asyncio.gather(*(_acall(llm, errors) for _ in range(n)))
    await llm.aclose()


def run_load(
    *, calls: int = 2000, threads: int = 32, async_calls: int = 200, gateway: Any = None
) -> LoadResult:
    """Run ``calls`` sync calls over ``threads`` threads, then ``async_calls`` concurrent
    ``achat`` calls, all on one ``LLM``, against ``gateway`` (a fresh ``LocalGateway`` when
    None). Memory growth is the RSS difference across the run, after a warm-up of both paths.
    """
    if gateway is None:
        with LocalGateway() as fresh:
            return run_load(calls=calls, threads=threads, async_calls=async_calls, gateway=fresh)
    errors: list[str] = []
    with LLM(Account.create(), gateway.url, timeout=30.0) as llm:
        _call(llm, errors)  # warm-up: the first 402, the signing key, the pools
        asyncio.run(_burst(llm, 2, errors))
        before = len(gateway.ledger.entries)
        gc.collect()
        rss_before = _rss_bytes()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for _ in pool.map(lambda _i: _call(llm, errors), range(calls)):
                pass
        asyncio.run(_burst(llm, async_calls, errors))
        seconds = time.perf_counter() - started
        gc.collect()
        rss_after = _rss_bytes()
    entries = list(gateway.ledger.entries)
    nonces = [_nonce(e) for e in entries]
    return LoadResult(
        calls=calls + async_calls,
        errors=errors,
        settled=len(entries) - before,
        reused_nonces=len(nonces) - len(set(nonces)),
        seconds=seconds,
        rss_growth_mb=(rss_after - rss_before) / 2**20,
    )


def rows() -> list[tuple[str, float, str]]:
    """The full load run as ``(name, measured, goal)`` rows for ``run_all.py``."""
    r = run_load()
    for error in r.errors[:5]:
        print(f"[load] error: {error}")
    return [
        ("load: calls (2000 sync/32 threads + 200 async)", float(r.calls), ""),
        ("load: errors", float(len(r.errors)), "<= 0"),
        ("load: settlements minus calls", float(r.settled - r.calls), "<= 0"),
        ("load: calls minus settlements", float(r.calls - r.settled), "<= 0"),
        ("load: reused nonces", float(r.reused_nonces), "<= 0"),
        ("load: throughput calls/s", r.calls_per_second, ""),
        ("load: memory growth MB", r.rss_growth_mb, "<= 20 MB"),
    ]


def main(argv: list[str]) -> int:
    numbers = [int(a) for a in argv[1:4]]
    calls, threads, async_calls = numbers + [2000, 32, 200][len(numbers) :]
    r = run_load(calls=calls, threads=threads, async_calls=async_calls)
    print(f"calls            {r.calls} ({calls} sync over {threads} threads + {async_calls} async)")
    print(f"errors           {len(r.errors)}")
    for error in r.errors[:5]:
        print(f"  {error}")
    print(f"settlements      {r.settled}")
    print(f"reused nonces    {r.reused_nonces}")
    print(f"wall time        {r.seconds:.1f} s ({r.calls_per_second:.0f} calls/s)")
    print(f"memory growth    {r.rss_growth_mb:.1f} MB (RSS)")
    ok = not r.errors and r.settled == r.calls and not r.reused_nonces and r.rss_growth_mb < 20
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
