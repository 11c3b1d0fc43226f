"""HTTP/1.1 framing of the gateway: keep-alive, body limits, timeouts, JSON and SSE replies."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .app import INFERENCE_PATHS, Gateway, Reply

MAX_BODY_BYTES = 8 * 2**20
"""Larger bodies get 413."""
DRAIN_LIMIT_BYTES = 64 * 2**20
"""An oversized body up to this size is read and dropped so the client sees the 413."""
SOCKET_TIMEOUT_SECONDS = 15.0
"""A client silent this long (mid-request or idle on keep-alive) is disconnected."""


class GatewayServer(ThreadingHTTPServer):
    """A threaded HTTP server (daemon threads) serving one :class:`Gateway`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], gateway: Gateway) -> None:
        super().__init__(address, _Handler)
        self.gateway = gateway


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_SECONDS
    server: GatewayServer
    server_version = "OpenGradientLocalGateway/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: tests and demos read stdout."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        gateway = self.server.gateway
        if self.path == "/health":
            self._send(Reply(200, gateway.health()))
        elif self.path == "/signing-key":
            self._send(Reply(200, gateway.signer.signing_key_info()))
        elif self.path in INFERENCE_PATHS:
            self._send(Reply(405, {"error": f"{self.path} takes POST"}, {"Allow": "POST"}))
        else:
            self._send(Reply(404, {"error": f"no such path: {self.path}"}))

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        gateway = self.server.gateway
        if self.path not in INFERENCE_PATHS:
            self._drop_body()
            self._send(Reply(404, {"error": f"no such path: {self.path}"}))
            return
        gateway.count_request()
        raw = self._read_body()
        if raw is None:
            return
        reply = gateway.handle(self.path, dict(self.headers.items()), raw)
        if gateway.latency > 0:
            time.sleep(gateway.latency)
        self._send(reply)

    def _read_body(self) -> bytes | None:
        """The body, or None after answering 411/413 (the connection then closes)."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            self._send(Reply(411, {"error": "a Content-Length header is required"}))
            return None
        if length < 0 or length > MAX_BODY_BYTES:
            if 0 < length <= DRAIN_LIMIT_BYTES:
                self._discard(length)
            self.close_connection = True
            limit = MAX_BODY_BYTES // 2**20
            self._send(Reply(413, {"error": f"request body over {limit} MiB ({length} bytes)"}))
            return None
        return self.rfile.read(length)

    def _drop_body(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = 0
        if 0 < length <= MAX_BODY_BYTES:
            self.rfile.read(length)
        elif length:
            self.close_connection = True

    def _discard(self, length: int) -> None:
        while length > 0:
            piece = self.rfile.read(min(length, 2**20))
            if not piece:
                return
            length -= len(piece)

    def _send(self, reply: Reply) -> None:
        if reply.events is not None:
            self._send_events(reply)
            return
        data = json.dumps(reply.body).encode("utf-8")
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _send_events(self, reply: Reply) -> None:
        chunked = self.request_version == "HTTP/1.1"
        self.send_response(reply.status)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        frames = [f"data: {json.dumps(event)}\n\n" for event in reply.events or []]
        frames.append("data: [DONE]\n\n")
        try:
            for i, frame in enumerate(frames):
                if i and self.server.gateway.chunk_delay > 0:
                    time.sleep(self.server.gateway.chunk_delay)
                data = frame.encode("utf-8")
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                self.wfile.flush()
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
