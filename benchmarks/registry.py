"""What OpenGradient's network costs a warm call: a URL-less ``LLM`` (registry discovery, TLS
pinned to the registered certificate, Nitro attestation verified) against the same ``LLM`` given
the gateway's URL and certificate, on one TLS LocalGateway entered into a local registry (the
project's contract on an in-process EVM, read over JSON-RPC on 127.0.0.1).

After one warm-up call each, ``CALLS`` calls are counted: HTTP round trips per call (from the
transport's debug log), registry reads, attestation fetches and TLS handshakes. The goal is no
extra round trip and no extra handshake: the listing and the verdict are cached, the pinned
connection is pooled. The time per call is given too, as a ratio against the URL client
measured in the same run (median of ``ROUNDS``).

``rows()`` feeds ``benchmarks/run_all.py``; run alone: ``python benchmarks/registry.py``.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

from eth_account import Account
from opengradient_shared import LLM, TEE_LLM
from opengradient_shared.gateway import LocalGateway

MODEL = TEE_LLM.GPT_4_1_2025_04_14
MESSAGES = [{"role": "user", "content": "Say something short about registries."}]
CALLS = 20
ROUNDS = 5


class _Exchanges(logging.Handler):
    """Counts the transport's ``METHOD url -> status`` debug records."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.urls: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.args, tuple) and len(record.args) == 3:
            self.urls.append(str(record.args[1]))


def _warm(llm: LLM, log: _Exchanges, gateway: LocalGateway, chain: Any) -> dict[str, float]:
    llm.chat(MODEL, MESSAGES)  # warm-up: discovery, attestation, first 402, the TLS handshake
    before = (len(log.urls), gateway.tls_handshakes, chain.rpc_calls)
    for _ in range(CALLS):
        llm.chat(MODEL, MESSAGES)
    urls = log.urls[before[0] :]
    return {
        "round_trips": len(urls) / CALLS,
        "handshakes": gateway.tls_handshakes - before[1],
        "rpc": chain.rpc_calls - before[2],
        "attestations": sum("/enclave/attestation" in url for url in urls),
    }


def _seconds_per_call(first: LLM, second: LLM) -> tuple[float, float]:
    """Median seconds per call of each client, their rounds interleaved."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(ROUNDS):
        for llm, spent in zip((first, second), times, strict=True):
            started = time.perf_counter()
            for _ in range(CALLS):
                llm.chat(MODEL, MESSAGES)
            spent.append((time.perf_counter() - started) / CALLS)
    return statistics.median(times[0]), statistics.median(times[1])


def rows() -> list[tuple[str, float, str]]:
    """The registry rows of ``make bench``."""
    from opengradient_shared.gateway.chain import LocalChain  # the dev extra

    log = _Exchanges()
    transport = logging.getLogger("opengradient_shared.client")
    level = transport.level
    transport.setLevel(logging.DEBUG)
    transport.addHandler(log)
    try:
        with LocalChain() as chain, LocalGateway(tls=True) as gateway:
            tee_id = chain.register(gateway)
            account = Account.create()
            url_llm = LLM(account, gateway.url, tls_certificate=gateway.tls_certificate_der)
            registry_llm = LLM(
                account,
                rpc_url=chain.rpc_url,
                registry_address=chain.registry_address,
                attestation_root_sha256=gateway.enclave.root_sha256,
            )
            handshakes = gateway.tls_handshakes
            by_url = _warm(url_llm, log, gateway, chain)
            by_registry = _warm(registry_llm, log, gateway, chain)
            first = registry_llm.chat(MODEL, MESSAGES).tee_origin
            assert first is not None and first.tee_id == tee_id
            assert first.attestation == "verified"
            per_tee = gateway.tls_handshakes - handshakes - 1  # minus the URL client's own
            url_seconds, registry_seconds = _seconds_per_call(url_llm, registry_llm)
            url_llm.close()
            registry_llm.close()
    finally:
        transport.removeHandler(log)
        transport.setLevel(level)
    return [
        (
            "warm call round trips: registry TEE / URL",
            by_registry["round_trips"] / by_url["round_trips"],
            "<= 1.0x",
        ),
        (
            f"registry reads + attestations in {CALLS} warm calls (count)",
            by_registry["rpc"] + by_registry["attestations"],
            "<= 0",
        ),
        ("TLS handshakes per registry TEE per client (count)", float(per_tee), "<= 1"),
        (
            "warm call time: registry TEE / URL (same TLS)",
            registry_seconds / url_seconds,
            "<= 1.1x",
        ),
    ]


if __name__ == "__main__":
    for name, measured, goal in rows():
        print(f"{name:<60} {measured:>8.3f}  {goal}")
