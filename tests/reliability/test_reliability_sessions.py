"""Generation 2 bills every try of a request riding an open session (OpenGradient's gateway
has no idempotency key), so such a request is resent only when it cannot have reached the
server: a connection never made, or a 429/503 refusal. A reset after sending, a read timeout or
a 502/504 end the call with one try, unless the caller opts in with
``retry_session_requests=True``. Requests carrying a signed payment keep their retries (the
server settles a nonce once)."""

from __future__ import annotations

import socket
from typing import Any

import faultproxy as fp
import httpx
import pytest
import requests
from faultproxy import FaultProxy
from harness import MESSAGES, MODEL, bound, within
from opengradient_shared import LLM, NetworkError, ServerError, TextGenerationOutput
from opengradient_shared._sync import _never_connected
from opengradient_shared.retry import RetryPolicy, TransportFailure

MAY_HAVE_REACHED = [
    pytest.param(fp.reset(), NetworkError, id="reset-after-sending"),
    pytest.param(fp.close(), NetworkError, id="closed-after-sending"),
    pytest.param(fp.stall(), NetworkError, id="read-timeout"),
    pytest.param(fp.status(502), ServerError, id="502"),
    pytest.param(fp.status(504), ServerError, id="504"),
]


def _session_tries(proxy: FaultProxy, since: int) -> list[fp.Seen]:
    return [s for s in proxy.seen[since:] if "x-upto-session" in s.headers]


def _warm(llm: LLM) -> None:
    out = llm.chat(MODEL, MESSAGES)
    assert isinstance(out, TextGenerationOutput) and out.payment is not None
    assert out.payment.session_id


@pytest.mark.parametrize(("fault", "error"), MAY_HAVE_REACHED)
def test_session_request_that_may_have_reached_the_server_is_not_resent(
    gateway_v2: Any, proxy_v2: FaultProxy, make_llm: Any, spy: Any, fault: Any, error: Any
) -> None:
    llm = make_llm(proxy_v2.url)
    _warm(llm)
    seen = len(proxy_v2.seen)
    proxy_v2.script(fault, fault, fault)
    with within(bound()), pytest.raises(error) as caught:
        llm.chat(MODEL, MESSAGES)
    assert len(proxy_v2.seen) - seen == 1  # one try, never resent
    assert len(_session_tries(proxy_v2, seen)) == 1
    assert spy.calls == 1  # no new permit either
    if error is NetworkError:
        assert "retry_session_requests" in str(caught.value)


@pytest.mark.parametrize(("fault", "error"), MAY_HAVE_REACHED[:3])
async def test_async_session_request_that_may_have_reached_the_server_is_not_resent(
    gateway_v2: Any, proxy_v2: FaultProxy, make_llm: Any, spy: Any, fault: Any, error: Any
) -> None:
    llm = make_llm(proxy_v2.url)
    out = await llm.achat(MODEL, MESSAGES)
    assert isinstance(out, TextGenerationOutput)
    seen = len(proxy_v2.seen)
    proxy_v2.script(fault, fault, fault)
    with within(bound()), pytest.raises(error, match="retry_session_requests"):
        await llm.achat(MODEL, MESSAGES)
    assert len(proxy_v2.seen) - seen == 1
    assert spy.calls == 1
    await llm.aclose()


@pytest.mark.parametrize("code", [429, 503])
def test_session_request_refused_unprocessed_is_resent(
    gateway_v2: Any, proxy_v2: FaultProxy, make_llm: Any, spy: Any, code: int
) -> None:
    llm = make_llm(proxy_v2.url)
    _warm(llm)
    seen = len(proxy_v2.seen)
    proxy_v2.script(fp.status(code, retry_after="0"))
    out = llm.chat(MODEL, MESSAGES)
    assert isinstance(out, TextGenerationOutput)
    assert len(_session_tries(proxy_v2, seen)) == 2
    assert spy.calls == 1


def test_opt_in_resends_a_session_request_after_a_reset(
    gateway_v2: Any, proxy_v2: FaultProxy, make_llm: Any, spy: Any
) -> None:
    """Control of the first test: the same fault, opted in, is resent on the same session."""
    llm = make_llm(proxy_v2.url, retry_session_requests=True)
    _warm(llm)
    seen = len(proxy_v2.seen)
    proxy_v2.script(fp.reset())
    out = llm.chat(MODEL, MESSAGES)
    assert isinstance(out, TextGenerationOutput)
    tries = _session_tries(proxy_v2, seen)
    assert len(tries) == 2 and len({t.headers["x-upto-session"] for t in tries}) == 1
    assert spy.calls == 1


def test_paid_requests_keep_their_retries(
    gateway_v2: Any, proxy_v2: FaultProxy, make_llm: Any, spy: Any
) -> None:
    """A request carrying a permit is resent after a reset (same permit, settled once)."""
    llm = make_llm(proxy_v2.url)
    proxy_v2.script(fp.passthrough(), fp.reset())  # the unpaid ask, then the paid try
    out = llm.chat(MODEL, MESSAGES)
    assert isinstance(out, TextGenerationOutput)
    nonces = [s.payment_nonce() for s in proxy_v2.seen if s.payment_nonce()]
    assert len(nonces) == 2 and len(set(nonces)) == 1
    assert spy.calls == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_connection_never_made_is_known_as_never_sent() -> None:
    """What the drivers rely on to retry a session request safely: a refused connection is
    told apart from a failure after sending (real sockets, both libraries)."""
    url = f"http://127.0.0.1:{_closed_port()}/"
    with pytest.raises(requests.ConnectionError) as caught:
        requests.post(url, data=b"x", timeout=2)
    assert _never_connected(caught.value)
    assert not _never_connected(requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, content=b"x", timeout=2)


def test_retry_policy_replays_only_what_never_reached_the_server() -> None:
    policy = RetryPolicy(max_retries=3, base_delay=0, max_delay=0)

    def tries(replayable: bool, failure: TransportFailure) -> int:
        count = 0
        with pytest.raises(TransportFailure):
            for attempt in policy.retrying(replayable):
                with attempt:
                    count += 1
                    raise failure
        return count

    assert tries(False, TransportFailure("refused", sent=False)) == 4
    assert tries(False, TransportFailure("reset after sending")) == 1
    assert tries(True, TransportFailure("reset after sending")) == 4
