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

from ._deadline import deadline
from .errors import NetworkError, StreamInterruptedError
from .exchange import Delivery, Flow, HttpRequest, HttpResponse, Wait
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

    def __init__(self, retry: RetryPolicy, pins: Pins | None = None) -> None:
        self._retry = retry
        self._session = _Session()
        adapter = PinnedAdapter(
            pins or Pins(), pool_connections=8, pool_maxsize=POOL_SIZE, max_retries=0
        )
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def run(self, flow: Flow, timeout: float) -> Delivery:
        """Drive ``flow`` to its end and return its delivery."""
        response: HttpResponse | None = None
        try:
            step = next(flow)
            while True:
                if isinstance(step, Wait):
                    if step.done.thread != threading.get_ident():  # else: see ``Wait``
                        with suppress(TimeoutError):
                            step.done.result(timeout)
                    step = flow.send(None)
                    continue
                response = self.send(step, timeout)
                step = flow.send(response)
        except StopIteration as stop:
            delivery: Delivery = stop.value
            return delivery
        except BaseException:
            flow.close()
            if response is not None and response.stream is not None:
                response.stream.close()
            raise

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        """One request, retried under the policy; raises NetworkError when no try got through."""
        attempts, reached = 0, False
        try:
            for attempt in self._retry.retrying(request.replayable):
                with attempt:
                    attempts += 1
                    try:
                        response = self._send_once(request, timeout)
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
                    stream=request.stream,
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
                body = answer.content
            except _FAILURES as exc:
                raise TransportFailure(_describe(exc, watch.fired, timeout)) from None
            finally:
                answer.close()
        response = HttpResponse(answer.status_code, answer.headers, body)
        if answer.status_code in RETRY_STATUSES:
            raise RetryableStatus(response, retry_after_seconds(answer.headers.get("Retry-After")))
        return response

    def stream(
        self, response: Any, assembler: StreamAssembler
    ) -> Generator[StreamChunk, None, None]:
        """The chunks of an open 200 stream, as its bytes arrive."""
        try:
            for data in response.iter_content(chunk_size=None):
                yield from assembler.feed(data)
            yield from assembler.end()
        except _FAILURES as exc:
            raise StreamInterruptedError(
                f"the stream broke before it ended ({_describe(exc)}); retry the call"
            ) from None
        finally:
            response.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._session.close()


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
    kind = "timed out" if isinstance(exc, requests.Timeout) else type(exc).__name__
    return f"{kind}: {failure_reason(str(exc))[:200]}" if str(exc) else kind
