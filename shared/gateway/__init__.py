"""The local TEE gateway: OpenGradient's LLM protocol over real HTTP on 127.0.0.1, with real
x402 payment checks (v1 ``exact`` or v2 ``upto`` sessions), real TEE signatures and a
deterministic built-in model.

    with LocalGateway() as gw:
        gw.url  # "http://127.0.0.1:<port>"
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from .app import Gateway
from .ledger import Ledger, Settlement
from .server import GatewayServer
from .signer import generate_key_pem

__all__ = ["Gateway", "Ledger", "LocalGateway", "Settlement", "generate_key_pem"]


class LocalGateway(Gateway):
    """A :class:`Gateway` served by a background thread; use it as a context manager.

    Keyword arguments: ``host``, ``port`` (0: a free port), ``protocol`` ("v1" or "v2"),
    ``network``, ``asset``, ``pay_to``, ``price`` (v1, base units per call: an int or
    ``{model: int}``), ``token_price`` (v2, base units per token), ``session_cap`` (v2),
    ``session_idle_timeout`` (v2, seconds), ``facilitator`` (v2), ``balances`` (None:
    unlimited, else ``{address: base units}``), ``latency`` (seconds before each inference
    answer), ``chunk_delay`` (seconds between SSE events), ``signing_key_pem`` (None: a fresh
    RSA-2048 key), ``ledger_path`` (a JSON-lines file of final settlements). The knobs
    ``price``, ``token_price``, ``session_cap``, ``balances``, ``latency`` and ``chunk_delay``
    may be changed while it runs.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        super().__init__(**options)
        self._address = (host, port)
        self._server: GatewayServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("the gateway is not running; call start() or use 'with'")
        return self.base_url

    @property
    def public_key_pem(self) -> str:
        """The TEE public key (PEM) that signs every answer."""
        return self.signer.public_key_pem

    signing_key_pem = public_key_pem
    """The same public PEM, by the name of ``GET /signing-key`` (never the private key)."""

    @property
    def tee_id(self) -> str:
        """``0x`` + Keccak-256 of the public key's DER."""
        return self.signer.tee_id

    def start(self) -> LocalGateway:
        """Bind and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._server = GatewayServer(self._address, self)
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and settle the open sessions."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        self.close_expired_sessions(everything=True)

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the CLI)."""
        self.start()
        assert self._thread is not None
        try:
            self._thread.join()
        finally:
            self.stop()

    def __enter__(self) -> LocalGateway:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url or "not started"
        return f"LocalGateway({self.protocol}, {where}, tee_id={self.tee_id})"
