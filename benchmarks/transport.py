"""Transport overhead, as ratios against bare HTTP measured in the same run on a LocalGateway.

For each protocol generation (v1: a fresh EIP-3009 payment per call; v2: one Permit2 session):

- ``LLM.chat`` per call vs a bare ``requests.Session.post`` of the same body carrying a payment
  signed before the clock starts (v1) or the open session (v2); the client also signs (v1) and
  verifies the TEE proof on every call;
- 64 concurrent ``achat`` calls with 200 ms gateway latency vs one call;
- streaming time to first chunk vs a bare SSE read of the same request;

and the time to sign one payment, in milliseconds. The gateway runs in a child process, so
that its own CPU work (payment recovery, RSA signing) does not share this process's GIL with
the client being measured.

``rows()`` feeds ``benchmarks/run_all.py``; run alone: ``python benchmarks/transport.py``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import requests
from eth_account import Account
from opengradient_shared import LLM, TEE_LLM
from opengradient_shared.protocol import prepare_chat
from opengradient_shared.x402 import exact, parse_challenge, upto

from _burst import Burst, One, burst_ratio
from _child_gateway import ChildGateway

MODEL = TEE_LLM.GPT_4_1_2025_04_14
MESSAGES = [{"role": "user", "content": "Say something short about benchmarks."}]
ROUNDS = 5
CALLS = 12


def _bare(url: str, account: Any, stream: bool) -> Callable[[], bytes]:
    """A bare post of the same body: a payment signed before the clock starts (v1), or the
    session opened by a first paid request (v2)."""
    prepared = prepare_chat(MODEL, MESSAGES, stream=stream)
    target = url + prepared.path
    session = requests.Session()
    asked = session.post(target, data=prepared.payload, headers=prepared.headers(1))
    challenge = parse_challenge(asked.headers, asked.content)
    assert challenge is not None
    requirement = challenge.accepts[0]
    generation = 2 if requirement.x402_version >= 2 else 1
    scheme = exact if generation == 1 else upto
    extra: dict[str, str] = {}
    if generation == 2:
        signed = scheme.sign_payment(account, requirement, challenge, now=int(time.time()))
        opened = session.post(
            target,
            data=prepared.payload,
            headers={**prepared.headers(2), signed.header_name: signed.header_value},
        )
        extra[upto.SESSION_HEADER] = opened.headers[upto.SESSION_HEADER]
        opened.close()
        session.close()  # a stream's connection is not reused (the gateway closes it)
    payments: list[dict[str, str]] = []

    def post() -> bytes:
        headers = {**prepared.headers(generation), **(payments.pop() if payments else extra)}
        with session.post(target, data=prepared.payload, headers=headers, stream=stream) as r:
            r.raise_for_status()
            if not stream:
                return r.content
            for line in r.iter_lines():
                if line.startswith(b"data:"):
                    session.close()  # the gateway closes after a stream, as the real one does
                    return line  # the first chunk
        raise AssertionError("no data")

    def presign(n: int) -> None:
        if generation == 1:
            now = int(time.time())
            for _ in range(n):
                signed = scheme.sign_payment(account, requirement, challenge, now=now)
                payments.append({signed.header_name: signed.header_value})

    post.presign = presign  # type: ignore[attr-defined]
    return post


def _timed(run: Callable[[], Any], n: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(n):
        run()
    return (time.perf_counter() - started) / n


def per_call_ratio(url: str) -> float:
    """Median per-call time of ``LLM.chat`` over the bare post."""
    account = Account.create()
    bare = _bare(url, account, stream=False)
    ours, theirs = [], []
    with LLM(account, url) as llm:
        llm.chat(MODEL, MESSAGES)  # warm: learns the terms (or opens the session) and the key
        for _ in range(ROUNDS):
            bare.presign(CALLS)  # type: ignore[attr-defined]
            theirs.append(_timed(bare, CALLS))
            ours.append(_timed(lambda: llm.chat(MODEL, MESSAGES), CALLS))
    return statistics.median(ours) / statistics.median(theirs)


def concurrency_ratio(gateway: ChildGateway) -> float:
    """Wall time of 64 concurrent ``achat`` calls over one call, with 200 ms gateway latency;
    every answer's proof verified."""

    def calls(llm: LLM) -> tuple[One, Burst]:
        async def burst(n: int) -> list[Any]:
            outs = await asyncio.gather(*(llm.achat(MODEL, MESSAGES) for _ in range(n)))
            assert all(o.tee_proof and o.tee_proof.verified for o in outs)  # type: ignore[union-attr]
            return outs

        return (lambda: llm.achat(MODEL, MESSAGES)), burst

    return burst_ratio(gateway, calls)


def first_chunk_ratio(gateway: ChildGateway, chunk_delay: float = 0.02) -> float:
    """Median time to the first streamed chunk via ``LLM.chat(stream=True)`` over a bare read."""
    account = Account.create()
    bare = _bare(gateway.url, account, stream=True)
    gateway.set("chunk_delay", chunk_delay)
    ours, theirs = [], []
    try:
        with LLM(account, gateway.url) as llm:
            for _ in llm.chat(MODEL, MESSAGES, stream=True):  # type: ignore[union-attr]
                pass  # warm
            for _ in range(ROUNDS * 3):
                bare.presign(1)  # type: ignore[attr-defined]
                theirs.append(_timed(bare))
                started = time.perf_counter()
                stream = llm.chat(MODEL, MESSAGES, stream=True)
                next(iter(stream))  # type: ignore[arg-type]
                ours.append(time.perf_counter() - started)
                stream.close()  # type: ignore[union-attr]
    finally:
        gateway.set("chunk_delay", 0.0)
    return statistics.median(ours) / statistics.median(theirs)


def signing_ms(url: str) -> float:
    """Milliseconds to sign one payment for the gateway at ``url``."""
    account = Account.create()
    prepared = prepare_chat(MODEL, MESSAGES)
    answer = requests.post(url + prepared.path, data=prepared.payload, headers=prepared.headers(1))
    challenge = parse_challenge(answer.headers, answer.content)
    assert challenge is not None
    requirement = challenge.accepts[0]
    scheme = exact if requirement.x402_version == 1 else upto
    now = int(time.time())
    return 1000 * _timed(lambda: scheme.sign_payment(account, requirement, challenge, now=now), 30)


def rows() -> list[tuple[str, float, str]]:
    """(measurement, value, goal) rows for ``benchmarks/run_all.py``."""
    out: list[tuple[str, float, str]] = []
    for protocol in ("v1", "v2"):
        gateway = ChildGateway(protocol)
        try:
            url = gateway.url
            out.append(
                (f"{protocol} LLM.chat per call / bare post", per_call_ratio(url), "<= 1.15x")
            )
            out.append((f"{protocol} 64 achat (200 ms) / one", concurrency_ratio(gateway), "<= 2x"))
            out.append(
                (f"{protocol} first chunk / bare SSE", first_chunk_ratio(gateway), "<= 1.1x")
            )
            out.append((f"{protocol} sign one payment (ms)", signing_ms(url), "info"))
        finally:
            gateway.close()
    return out


if __name__ == "__main__":
    for name, value, goal in rows():
        print(f"{name:<44} {value:>8.3f}  goal {goal}")
