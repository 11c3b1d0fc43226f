"""HTTP/1.1 framing of the gateway: keep-alive, body limits, timeouts, JSON and SSE replies."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..attestation import ATTESTATION_PATH
from .app import INFERENCE_PATHS, Gateway, Reply

MAX_BODY_BYTES = 8 * 2**20  # larger bodies get 413
DRAIN_LIMIT_BYTES = 64 * 2**20
"""An oversized body up to this size is read and dropped first, so the client sees the 413."""


class GatewayServer(ThreadingHTTPServer):
    """A threaded HTTP server (daemon threads) serving one :class:`Gateway`."""

    daemon_threads = True
    request_queue_size = 256  # the listen backlog: a burst of connections waits, is not reset

    def __init__(
        self, address: tuple[str, int], gateway: Gateway, tls: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(address, _Handler)
        self.gateway = gateway
        self.tls = tls  # serve HTTPS with this context (the handshake runs in the handler thread)
        self.handshakes = 0  # TLS handshakes completed
        self.arriving: dict[socket.socket, float] = {}  # connection: when its request is due

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept; with TLS, wrap the socket without handshaking in the accepting thread."""
        sock, address = super().get_request()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def service_actions(self) -> None:
        """Between polls: cut off a client whose request is overdue (one dripping bytes too)."""
        now = time.monotonic()
        for connection in [c for c, due in list(self.arriving.items()) if due < now]:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is not an error worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError | TimeoutError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "OpenGradientLocalGateway/1"
    wbufsize = 2**16  # a reply goes out in one write when complete (SSE: one per event)
    disable_nagle_algorithm = True  # and at once, not after the client's delayed ACK
    server: GatewayServer
    swallow_after = False

    def setup(self) -> None:
        """A client silent for ``socket_timeout`` (mid-request or idle) is disconnected."""
        super().setup()
        self.connection.settimeout(self.server.gateway.socket_timeout)
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()
            self.server.handshakes += 1

    def handle(self) -> None:
        """Serve the connection's requests; after a streamed answer, behave as the real gateway
        (Flask behind werkzeug) does: the answer said ``Connection: close`` (second of two
        Connection headers), and whatever the client still sends on this socket is read and
        dropped, unanswered, until the client closes or ``socket_timeout`` passes."""
        self.swallow_after = False
        super().handle()
        if self.swallow_after:
            with contextlib.suppress(OSError):
                while self.rfile.read1(65536):
                    pass

    def handle_one_request(self) -> None:
        """The next request must arrive whole within ``socket_timeout``."""
        due = time.monotonic() + self.server.gateway.socket_timeout
        self.server.arriving[self.connection] = due
        try:
            super().handle_one_request()
        finally:
            self.server.arriving.pop(self.connection, None)

    def handle_expect_100(self) -> bool:
        """Send the interim ``100 Continue`` now, not with the buffered reply."""
        accepted = super().handle_expect_100()
        self.wfile.flush()
        return accepted

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: tests and demos read stdout."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        gateway = self.server.gateway
        pages = {"/health": gateway.health, "/signing-key": gateway.signing_key}
        path, _, query = self.path.partition("?")
        if path == ATTESTATION_PATH:
            self._send(gateway.attestation(query))
        elif self.path in pages:
            self._send(Reply(200, pages[self.path]()))
        elif self.path in INFERENCE_PATHS:
            self._send(Reply(405, {"error": f"{self.path} takes POST"}, {"Allow": "POST"}))
        else:
            self._send(Reply(404, {"error": f"no such path: {self.path}"}))

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        gateway, inference = self.server.gateway, self.path in INFERENCE_PATHS
        if inference:
            gateway.count_request()
        raw = self._read_body()  # None: refused already
        self.server.arriving.pop(self.connection, None)  # in time: answering may take longer
        if raw is not None and not inference:
            self._send(Reply(404, {"error": f"no such path: {self.path}"}))
        elif raw is not None:
            reply = gateway.handle(self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
            if gateway.latency > 0:
                time.sleep(gateway.latency)
            self._send(reply)

    def _read_body(self) -> bytes | None:
        """The body, or None after answering 411/413 (the connection then closes)."""
        length = self.headers.get("Content-Length", "")
        if length.isdecimal() and int(length) <= MAX_BODY_BYTES:
            raw = self.rfile.read(int(length))
            return raw if len(raw) == int(length) else None  # cut short: the client is gone
        self.close_connection = True
        if not length.isdecimal():
            self._send(Reply(411, {"error": "a Content-Length header is required"}))
            return None
        left = int(length)
        while 0 < left <= DRAIN_LIMIT_BYTES and self.rfile.read(min(left, 2**20)):
            left -= 2**20
        self._send(Reply(413, {"error": f"the request body is over {MAX_BODY_BYTES >> 20} MiB"}))
        return None

    def _send(self, reply: Reply) -> None:
        """JSON with a Content-Length, or SSE frames (``data: <json>``, a blank line; last
        ``data: [DONE]``) each sent at once, chunked on HTTP/1.1 to keep the connection."""
        stream = reply.events is not None
        chunked = stream and self.request_version == "HTTP/1.1"
        text = reply.text is not None
        data = reply.text.encode() if reply.text is not None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        kind = "text/event-stream" if stream else "text/plain" if text else "application/json"
        self.send_header("Content-Type", kind)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif not stream:
            self.send_header("Content-Length", str(len(data)))
        if stream:  # the app's header, then werkzeug's (protocol.md section 9)
            self.send_header("Connection", "keep-alive")
            self.close_connection = self.swallow_after = True
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not stream:
            self.wfile.write(data)
            return
        for i, event in enumerate([*map(json.dumps, reply.events or []), "[DONE]"]):
            if i:  # the previous event goes out now, then the pause
                self.wfile.flush()
                if self.server.gateway.chunk_delay > 0:
                    time.sleep(self.server.gateway.chunk_delay)
            frame = f"data: {event}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame) if chunked else frame)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
