"""The asyncio driver: runs exchange flows on an ``httpx.AsyncClient`` kept per event loop.

A client (and its connection pool) belongs to the loop that made it; a new loop (each
``asyncio.run``, each pytest-asyncio test) gets its own, and a closed loop's client is dropped
with the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncGenerator
from contextlib import suppress
from typing import Any

import httpx

from .errors import NetworkError, ServerError, StreamInterruptedError
from .exchange import Delivery, Flow, HttpRequest, HttpResponse, Wait
from .limits import (
    DEFAULT_MAX_RESPONSE_BYTES,
    BoundedDecoder,
    LimitExceeded,
    UndecodableBody,
    deadline_passed,
    remaining,
    stream_too_large,
    too_large,
)
from .pinning import Pins, origin_of
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
_LIMITS = httpx.Limits(max_connections=128, max_keepalive_connections=64)


class AsyncDriver:
    """Sends requests with the retry policy and reads answers, one pool per event loop."""

    def __init__(
        self,
        retry: RetryPolicy,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        pins: Pins | None = None,
    ) -> None:
        self._retry = retry
        self._max_bytes = max_response_bytes
        self._pins = pins or Pins()
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._clients = weakref.WeakKeyDictionary()
        self._pinned: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, Any], httpx.AsyncClient]
        ] = weakref.WeakKeyDictionary()

    def _client(self, url: str = "") -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        context = self._pins.context_for(url)
        if context is not None:  # a pinned origin: its own client, trusting only the pin
            clients = self._pinned.setdefault(loop, {})
            key = (origin_of(url), context)
            found = clients.get(key)
            if found is None or found.is_closed:
                found = clients[key] = httpx.AsyncClient(
                    limits=_LIMITS, verify=context, trust_env=False
                )
            return found
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(limits=_LIMITS, trust_env=True)
            self._clients[loop] = client
        return client

    async def run(self, flow: Flow, timeout: float, end: float | None = None) -> Delivery:
        """Drive ``flow`` to its end and return its delivery; ``end`` (a ``time.monotonic``
        instant) bounds the whole call when given."""
        response: HttpResponse | None = None
        try:
            step = next(flow)
            while True:
                if isinstance(step, Wait):
                    done = asyncio.shield(asyncio.wrap_future(step.done))
                    with suppress(TimeoutError):
                        await asyncio.wait_for(done, remaining(timeout, end) or 0.0)
                    step = flow.send(None)
                    continue
                response = await self.send(step, timeout, end)
                step = flow.send(response)
        except StopIteration as stop:
            delivery: Delivery = stop.value
            return delivery
        except BaseException:
            flow.close()
            if response is not None and response.stream is not None:
                await response.stream.aclose()
            raise

    async def send(
        self, request: HttpRequest, timeout: float, end: float | None = None
    ) -> HttpResponse:
        """One request, retried under the policy; raises NetworkError when no try got through
        (or the call's deadline ``end`` passed)."""
        attempts, reached = 0, False
        try:
            async for attempt in self._retry.aretrying(request.replayable):
                with attempt:
                    seconds = remaining(timeout, end)
                    if seconds is None:
                        raise NetworkError(deadline_passed(request.url, attempts))
                    attempts += 1
                    try:
                        response = await self._send_once(request, seconds)
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

    async def _send_once(self, request: HttpRequest, timeout: float) -> HttpResponse:
        # ``timeout`` bounds connecting, each read, and (by the deadline) the whole answer;
        # a stream's deadline ends when its headers arrive.
        client = self._client(request.url)
        built = client.build_request(
            request.method,
            request.url,
            headers=dict(request.headers),
            content=request.body,
            timeout=httpx.Timeout(timeout),
        )
        answer: httpx.Response | None = None
        try:
            async with asyncio.timeout(timeout):
                answer = await client.send(built, stream=True)
                _log.debug("%s %s -> %d", request.method, request.url, answer.status_code)
                if request.stream and answer.status_code == 200:
                    return HttpResponse(200, answer.headers, stream=answer)
                body = await self._read(answer, request.url)
        except TimeoutError:
            raise TransportFailure(f"timed out: no complete answer within {timeout:g} s") from None
        except httpx.TransportError as exc:
            never_sent = isinstance(
                exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
            )
            raise TransportFailure(_describe(exc), sent=not never_sent) from None
        finally:
            if answer is not None and not (request.stream and answer.status_code == 200):
                await answer.aclose()
        response = HttpResponse(answer.status_code, answer.headers, body)
        if answer.status_code in RETRY_STATUSES:
            raise RetryableStatus(response, retry_after_seconds(answer.headers.get("Retry-After")))
        return response

    async def _read(self, answer: httpx.Response, url: str) -> bytes:
        """The whole body, or a ServerError once it passes ``max_response_bytes`` (announced
        or read): never more than that much is read."""
        announced = answer.headers.get("Content-Length", "")
        if announced.isdigit() and int(announced) > self._max_bytes:
            raise ServerError(too_large(url, self._max_bytes, int(announced)))
        if announced.isdigit() and not answer.headers.get("Content-Encoding"):
            return await answer.aread()  # framed by its length, which is within the limit
        body = bytearray()
        try:  # raw bytes, inflated here within the limit (httpx would inflate a chunk whole)
            decoder = BoundedDecoder(answer.headers.get("Content-Encoding"), self._max_bytes)
            async for data in answer.aiter_raw():
                body += decoder.feed(data)
        except LimitExceeded:
            raise ServerError(too_large(url, self._max_bytes)) from None
        except UndecodableBody as exc:
            raise ServerError(f"the answer of {url} cannot be read: {exc}") from None
        return bytes(body)

    async def stream(
        self, response: Any, assembler: StreamAssembler, end: float | None = None
    ) -> AsyncGenerator[StreamChunk, None]:
        """The chunks of an open 200 stream, as its bytes arrive; at most
        ``max_response_bytes`` in all, and over by ``end`` (the call's deadline)."""
        pieces = response.aiter_raw()
        try:
            decoder = BoundedDecoder(response.headers.get("Content-Encoding"), self._max_bytes)
            while True:
                try:
                    if end is None:
                        data = await anext(pieces)
                    else:
                        async with asyncio.timeout(max(0.0, end - time.monotonic())):
                            data = await anext(pieces)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise StreamInterruptedError(
                        deadline_passed(str(response.url), stream=True)
                    ) from None
                for chunk in assembler.feed(decoder.feed(data)):
                    yield chunk
            for chunk in assembler.end():
                yield chunk
        except LimitExceeded:
            raise StreamInterruptedError(stream_too_large(self._max_bytes)) from None
        except UndecodableBody as exc:
            raise StreamInterruptedError(f"the stream cannot be read: {exc}") from None
        except httpx.TransportError as exc:
            raise StreamInterruptedError(
                f"the stream broke before it ended ({_describe(exc)}); retry the call"
            ) from None
        finally:
            await pieces.aclose()
            await response.aclose()

    async def aclose(self) -> None:
        """Close the pool of the running event loop."""
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()
        for pinned in self._pinned.pop(loop, {}).values():
            await pinned.aclose()

    def forget(self) -> None:
        """Drop every pool without awaiting (for a sync ``close``; their loops own them)."""
        self._clients.clear()
        self._pinned.clear()


def _describe(exc: BaseException) -> str:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__
    return f"{kind}: {failure_reason(str(exc))[:200]}" if str(exc) else kind
