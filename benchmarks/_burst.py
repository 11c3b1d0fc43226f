"""The burst measurement the benchmarks share: ``n`` concurrent calls with latency set at the
gateway, over one call, as the median of several bursts (one burst is a noisy sample: a
scheduler hiccup during its ~0.3 s moves the ratio by 0.3)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sized
from typing import Any

from eth_account import Account
from opengradient_shared import LLM

from _child_gateway import ChildGateway

BURSTS = 3
"""Bursts per figure; each runs on a fresh transport (a pool that already served a burst
holds 64 idle connections, which changes what the next burst costs)."""

One = Callable[[], Awaitable[Any]]
Burst = Callable[[int], Awaitable[Sized]]


def burst_ratio(
    gateway: ChildGateway,
    calls: Callable[[LLM], tuple[One, Burst]],
    *,
    n: int = 64,
    latency: float = 0.2,
) -> float:
    """Median over :data:`BURSTS` fresh transports of (time of ``burst(n)``) / (time of one
    call), with ``latency`` seconds at the gateway. ``calls(transport)`` gives the single
    call and the burst to measure on that transport; one call warms it first (the first
    402 and the TEE key are behind it)."""

    async def sample() -> float:
        transport = LLM(Account.create(), gateway.url)
        one, burst = calls(transport)
        await one()
        gateway.set("latency", latency)
        try:
            started = time.perf_counter()
            await one()
            single = time.perf_counter() - started
            started = time.perf_counter()
            answers = await burst(n)
            assert len(answers) == n
            return (time.perf_counter() - started) / single
        finally:
            gateway.set("latency", 0.0)
            await transport.aclose()

    return statistics.median(asyncio.run(sample()) for _ in range(BURSTS))
