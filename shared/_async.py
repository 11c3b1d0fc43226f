"""The asyncio driver: runs exchange flows on an ``httpx.AsyncClient`` kept per event loop.

A client (and its connection pool) belongs to the loop that made it; a new loop (each
``asyncio.run``, each pytest-asyncio test) gets its own, and a closed loop's client is dropped
with the loop.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncGenerator
from contextlib import suppress
from typing import Any

import httpx

from .errors import NetworkError, StreamInterruptedError
from .exchange import Delivery, Flow, HttpRequest, HttpResponse, Wait
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

    def __init__(self, retry: RetryPolicy, pins: Pins | None = None) -> None:
        self._retry = retry
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

    async def run(self, flow: Flow, timeout: float) -> Delivery:
        """Drive ``flow`` to its end and return its delivery."""
        response: HttpResponse | None = None
        try:
            step = next(flow)
            while True:
                if isinstance(step, Wait):
                    done = asyncio.shield(asyncio.wrap_future(step.done))
                    with suppress(TimeoutError):
                        await asyncio.wait_for(done, timeout)
                    step = flow.send(None)
                    continue
                response = await self.send(step, timeout)
                step = flow.send(response)
        except StopIteration as stop:
            delivery: Delivery = stop.value
            return delivery
        except BaseException:
            flow.close()
            if response is not None and response.stream is not None:
                await response.stream.aclose()
            raise

    async def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        """One request, retried under the policy; raises NetworkError when no try got through."""
        attempts, reached = 0, False
        try:
            async for attempt in self._retry.aretrying(request.replayable):
                with attempt:
                    attempts += 1
                    try:
                        response = await self._send_once(request, timeout)
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
                body = await answer.aread()
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

    async def stream(
        self, response: Any, assembler: StreamAssembler
    ) -> AsyncGenerator[StreamChunk, None]:
        """The chunks of an open 200 stream, as its bytes arrive."""
        try:
            async for data in response.aiter_bytes():
                for chunk in assembler.feed(data):
                    yield chunk
            for chunk in assembler.end():
                yield chunk
        except httpx.TransportError as exc:
            raise StreamInterruptedError(
                f"the stream broke before it ended ({_describe(exc)}); retry the call"
            ) from None
        finally:
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
