"""A scriptable hostile HTTP/1.1 server on 127.0.0.1: the "attacker" of the hardening tests.

It plays an OpenGradient gateway (or a relay in front of one) that lies. Each request is
answered from a script, it signs its own TEE proofs with its own RSA key (and serves that key
at ``GET /signing-key``, so a client that fetches keys trusts it), and it writes its own x402
challenges. Nothing is mocked on the client side: the client under test talks real HTTP to it.

Answering, in this order:

1. a route set with :meth:`HostileServer.route` for the request's path (any method, every
   time; ``/signing-key`` and ``/health`` have one from the start);
2. else the next step of the POST script (:meth:`HostileServer.script`, first in first out);
3. else :attr:`HostileServer.default` (a 500 saying the script ran out).

A step is a :class:`Reply` or a :data:`Handler`, ``(method, path, headers, body) -> Reply``
(headers with lower-case names). A :class:`Reply` is sent whole, or, with ``pieces``, written
piece by piece (``delay`` seconds before each; an endless generator is fine: writing stops when
the client hangs up or the server stops).

Everything received is recorded in :attr:`HostileServer.received`; exceptions raised by a
handler (a bug in the test's script) are kept in :attr:`HostileServer.errors` and answered 500.

Typical use (``hostile`` fixture of ``tests/conftest.py``)::

    hostile.script(hostile.challenge_v1(), hostile.signed_chat("hi", mutate=add_choice))
    llm = LLM(account, hostile.url)
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opengradient_shared import tee
from opengradient_shared.gateway.signer import TeeSigner, generate_key_pem
from opengradient_shared.x402.challenge import PAYMENT_REQUIRED_HEADER
from opengradient_shared.x402.encoding import encode_header
from opengradient_shared.x402.networks import NETWORKS

Json = dict[str, Any]
PAY_TO = "0x7e57CA7E0000000000000000000000000000A402"
FACILITATOR = "0xfAC11170000000000000000000000000000F4c11"
PAYMENT_HEADERS = ("x-payment", "payment-signature")
SESSION_HEADER = "X-Upto-Session"


@dataclass
class Reply:
    """One scripted answer.

    ``body``: bytes, str, or any JSON value (sent as ``application/json``). ``pieces``: bytes
    written one after the other instead of ``body`` (an iterable, possibly endless), ``delay``
    seconds before each. ``framing`` of a piece-wise body: ``"chunked"`` (default),
    ``"close"`` (no length, the connection closes at the end) or ``"length"`` (a
    ``Content-Length`` of ``length`` bytes, which may lie). ``close``: close the connection
    after the answer. ``stall``: seconds to wait before sending anything.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = b""
    pieces: Iterable[bytes] | None = None
    delay: float = 0.0
    framing: str = "chunked"
    length: int | None = None
    close: bool = False
    stall: float = 0.0

    @classmethod
    def json(cls, data: Any, status: int = 200, **options: Any) -> Reply:
        """A JSON answer."""
        return cls(status=status, body=data, **options)

    @classmethod
    def sse(cls, events: Iterable[Any], *, done: bool = True, **options: Any) -> Reply:
        """A ``text/event-stream`` answer written one event per piece (see :func:`sse`)."""
        headers = {"Content-Type": "text/event-stream", **options.pop("headers", {})}
        pieces = [sse_event(event) for event in events]
        if done:
            pieces.append(sse_event("[DONE]"))
        return cls(headers=headers, pieces=pieces, **options)


