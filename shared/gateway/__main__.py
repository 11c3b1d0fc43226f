"""``python -m opengradient_shared.gateway`` / ``opengradient-gateway``: serve in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from . import LocalGateway


def _price(text: str) -> int | dict[str, int]:
    """``1000`` or ``{"gpt-4o": 2000, ...}``."""
    return json.loads(text) if text.lstrip().startswith("{") else int(text)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, start the gateway and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="opengradient-gateway", description="A local OpenGradient TEE LLM gateway."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--protocol", choices=("v1", "v2"), default="v1")
    parser.add_argument("--network", help="og-evm (v1 default), base, eip155:8453 (v2 default)")
    parser.add_argument("--asset", help="ERC-20 address (default: the network's)")
    parser.add_argument("--pay-to", help="payee address")
    parser.add_argument("--price", type=_price, help="v1 base units per call, or JSON per model")
    parser.add_argument("--token-price", type=_price, help="v2 base units per token")
    parser.add_argument("--session-cap", type=int, help="v2 session cap in base units")
    parser.add_argument("--ledger", help="append final settlements to this JSON-lines file")
    parser.add_argument("--key-file", help="RSA private key (PEM) of the TEE signer")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between events")
    args = parser.parse_args(argv)
    options = {
        "network": args.network,
        "asset": args.asset,
        "pay_to": args.pay_to,
        "price": args.price,
        "token_price": args.token_price,
        "session_cap": args.session_cap,
        "ledger_path": args.ledger,
    }
    key = None
    if args.key_file:
        with open(args.key_file, "rb") as handle:
            key = handle.read()
    try:
        gateway = LocalGateway(
            host=args.host,
            port=args.port,
            protocol=args.protocol,
            latency=args.latency,
            chunk_delay=args.chunk_delay,
            signing_key_pem=key,
            **{k: v for k, v in options.items() if v is not None},
        )
        gateway.start()
    except (OSError, ValueError) as exc:
        print(f"opengradient-gateway: {exc}", file=sys.stderr)
        return 2
    print(f"listening on {gateway.url}", flush=True)
    print(
        f"protocol {gateway.protocol} · network {gateway.network} · tee_id {gateway.tee_id}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        gateway.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
