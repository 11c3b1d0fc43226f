"""The blocking driver: runs exchange flows on one pooled ``requests.Session``.

Plain blocking I/O on the calling thread (no event loop, no helper thread), so it also works
inside a running event loop. Streams are read incrementally as bytes arrive.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Generator
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.utils import get_environ_proxies

from ._deadline import deadline, release, watch_socket
from .errors import NetworkError, ServerError, StreamInterruptedError
from .exchange import Delivery, Flow, HttpRequest, HttpResponse, Wait
from .limits import (
    DEFAULT_MAX_RESPONSE_BYTES,
    READ_CHUNK,
    BoundedDecoder,
    LimitExceeded,
    UndecodableBody,
    deadline_passed,
    remaining,
    stream_too_large,
    too_large,
)
from .pinning import PinnedAdapter, Pins
from .protocol import failure_reason, server_of
from .retry import (
    RETRY_STATUSES,
    RetryableStatus,
    RetryPolicy,
    TransportFailure,
    gave_up,
    retry_after_seconds,
)
from .stream import StreamAssembler
from .types import StreamChunk

_log = logging.getLogger("opengradient_shared.client")
POOL_SIZE = 64
_FAILURES = (
    urllib3.exceptions.HTTPError,  # raw reads: ProtocolError, ReadTimeoutError, DecodeError
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class _Session(requests.Session):
    """A ``requests.Session`` that reads proxy and CA-bundle settings from the environment once
    per server instead of on every request, and never reads ``.netrc`` (its credentials would
    replace the ``Authorization`` header the gateway expects)."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        self._environment: dict[str, tuple[dict[str, str], str | bool]] = {}

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        found = self._environment.get(origin)
        if found is None:
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            found = self._environment[origin] = (get_environ_proxies(url), bundle or True)
        env_proxies, env_verify = found
        return super().merge_environment_settings(
            url,
            {**env_proxies, **(proxies or {})},
            stream,
            env_verify if verify in (None, True) else verify,
            cert,
        )