@dataclass(frozen=True)
class Received:
    """One request the server read (header names lower-cased)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def paid(self) -> bool:
        """Whether it carried a payment header (``X-PAYMENT`` or ``PAYMENT-SIGNATURE``)."""
        return any(name in self.headers for name in PAYMENT_HEADERS)


Handler = Callable[[str, str, Mapping[str, str], bytes], Reply]
Step = Reply | Handler


def sse_event(event: Any) -> bytes:
    """One ``data:`` event: a JSON value, a raw string (``"[DONE]"``) or raw bytes as is."""
    if isinstance(event, bytes):
        return event
    text = event if isinstance(event, str) else json.dumps(event)
    return f"data: {text}\n\n".encode()


def sse(*events: Any, done: bool = True) -> bytes:
    """A whole SSE body of ``events`` (and ``data: [DONE]`` unless ``done`` is False)."""
    return b"".join(sse_event(e) for e in (*events, *(["[DONE]"] if done else [])))


def deep_json(depth: int, *, key: str | None = None) -> bytes:
    """``depth`` nested arrays (or objects under ``key``): the stack-overflow payload."""
    if key is None:
        return b"[" * depth + b"]" * depth
    opening = ('{"' + key + '":').encode()
    return opening * depth + b"1" + b"}" * depth


class HostileServer:
    """The server (see the module docstring). Use as a context manager, or start()/stop()."""

    def __init__(self, signing_key_pem: bytes | str | None = None) -> None:
        self.signer = TeeSigner(signing_key_pem or generate_key_pem())
        self._private = self.signer._key  # the "TEE" key this attacker controls
        self.received: list[Received] = []
        self.errors: list[BaseException] = []
        self.default: Step = Reply.json({"error": "hostile server: the script ran out"}, 500)
        self._script: deque[Step] = deque()
        self._routes: dict[str, Step] = {
            "/signing-key": lambda *_: Reply.json(self.signer.signing_key_info()),
            "/health": Reply.json({"status": "ok"}),
        }
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> HostileServer:
        """Listen on 127.0.0.1 (a free port) in a background thread."""
        handler = type("_BoundHandler", (_Handler,), {"hostile": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (endless streams stop writing)."""
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        assert self._httpd is not None, "start() the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- scripting -------------------------------------------------------------------------

    def script(self, *steps: Step) -> HostileServer:
        """Append answers for the next POST requests, in order."""
        with self._lock:
            self._script.extend(steps)
        return self

    def route(self, path: str, step: Step) -> HostileServer:
        """Answer every request for ``path`` (any method) with ``step``."""
        with self._lock:
            self._routes[path] = step
        return self

    @property
    def posts(self) -> list[Received]:
        """The POST requests received."""
        return [r for r in self.received if r.method == "POST"]

    @property
    def payments(self) -> list[Received]:
        """The requests that carried a payment header."""
        return [r for r in self.received if r.paid]

    def _next(self, method: str, path: str) -> Step:
        with self._lock:
            if path in self._routes:
                return self._routes[path]
            if method == "POST" and self._script:
                return self._script.popleft()
            return self.default

    # -- TEE proofs --------------------------------------------------------------------------

    @property
    def public_key_pem(self) -> str:
        """The PEM of this server's TEE key (what ``/signing-key`` serves)."""
        return str(self.signer.public_key_pem)

    @property
    def tee_id(self) -> str:
        """``0x`` + Keccak of the key."""
        return str(self.signer.tee_id)

    def proof(
        self,
        request_body: bytes | Mapping[str, Any],
        content: str | None = "",
        tool_calls: list[Json] | None = None,
        *,
        timestamp: int | None = None,
        completion: bool = False,
    ) -> Json:
        """The ``tee_*`` fields signing ``content`` (or ``tool_calls``) for this request."""
        body = json.loads(request_body) if isinstance(request_body, bytes) else request_body
        request_hex = tee.request_hash(body, completion=completion)
        output_hex = tee.output_hash(content, tool_calls)
        stamp = int(time.time()) if timestamp is None else timestamp
        return {
            "tee_signature": tee.sign(self._private, request_hex, output_hex, stamp),
            "tee_timestamp": stamp,
            "tee_request_hash": request_hex,
            "tee_output_hash": output_hex,
            "tee_id": self.tee_id,
        }

    def signed_chat(
        self,
        content: str = "",
        tool_calls: list[Json] | None = None,
        *,
        finish_reason: str | None = None,
        signed: tuple[str, list[Json] | None] | None = None,
        timestamp: int | None = None,
        usage: Any = None,
        mutate: Callable[[Json], Any] | None = None,
        mutate_events: Callable[[list[Any]], list[Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Handler:
        """A handler answering any chat request with ``content``/``tool_calls``, signed.

        A streaming request (``"stream": true``) gets SSE: the text word by word, each tool
        call in two pieces (id, type and name first), then a final event with
        ``finish_reason``, usage and the proof. ``signed`` = (content, tool_calls) signs
        something other than what is delivered. ``mutate`` rewrites the JSON answer (return
        bytes to send them raw); ``mutate_events`` the list of SSE events (strings/bytes are
        sent raw).
        """
        finish = finish_reason or ("tool_calls" if tool_calls else "stop")
        counts = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
        used = counts if usage is None else usage

        def handle(method: str, path: str, head: Mapping[str, str], raw: bytes) -> Reply:
            request = json.loads(raw)
            hashed = signed if signed is not None else (content, tool_calls)
            proof = self.proof(request, *hashed, timestamp=timestamp)
            model = request.get("model", "gpt-4.1-2025-04-14")
            extra = dict(headers or {})
            if request.get("stream"):
                events = chat_events(model, content, tool_calls)
                final = {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
                events.append({**final, "model": model, "usage": used, **proof})
                if mutate_events is not None:
                    events = mutate_events(copy.deepcopy(events))
                return Reply.sse(events, headers=extra)
            message: Json = {"role": "assistant", "content": content}
            if tool_calls:
                message["tool_calls"] = tool_calls
            data: Any = {
                "id": "chatcmpl-hostile",
                "object": "chat.completion",
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": used,
                **proof,
            }
            if mutate is not None:
                data = mutate(copy.deepcopy(data))
            return Reply(body=data, headers=extra)

        return handle

    # -- x402 ---------------------------------------------------------------------------------

    @staticmethod
    def v1_entry(price: int = 1000, network: str = "og-evm", **fields: Any) -> Json:
        """One x402 v1 ``exact`` ``accepts`` entry (``fields`` override or garble it)."""
        known = NETWORKS.get(network)
        entry: Json = {
            "scheme": "exact",
            "network": network,
            "maxAmountRequired": str(price),
            "resource": "http://127.0.0.1/v1/chat/completions",
            "description": "Chat completion",
            "mimeType": "application/json",
            "payTo": PAY_TO,
            "maxTimeoutSeconds": 300,
            "asset": known.default_asset if known else "0x" + "11" * 20,
            "extra": {"name": known.asset_name, "version": known.asset_version} if known else {},
        }
        entry.update(fields)
        return entry

    @staticmethod
    def v2_entry(amount: int = 100_000, network: str = "eip155:8453", **fields: Any) -> Json:
        """One x402 v2 ``upto`` ``accepts`` entry (a session cap of ``amount``)."""
        asset = NETWORKS["base"].default_asset
        extra = {
            "name": "OpenGradient",
            "version": "1",
            "assetTransferMethod": "permit2",
            "facilitatorAddress": FACILITATOR,
        }
        entry: Json = {
            "scheme": "upto",
            "network": network,
            "asset": asset,
            "amount": str(amount),
            "payTo": PAY_TO,
            "maxTimeoutSeconds": 300,
            "extra": extra,
        }
        entry.update(fields)
        return entry

    def challenge_v1(self, *entries: Json, error: str = "X-PAYMENT header is required") -> Reply:
        """A generation-1 402: ``{"x402Version": 1, "accepts": [...]}`` in the body."""
        accepts = list(entries) or [self.v1_entry()]
        return Reply.json({"x402Version": 1, "error": error, "accepts": accepts}, 402)

    def challenge_v2(self, *entries: Json, error: str = "Payment required", **top: Any) -> Reply:
        """A generation-2 402: the challenge base64-JSON in ``PAYMENT-REQUIRED``."""
        accepts = list(entries) or [self.v2_entry()]
        resource = {"url": self.url + "/v1/chat/completions", "description": "Chat completion"}
        required = {"x402Version": 2, "error": error, "resource": resource, "accepts": accepts}
        required.update(top)
        header = {PAYMENT_REQUIRED_HEADER: encode_header(required)}
        return Reply.json({"error": error}, 402, headers=header)

    def paid(self, answer: Step, challenge: Reply | None = None, *, session: str = "") -> Handler:
        """A handler: ``challenge`` (default a v1 one) unless the request carries a payment
        header or a session header, else ``answer`` (with ``X-Upto-Session: session`` when
        given, as a generation-2 server names the session it opened)."""
        asked = challenge or self.challenge_v1()

        def handle(method: str, path: str, head: Mapping[str, str], raw: bytes) -> Reply:
            if not any(name in head for name in (*PAYMENT_HEADERS, SESSION_HEADER.lower())):
                return asked
            reply = answer(method, path, head, raw) if callable(answer) else answer
            if session:
                reply.headers = {**reply.headers, SESSION_HEADER: session}
            return reply

        return handle


def chat_events(model: str, content: str, tool_calls: list[Json] | None = None) -> list[Json]:
    """Honest-looking ``chat.completion.chunk`` events for ``content`` and ``tool_calls``."""

    def chunk(delta: Json) -> Json:
        choice = {"index": 0, "delta": {"role": "assistant", **delta}, "finish_reason": None}
        return {"object": "chat.completion.chunk", "model": model, "choices": [choice]}

    words = [w + " " for w in content.split(" ")]
    if words:
        words[-1] = words[-1][:-1]
    events = [chunk({"content": w}) for w in words if w]
    for index, call in enumerate(tool_calls or []):
        function = call["function"]
        head = {"index": index, "id": call["id"], "type": "function"}
        events.append(chunk({"tool_calls": [{**head, "function": {"name": function["name"]}}]}))
        piece = {"index": index, "function": {"arguments": function["arguments"]}}
        events.append(chunk({"tool_calls": [piece]}))
    return events


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hostile: HostileServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._serve()

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self._serve()

    def _serve(self) -> None:
        server = self.hostile
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        with server._lock:
            server.received.append(Received(self.command, self.path, headers, body))
        step = server._next(self.command, self.path)
        try:
            reply = step(self.command, self.path, headers, body) if callable(step) else step
        except Exception as exc:  # a bug in the test's script: answer 500 and keep it
            server.errors.append(exc)
            reply = Reply.json({"error": f"hostile script failed: {exc!r}"}, 500)
        try:
            self._send(reply)
        except OSError:  # the client hung up (or timed out) mid-answer
            self.close_connection = True

    def _send(self, reply: Reply) -> None:
        stop = self.hostile.stopping
        if reply.stall and stop.wait(reply.stall):
            self.close_connection = True
            return
        body = reply.body
        content_type = "application/json"
        if isinstance(body, str):
            body, content_type = body.encode(), "text/plain"
        elif not isinstance(body, bytes | bytearray):
            body = json.dumps(body).encode()
        self.send_response_only(reply.status)
        headers = {"Content-Type": content_type, **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        if reply.pieces is None:
            self.send_header("Content-Length", str(len(body)))
        elif reply.framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        elif reply.framing == "length":
            self.send_header("Content-Length", str(reply.length or 0))
        if reply.close or (reply.pieces is not None and reply.framing == "close"):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if reply.pieces is None:
            self.wfile.write(body)
            self.wfile.flush()
            return
        chunked = reply.framing == "chunked"
        for piece in reply.pieces:
            if stop.is_set() or (reply.delay and stop.wait(reply.delay)):
                self.close_connection = True
                return
            if piece:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                self.wfile.flush()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
