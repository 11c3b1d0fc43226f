"""The one retry policy of the transport (tenacity), shared by the sync and async drivers.

Retried: a connection that failed, timed out or broke before a complete answer
(:class:`TransportFailure`), and the statuses 429, 502, 503 and 504
(:class:`RetryableStatus`). Never retried: any other status (400/401/403/404/415, 402 and
refused payments are handled by the x402 exchange, 500 is a provider failure) and verification
failures. A retry resends the identical request — the same signed payment with the same
nonce — so one call is settled at most once.

A request that is not *replayable* (a generation-2 request riding an open session: the gateway
bills every try of it, and there is no idempotency key) is retried only when it cannot have
reached the server: a connection that was never made, or a 429/503 refusal. A read timeout, a
reset after sending, or a 502/504 from a proxy end the call.
"""

from __future__ import annotations

import email.utils
import logging
import time
from dataclasses import dataclass
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
UNPROCESSED_STATUSES = frozenset({429, 503})
"""Statuses that say the server did not process the request (safe to resend any request)."""
_log = logging.getLogger("opengradient_shared.retry")


class TransportFailure(Exception):
    """A try that got no complete answer (connection refused/reset/closed, timeout, cut body).

    ``sent`` is False only when the request surely never reached the server (the connection
    could not be made); otherwise it may have been processed."""

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class RetryableStatus(Exception):
    """A try answered with a status worth retrying; ``response`` is that answer."""

    def __init__(self, response: Any, retry_after: float) -> None:
        super().__init__(f"status {getattr(response, 'status', '?')}")
        self.response = response
        self.retry_after = retry_after


def gave_up(url: str, replayable: bool, attempts: int, exc: TransportFailure) -> str:
    """The message of the ``NetworkError`` that ends a send (both drivers)."""
    tries = "try" if attempts == 1 else "tries"
    message = f"could not get an answer from {url} after {attempts} {tries}: {exc}"
    if exc.sent and not replayable:
        return (
            f"{message}; the request rode a paid session and may have reached the server, "
            "which bills every try, so it was not resent (retry_session_requests=True allows "
            "it)"
        )
    return message + "; check the URL and the network"


def retry_after_seconds(value: str | None, now: float | None = None) -> float:
    """Seconds asked by a ``Retry-After`` header (delta seconds or an HTTP date); 0 if none."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff from ``base_delay`` up to ``max_delay`` seconds, at most
    ``max_retries`` retries. A ``Retry-After`` is honoured: the wait is never shorter than it,
    and a server asking for more than ``max_retry_after`` seconds is not retried at all."""

    max_retries: int = 2
    base_delay: float = 0.05
    max_delay: float = 0.5
    max_retry_after: float = 2.0

    def _wait(self, state: RetryCallState) -> float:
        backoff = min(self.max_delay, self.base_delay * float(2 ** (state.attempt_number - 1)))
        return max(backoff, self._retry_after(state))

    def _stop(self, state: RetryCallState) -> bool:
        return (
            state.attempt_number > self.max_retries
            or self._retry_after(state) > self.max_retry_after
        )

    @staticmethod
    def _retry_after(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return float(exc.retry_after) if isinstance(exc, RetryableStatus) else 0.0

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        _log.debug("try %d failed (%s); retrying", state.attempt_number, exc)

    @staticmethod
    def _retryable(replayable: bool) -> Any:
        def check(exc: BaseException) -> bool:
            if isinstance(exc, RetryableStatus):
                status = getattr(exc.response, "status", None)
                return replayable or status in UNPROCESSED_STATUSES
            if isinstance(exc, TransportFailure):
                return replayable or not exc.sent
            return False

        return retry_if_exception(check)

    def _options(self, replayable: bool) -> dict[str, Any]:
        return {
            "retry": self._retryable(replayable),
            "wait": self._wait,
            "stop": self._stop,
            "before_sleep": self._log_retry,
            "reraise": True,
        }

    def retrying(self, replayable: bool = True) -> Retrying:
        """A tenacity controller for one sync send (``for attempt in ...: with attempt:``);
        ``replayable`` False retries only tries that cannot have reached the server."""
        return Retrying(**self._options(replayable))

    def aretrying(self, replayable: bool = True) -> AsyncRetrying:
        """A tenacity controller for one async send (``async for attempt in ...``)."""
        return AsyncRetrying(**self._options(replayable))