class SyncDriver:
    """Sends requests with the retry policy and reads answers, on one connection pool."""

    def __init__(
        self,
        retry: RetryPolicy,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        pins: Pins | None = None,
    ) -> None:
        self._retry = retry
        self._max_bytes = max_response_bytes
        self._session = _Session()
        adapter = PinnedAdapter(
            pins or Pins(), pool_connections=8, pool_maxsize=POOL_SIZE, max_retries=0
        )
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def run(self, flow: Flow, timeout: float, end: float | None = None) -> Delivery:
        """Drive ``flow`` to its end and return its delivery; ``end`` (a ``time.monotonic``
        instant) bounds the whole call when given."""
        response: HttpResponse | None = None
        try:
            step = next(flow)
            while True:
                if isinstance(step, Wait):
                    if step.done.thread != threading.get_ident():  # else: see ``Wait``
                        with suppress(TimeoutError):
                            step.done.result(remaining(timeout, end) or 0.0)
                    step = flow.send(None)
                    continue
                response = self.send(step, timeout, end)
                step = flow.send(response)
        except StopIteration as stop:
            delivery: Delivery = stop.value
            return delivery
        except BaseException:
            flow.close()
            if response is not None and response.stream is not None:
                response.stream.close()
            raise

    def send(self, request: HttpRequest, timeout: float, end: float | None = None) -> HttpResponse:
        """One request, retried under the policy; raises NetworkError when no try got through
        (or the call's deadline ``end`` passed)."""
        attempts, reached = 0, False
        try:
            for attempt in self._retry.retrying(request.replayable):
                with attempt:
                    seconds = remaining(timeout, end)
                    if seconds is None:
                        raise NetworkError(deadline_passed(request.url, attempts))
                    attempts += 1
                    try:
                        response = self._send_once(request, seconds)
                    except TransportFailure as exc:
                        reached = reached or exc.sent
                        raise
                    response.attempts = attempts
                    return response
        except RetryableStatus as exc:
            last: HttpResponse = exc.response
            last.attempts = attempts
            return last
        except TransportFailure as exc:
            error = NetworkError(gave_up(server_of(request.url), request.replayable, attempts, exc))
            error.request_sent = reached
            raise error from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _send_once(self, request: HttpRequest, timeout: float) -> HttpResponse:
        # ``timeout`` bounds connecting, each read, and (by the deadline) the whole answer;
        # a stream's deadline ends when its headers arrive.
        with deadline(timeout) as watch:
            try:
                answer = self._session.request(
                    request.method,
                    request.url,
                    headers=dict(request.headers),
                    data=request.body,
                    timeout=(timeout, timeout),
                    stream=True,  # read below, at most max_response_bytes
                    allow_redirects=False,
                )
            except _FAILURES as exc:
                raise TransportFailure(
                    _describe(exc, watch.fired, timeout), sent=not _never_connected(exc)
                ) from None
            _log.debug("%s %s -> %d", request.method, request.url, answer.status_code)
            if request.stream and answer.status_code == 200:
                return HttpResponse(200, answer.headers, stream=answer)
            try:
                body = self._read(answer, request.url)
            except _FAILURES as exc:
                raise TransportFailure(_describe(exc, watch.fired, timeout)) from None
            finally:
                answer.close()
        response = HttpResponse(answer.status_code, answer.headers, body)
        if answer.status_code in RETRY_STATUSES:
            raise RetryableStatus(response, retry_after_seconds(answer.headers.get("Retry-After")))
        return response

    def _read(self, answer: requests.Response, url: str) -> bytes:
        """The whole body, or a ServerError once it passes ``max_response_bytes`` (announced
        or read): never more than that much is read."""
        announced = answer.headers.get("Content-Length", "")
        if announced.isdigit() and int(announced) > self._max_bytes:
            raise ServerError(too_large(url, self._max_bytes, int(announced)))
        if announced.isdigit() and not answer.headers.get("Content-Encoding"):
            return answer.content  # framed by its length, which is within the limit
        body = bytearray()
        try:
            decoder = BoundedDecoder(answer.headers.get("Content-Encoding"), self._max_bytes)
            for data in _raw_pieces(answer):
                body += decoder.feed(data)
        except LimitExceeded:
            raise ServerError(too_large(url, self._max_bytes)) from None
        except UndecodableBody as exc:
            raise ServerError(f"the answer of {url} cannot be read: {exc}") from None
        return bytes(body)

    def stream(
        self, response: Any, assembler: StreamAssembler, end: float | None = None
    ) -> Generator[StreamChunk, None, None]:
        """The chunks of an open 200 stream, as its bytes arrive; at most
        ``max_response_bytes`` in all, and over by ``end`` (the call's deadline)."""
        sock = getattr(getattr(response.raw, "connection", None), "sock", None)
        watch = watch_socket(end, sock) if end is not None and sock is not None else None
        try:
            decoder = BoundedDecoder(response.headers.get("Content-Encoding"), self._max_bytes)
            for data in _raw_pieces(response):
                yield from assembler.feed(decoder.feed(data))
            if watch is not None and watch.fired:
                raise StreamInterruptedError(deadline_passed(response.url, stream=True))
            yield from assembler.end()
        except LimitExceeded:
            raise StreamInterruptedError(stream_too_large(self._max_bytes)) from None
        except UndecodableBody as exc:
            raise StreamInterruptedError(f"the stream cannot be read: {exc}") from None
        except _FAILURES as exc:
            if watch is not None and watch.fired:
                raise StreamInterruptedError(deadline_passed(response.url, stream=True)) from None
            raise StreamInterruptedError(
                f"the stream broke before it ended ({_describe(exc)}); retry the call"
            ) from None
        finally:
            if watch is not None:
                release(watch)
            response.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._session.close()


def _raw_pieces(answer: requests.Response) -> Generator[bytes, None, None]:
    """The body's raw (undecoded) bytes as they arrive, whatever its framing (length, chunked
    or until close): each read returns what is there, never waiting to fill a buffer."""
    while True:
        data = answer.raw.read1(READ_CHUNK, decode_content=False)
        if not data:
            return
        yield data


def _never_connected(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure to connect (the request surely never left)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, urllib3.exceptions.ConnectTimeoutError)  # NewConnectionError too


def _describe(exc: BaseException, cut: bool = False, timeout: float = 0.0) -> str:
    if cut:
        return f"timed out: no complete answer within {timeout:g} s"
    timed_out = isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError)
    kind = "timed out" if timed_out else type(exc).__name__
    return f"{kind}: {failure_reason(str(exc))[:200]}" if str(exc) else kind
