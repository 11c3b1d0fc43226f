"""The local TEE gateway: OpenGradient's LLM protocol over real HTTP on 127.0.0.1, with real
x402 payment checks (v1 ``exact``, or v2 ``upto`` sessions), real TEE signatures and a
deterministic built-in model. ``with LocalGateway() as gw:`` serves it at ``gw.url``."""

from __future__ import annotations

import ssl
import threading
import time
from typing import Any

from .app import Gateway
from .enclave import LocalEnclave
from .ledger import Ledger, Settlement
from .server import GatewayServer
from .signer import generate_key_pem
from .tlscert import self_signed_certificate, server_context

__all__ = ["Gateway", "Ledger", "LocalEnclave", "LocalGateway", "Settlement", "generate_key_pem"]


class LocalGateway(Gateway):
    """A :class:`Gateway` (its knobs are keyword arguments) served on ``host``:``port`` by a
    background thread; a context manager. ``port=0`` picks a free port. ``tls=True`` serves
    HTTPS with a self-signed certificate made like a Nitro enclave's
    (``tls_certificate_der``), which clients pin."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, tls: bool = False, **options: Any
    ) -> None:
        super().__init__(**options)
        self._address = (host, port)
        self._server: GatewayServer | None = None
        self._thread: threading.Thread | None = None
        self.tls_certificate_der: bytes | None = None
        self._tls: ssl.SSLContext | None = None
        if tls:
            self.tls_certificate_der, key_pem = self_signed_certificate()
            self._tls = server_context(self.tls_certificate_der, key_pem)
            self.enclave.tls_certificate_der = self.tls_certificate_der  # attested with the key

    @property
    def tls_certificate_pem(self) -> str | None:
        """The served certificate as PEM (None without TLS)."""
        der = self.tls_certificate_der
        return ssl.DER_cert_to_PEM_cert(der) if der is not None else None

    @property
    def tls_handshakes(self) -> int:
        """TLS handshakes completed so far (0 without TLS)."""
        return self._server.handshakes if self._server is not None else 0

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        if self._server is None:
            raise RuntimeError("the gateway is not running; call start() or use 'with'")
        return self.base_url

    @property
    def signing_key_pem(self) -> str:
        """The public PEM served at ``/signing-key`` (never the private key it was given)."""
        return self.public_key_pem

    def start(self) -> LocalGateway:
        """Bind and serve in a daemon thread."""
        if self._server is None:
            self._server = GatewayServer(self._address, self, self._tls)
            scheme = "https" if self._tls is not None else "http"
            self.base_url = f"{scheme}://{self._address[0]}:{self._server.server_port}"
            serve = self._server.serve_forever
            self._thread = threading.Thread(target=serve, args=(0.05,), daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and settle the open sessions."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self.ledger.end_sessions(time.time(), 0.0, everything=True)

    def __enter__(self) -> LocalGateway:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
