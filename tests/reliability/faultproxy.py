"""A fault-injecting HTTP/1.1 proxy for reliability tests (loopback only, one thread per
connection).

It sits between a client and a ``LocalGateway``. Every POST the client sends consumes the next
scripted :class:`Fault` (see :meth:`FaultProxy.script`); once the script is used up, requests
pass through unchanged. GET requests (``/signing-key``, ``/health``) always pass through.

The proxy records every POST it read (:attr:`FaultProxy.seen`) and counts those it forwarded to
the gateway (:attr:`FaultProxy.forwarded`), so a test can tell what reached the gateway.

These faults are the one thing the reliability suite mocks: a real network can drop, stall,
garble or alter traffic, and a real gateway never does so on request.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import urlsplit

JsonRewrite = Callable[[dict[str, Any]], dict[str, Any]]
HeaderRewrite = Callable[[dict[str, str]], dict[str, str]]

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "proxy-connection",
    "te",
    "upgrade",
    "accept-encoding",
}
PAYMENT_HEADERS = ("x-payment", "payment-signature", "x-upto-session")


@dataclass(frozen=True)
class Fault:
    """One scripted action for one POST.

    ``kind`` is one of: ``pass``, ``close`` (read the request, close without answering),
    ``reset`` (read the request, send a TCP RST), ``stall`` (hold the answer for ``seconds``,
    then close), ``garbage`` (bytes that are not HTTP), ``status`` (answer ``code`` with a JSON
    error and ``headers``), ``invalid_json`` (200 with a body that is not JSON), ``cut_body``
    (send half of the gateway's body, then close), ``cut_stream`` (pass ``after`` SSE events,
    then close abruptly, or cleanly when ``clean``), ``stall_stream`` (pass ``after`` events,
    then stall), ``rewrite`` (apply ``rewrite`` to the JSON body or to every SSE JSON event, and
    ``rewrite_headers`` to the response headers; ``rewrite`` makes a fresh rewriting function
    per answer, so a Fault value can be scripted again).

    With ``upstream=True`` the request is first forwarded to the gateway (which may settle
    its payment) and the fault then replaces the gateway's answer. ``strip_payment`` removes
    the payment and session headers before forwarding, so the gateway answers its own 402.
    """

    kind: str
    upstream: bool = False
    seconds: float = 5.0
    code: int = 500
    headers: tuple[tuple[str, str], ...] = ()
    after: int = 1
    interval: float = 0.0
    clean: bool = False
    strip_payment: bool = False
    rewrite: Callable[[], JsonRewrite] | None = None
    rewrite_headers: HeaderRewrite | None = None


def passthrough() -> Fault:
    """Forward unchanged (use to let a scripted request through before a fault)."""
    return Fault("pass")


def close(*, upstream: bool = False) -> Fault:
    """Read the request and close the connection without an answer."""
    return Fault("close", upstream=upstream)


def reset(*, upstream: bool = False) -> Fault:
    """Read the request and reset the connection (RST via SO_LINGER 0). With ``upstream`` the
    gateway answers (and settles) first and its answer is dropped."""
    return Fault("reset", upstream=upstream)


def stall(seconds: float = 5.0, *, upstream: bool = False) -> Fault:
    """Hold the connection without answering, then close it."""
    return Fault("stall", upstream=upstream, seconds=seconds)


def garbage(*, upstream: bool = False) -> Fault:
    """Answer bytes that are not HTTP, then close."""
    return Fault("garbage", upstream=upstream)


def status(code: int, *, retry_after: str | None = None, upstream: bool = False) -> Fault:
    """Answer ``code`` with a JSON error body (and ``Retry-After`` when given)."""
    headers = (("Retry-After", retry_after),) if retry_after is not None else ()
    return Fault("status", upstream=upstream, code=code, headers=headers)


def invalid_json(*, upstream: bool = True) -> Fault:
    """Answer 200 ``application/json`` with a body that does not parse."""
    return Fault("invalid_json", upstream=upstream)


def cut_body() -> Fault:
    """Send the gateway's status, headers (full Content-Length) and half its body, then close."""
    return Fault("cut_body", upstream=True)


def cut_stream(after: int = 2, *, clean: bool = False) -> Fault:
    """Pass ``after`` SSE events, then end the stream before ``[DONE]``: abruptly (no chunked
    terminator) or, with ``clean``, with a well-formed end of body."""
    return Fault("cut_stream", upstream=True, after=after, clean=clean)


