"""A local OpenGradient TEE LLM gateway in the foreground (``python -m
opengradient_shared.gateway`` or ``opengradient-gateway``); stops on Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path

from . import LocalGateway
from .app import PROTOCOLS

_DESCRIPTION = (  # plain text: argparse shows it as is
    "A local OpenGradient TEE LLM gateway on 127.0.0.1: x402 payments checked for real, answers "
    "signed by a TEE key, a small deterministic model. Prints its URL, then serves until Ctrl-C "
    "or SIGTERM. Also: python -m opengradient_shared.gateway."
)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, start the gateway and serve until interrupted."""
    parser = argparse.ArgumentParser("opengradient-gateway", description=_DESCRIPTION)
    add = parser.add_argument
    add("--host", default="127.0.0.1")
    add("--port", type=int, default=8000, help="0 picks a free port")
    add("--protocol", choices=PROTOCOLS, default="v1", help="x402 generation (default v1)")
    add("--network", help="og-evm (v1 default), base, base-sepolia, eip155:8453 (v2 default)")
    add("--asset", help="ERC-20 address (default: the network's; OPG for v2)")
    add("--pay-to", help="the payee address")
    add("--price", type=json.loads, help="v1 base units per call, or JSON {model: units}")
    add("--token-price", type=json.loads, help="v2 base units per token, or JSON {model: units}")
    add("--session-cap", type=int, help="v2 session cap in base units")
    add("--ledger", dest="ledger_path", help="append final settlements to this JSON-lines file")
    add("--key-file", help="PEM file of the TEE's RSA private key (default: a fresh key)")
    add("--latency", type=float, help="seconds before each inference answer")
    add("--chunk-delay", type=float, help="seconds between streamed events")
    add("--tls", action="store_true", default=None, help="serve HTTPS (self-signed, to pin)")
    options = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    try:
        if "key_file" in options:
            options["signing_key_pem"] = Path(options.pop("key_file")).read_bytes()
        gw = LocalGateway(**options).start()
    except (OSError, ValueError) as exc:
        parser.exit(2, f"opengradient-gateway: {exc}\n")
    print(f"listening on {gw.url}", flush=True)
    print(f"protocol {gw.protocol}, network {gw.network}, tee_id {gw.tee_id}", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # terminate: stop cleanly
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()  # until a signal
    gw.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