def stall_stream(after: int = 2, seconds: float = 5.0) -> Fault:
    """Pass ``after`` SSE events, then stall."""
    return Fault("stall_stream", upstream=True, after=after, seconds=seconds)


def drip(interval: float, seconds: float = 8.0) -> Fault:
    """Forward, then send the gateway's whole answer one byte every ``interval`` seconds (a
    server that is never silent for a full read timeout, yet never finishes), for at most
    ``seconds``, then close."""
    return Fault("drip", upstream=True, after=0, seconds=seconds, interval=interval)


def strip_payment() -> Fault:
    """Forward without payment or session headers: the gateway answers its real 402."""
    return Fault("pass", upstream=True, strip_payment=True)


def rewrite(fn: JsonRewrite, *, headers: HeaderRewrite | None = None) -> Fault:
    """Forward, then rewrite the gateway's JSON answer (or each SSE JSON event) with the
    stateless ``fn``."""
    return Fault("rewrite", upstream=True, rewrite=lambda: fn, rewrite_headers=headers)


# ---- rewrites ---------------------------------------------------------------------------


def drop_tee() -> Fault:
    """Remove every ``tee_*`` field of the answer (or of the final stream chunk)."""

    def fn(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("tee_")}

    return rewrite(fn)


def _flip(text: str) -> str:
    return ("b" if text[0] == "a" else "a") + text[1:]


def tamper_content() -> Fault:
    """Change one character of the answer's content (the first content delta of a stream)."""

    def fresh() -> JsonRewrite:  # one state per answer, so the Fault value can be reused
        done = False

        def fn(obj: dict[str, Any]) -> dict[str, Any]:
            nonlocal done
            for choice in [] if done else obj.get("choices") or []:
                for part in (choice.get("message"), choice.get("delta"), choice):
                    key = "text" if part is choice else "content"
                    if isinstance(part, dict) and part.get(key):
                        part[key] = _flip(part[key])
                        done = True
                        return obj
            return obj

        return fn

    return Fault("rewrite", upstream=True, rewrite=fresh)


def swap_signature(signature: str) -> Fault:
    """Replace ``tee_signature`` by ``signature`` (e.g. a valid one of another answer)."""

    def fn(obj: dict[str, Any]) -> dict[str, Any]:
        if "tee_signature" in obj:
            obj["tee_signature"] = signature
        return obj

    return rewrite(fn)


def rewrite_challenge(**changes: Any) -> Fault:
    """Strip the payment so the gateway answers 402, then change fields of every requirement
    in its challenge (v1 JSON body or v2 ``PAYMENT-REQUIRED`` header), e.g. ``payTo=...``,
    ``asset=...``, ``maxTimeoutSeconds=...``."""

    def patch(challenge: dict[str, Any]) -> dict[str, Any]:
        for entry in challenge.get("accepts") or []:
            entry.update(changes)
        return challenge

    def headers(hdrs: dict[str, str]) -> dict[str, str]:
        for name in list(hdrs):
            if name.lower() == "payment-required":
                decoded = json.loads(base64.b64decode(hdrs[name]))
                hdrs[name] = base64.b64encode(json.dumps(patch(decoded)).encode()).decode()
        return hdrs

    return Fault(
        "rewrite", upstream=True, strip_payment=True, rewrite=lambda: patch, rewrite_headers=headers
    )


# ---- the proxy --------------------------------------------------------------------------


@dataclass
class Seen:
    """A POST the proxy read from the client, and what it did with it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    fault: str
    forwarded: bool = False
    status: int | None = None

    def payment_nonce(self) -> str | None:
        """The nonce of the payment this request carried (v1 ``X-PAYMENT`` or v2
        ``PAYMENT-SIGNATURE``), or None."""
        for name in ("x-payment", "payment-signature"):
            value = self.headers.get(name)
            if value:
                try:
                    payload = json.loads(base64.b64decode(value))["payload"]
                    auth = payload.get("authorization") or payload.get("permit2Authorization")
                    return str(auth["nonce"])
                except (ValueError, KeyError, TypeError, AttributeError):
                    return "<undecodable>"
        return None


@dataclass
class _Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool = True
    lowered: dict[str, str] = field(default_factory=dict)


class FaultProxy:
    """A scriptable fault-injecting proxy in front of ``upstream_url`` (see the module doc).

    Use as a context manager; ``url`` is the address to give the client.
    """

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fault proxy only forwards to loopback")
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.seen: list[Seen] = []

    # -- control ---------------------------------------------------------------------------

    def script(self, *faults: Fault) -> None:
        """Queue faults for the next POSTs, in order (replaces what was left)."""
        with self._lock:
            self._faults = deque(faults)

    @property
    def pending(self) -> int:
        """Scripted faults not yet consumed."""
        with self._lock:
            return len(self._faults)

    @property
    def forwarded(self) -> int:
        """POSTs that reached the gateway."""
        with self._lock:
            return sum(1 for s in self.seen if s.forwarded)

    def nonces(self) -> list[str]:
        """The payment nonces of every POST read, in order (repeats included)."""
        with self._lock:
            return [n for s in self.seen if (n := s.payment_nonce())]

    def __enter__(self) -> FaultProxy:
        thread = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # shutdown wakes a thread blocked reading it; close alone does not
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            _quiet_close(conn)
        for thread in list(self._threads):
            thread.join(timeout=1)

    # -- serving ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._lock:
                self._conns.add(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while not self._stop.is_set():
                request = _read_request(reader)
                if request is None:
                    return
                if request.method == "POST":
                    with self._lock:
                        fault = self._faults.popleft() if self._faults else Fault("pass")
                else:
                    fault = Fault("pass")
                if not self._handle(conn, request, fault):
                    return
        except OSError:
            return
        finally:
            reader.close()
            with self._lock:
                self._conns.discard(conn)
            _quiet_close(conn)

    def _record(self, request: _Request, fault: Fault) -> Seen | None:
        if request.method != "POST":
            return None
        seen = Seen(request.method, request.target, request.lowered, request.body, fault.kind)
        with self._lock:
            self.seen.append(seen)
        return seen

    def _handle(self, conn: socket.socket, request: _Request, fault: Fault) -> bool:
        """Act on one request; return whether the connection stays open."""
        seen = self._record(request, fault)
        if fault.kind != "pass" and not fault.upstream:
            return self._inject(conn, fault)
        up_conn, response = self._forward(request, strip=fault.strip_payment)
        if seen is not None:
            seen.forwarded = True
            seen.status = response.status
        try:
            if fault.kind in ("pass", "rewrite"):
                fn = fault.rewrite() if fault.rewrite else None
                self._relay(conn, response, fn, fault.rewrite_headers)
                return request.keep_alive
            if fault.kind == "cut_body":
                body = response.read()
                _send_head(conn, response, length=len(body))
                conn.sendall(body[: len(body) // 2])
                return False
            if fault.kind in ("cut_stream", "stall_stream"):
                _send_head(conn, response, chunked=True)
                for i, event in enumerate(_events(response)):
                    if i >= fault.after:
                        break
                    _send_chunk(conn, event)
                if fault.kind == "stall_stream":
                    self._stall(conn, fault.seconds)
                elif fault.clean:
                    conn.sendall(b"0\r\n\r\n")
                return False
            if fault.kind == "drip":
                body = response.read()
                _send_head(conn, response, length=len(body), sink=(head := bytearray()))
                self._drip(conn, bytes(head) + body, fault.interval, fault.seconds)
                return False
            response.read()  # the gateway finished (and settled); now the fault
            return self._inject(conn, fault)
        finally:
            up_conn.close()

    def _inject(self, conn: socket.socket, fault: Fault) -> bool:
        if fault.kind == "close":
            return False
        if fault.kind == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if fault.kind == "stall":
            self._stall(conn, fault.seconds)
            return False
        if fault.kind == "garbage":
            conn.sendall(b"\x00\xff\x13garbage that is not HTTP\r\n\r\n\x7f")
            return False
        if fault.kind == "invalid_json":
            body = b'{"choices": [ this is not json'
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            conn.sendall(head.encode() + body)
            return True
        if fault.kind == "status":
            body = json.dumps({"error": f"injected fault {fault.code}"}).encode()
            extra = "".join(f"{k}: {v}\r\n" for k, v in fault.headers)
            reason = http.client.responses.get(fault.code, "Error")
            head = (
                f"HTTP/1.1 {fault.code} {reason}\r\nContent-Type: application/json\r\n"
                f"{extra}Content-Length: {len(body)}\r\n\r\n"
            )
            conn.sendall(head.encode() + body)
            return True
        raise ValueError(f"unknown fault kind {fault.kind!r}")

    def _stall(self, conn: socket.socket, seconds: float) -> None:
        """Hold the connection until ``seconds`` pass, the client hangs up or the proxy stops."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            readable, _, _ = select.select([conn], [], [], 0.05)
            if readable and not conn.recv(4096):
                return

    def _drip(self, conn: socket.socket, data: bytes, interval: float, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        for i in range(len(data)):
            if self._stop.wait(interval) or time.monotonic() > deadline:
                return
            conn.sendall(data[i : i + 1])

    def _forward(
        self, request: _Request, *, strip: bool
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        headers = {k: v for k, v in request.headers if k.lower() not in _HOP_BY_HOP}
        if strip:
            headers = {k: v for k, v in headers.items() if k.lower() not in PAYMENT_HEADERS}
        headers["Accept-Encoding"] = "identity"
        headers["Content-Length"] = str(len(request.body))
        up = http.client.HTTPConnection(*self._upstream, timeout=30)
        up.request(request.method, request.target, body=request.body, headers=headers)
        return up, up.getresponse()

    def _relay(
        self,
        conn: socket.socket,
        response: http.client.HTTPResponse,
        fn: JsonRewrite | None,
        headers_fn: HeaderRewrite | None,
    ) -> None:
        header_map = dict(response.getheaders())
        if headers_fn is not None:
            header_map = headers_fn(header_map)
        if _is_sse(response):
            _send_head(conn, response, chunked=True, headers=header_map)
            for event in _events(response):
                _send_chunk(conn, _rewrite_event(event, fn) if fn else event)
            conn.sendall(b"0\r\n\r\n")
            return
        body = response.read()
        if fn is not None:
            try:
                decoded = json.loads(body)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                body = json.dumps(fn(decoded)).encode()
        _send_head(conn, response, length=len(body), headers=header_map)
        conn.sendall(body)


# ---- HTTP plumbing ----------------------------------------------------------------------


def _quiet_close(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.close()


def _read_request(reader: BinaryIO) -> _Request | None:
    line = reader.readline(65536)
    if not line.strip():
        return None
    method, target, _version = line.decode("latin-1").split(" ", 2)
    headers: list[tuple[str, str]] = []
    while True:
        raw = reader.readline(65536)
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    lowered = {k.lower(): v for k, v in headers}
    if "chunked" in lowered.get("transfer-encoding", "").lower():
        raise OSError("the fault proxy does not read chunked request bodies")
    body = reader.read(int(lowered.get("content-length", "0")))
    keep_alive = lowered.get("connection", "").lower() != "close"
    return _Request(method, target, headers, body, keep_alive, lowered)


def _is_sse(response: http.client.HTTPResponse) -> bool:
    return (response.getheader("Content-Type") or "").startswith("text/event-stream")


def _send_head(
    conn: socket.socket,
    response: http.client.HTTPResponse,
    *,
    length: int | None = None,
    chunked: bool = False,
    headers: dict[str, str] | None = None,
    sink: bytearray | None = None,
) -> None:
    """Send (or, with ``sink``, collect) the status line and headers of ``response``."""
    items = headers if headers is not None else dict(response.getheaders())
    lines = [f"HTTP/1.1 {response.status} {response.reason}"]
    lines += [f"{k}: {v}" for k, v in items.items() if k.lower() not in _HOP_BY_HOP]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if sink is not None:
        sink.extend(head)
    else:
        conn.sendall(head)


def _send_chunk(conn: socket.socket, data: bytes) -> None:
    if data:
        conn.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def _events(response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The SSE events of a response, each with its terminating blank line, as they arrive."""
    lines: list[bytes] = []
    while True:
        line = response.readline()
        if not line:
            if lines:
                yield b"".join(lines)
            return
        lines.append(line)
        if line in (b"\n", b"\r\n"):
            yield b"".join(lines)
            lines = []


def _rewrite_event(event: bytes, fn: JsonRewrite) -> bytes:
    out: list[bytes] = []
    for line in event.splitlines(keepends=True):
        if line.startswith(b"data:"):
            payload = line[5:].strip()
            try:
                decoded = json.loads(payload)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                line = b"data: " + json.dumps(fn(decoded)).encode() + b"\n"
        out.append(line)
    return b"".join(out)
