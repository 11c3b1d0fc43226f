"""The transport under network and server faults, injected by the fault proxy (the one mock
here: the proxy stands for a misbehaving network or gateway; gateway, signatures and proofs are
real).

Every test asserts the expected outcome (a retry that succeeds, or a named error) together with
the invariants: at most one settlement per call, every retry of a call carries the same payment,
the call ends within ``timeout x (retries + 1)`` plus a margin, and under the default
verification policy no unverifiable content reaches the caller.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import faultproxy as fp
import pytest
from faultproxy import FaultProxy
from harness import MESSAGES, MODEL, RETRIES, bound, settled_nonces, within
from opengradient_shared import (
    LLM,
    NetworkError,
    OpenGradientError,
    ServerError,
    StreamInterruptedError,
    TextGenerationOutput,
    VerificationError,
)


def _warm(llm: LLM) -> TextGenerationOutput:
    """One clean call: the client learns the price and the key, later calls pre-pay."""
    out = llm.chat(MODEL, MESSAGES)
    assert isinstance(out, TextGenerationOutput)
    assert out.tee_proof is not None and out.tee_proof.verified
    return out


class _Call:
    """What one faulty call did: the proxy's view and the ledger's."""

    def __init__(self, gateway: Any, proxy: FaultProxy) -> None:
        self._gateway, self._proxy = gateway, proxy
        self._seen = len(proxy.seen)
        self._settled = len(settled_nonces(gateway))

    @property
    def tries(self) -> list[fp.Seen]:
        return self._proxy.seen[self._seen :]

    @property
    def new_settlements(self) -> list[str]:
        return settled_nonces(self._gateway)[self._settled :]

    def assert_one_payment(self) -> None:
        """Every try carried a payment, all the same one, and at most it was settled."""
        nonces = {t.payment_nonce() for t in self.tries}
        assert len(nonces) == 1 and None not in nonces, f"tries carried {nonces}"
        assert set(self.new_settlements) <= nonces
        assert len(self.new_settlements) <= 1


# ---- faults the transport retries ----------------------------------------------------------

TRANSIENT = [
    pytest.param([fp.close()], id="closed-without-answer"),
    pytest.param([fp.reset()], id="reset"),
    pytest.param([fp.stall()], id="stall-past-timeout"),
    pytest.param([fp.garbage()], id="garbage-bytes"),
    pytest.param([fp.status(429, retry_after="0")], id="429-retry-after"),
    pytest.param([fp.status(502)], id="502"),
    pytest.param([fp.status(503)], id="503"),
    pytest.param([fp.status(504)], id="504"),
    pytest.param([fp.status(503), fp.reset()], id="503-then-reset"),
]


@pytest.mark.parametrize("faults", TRANSIENT)
def test_transient_fault_is_retried_with_the_same_payment(
    gateway: Any, proxy: FaultProxy, make_llm: Any, faults: list[fp.Fault]
) -> None:
    llm = make_llm(proxy.url)
    clean = _warm(llm)
    call = _Call(gateway, proxy)
    proxy.script(*faults)
    with within(bound()):
        out = llm.chat(MODEL, MESSAGES)
    assert out.chat_output["content"] == clean.chat_output["content"]
    assert out.tee_proof is not None and out.tee_proof.verified
    assert len(call.tries) == len(faults) + 1
    call.assert_one_payment()
    assert len(call.new_settlements) == 1


EXHAUSTED = [
    pytest.param(fp.reset, NetworkError, None, id="reset"),
    pytest.param(fp.close, NetworkError, None, id="closed"),
    pytest.param(fp.stall, NetworkError, None, id="stall"),
    pytest.param(lambda: fp.status(503), ServerError, 503, id="503"),
    pytest.param(lambda: fp.status(429, retry_after="0"), ServerError, 429, id="429"),
]


@pytest.mark.parametrize(("fault", "error", "code"), EXHAUSTED)
def test_fault_on_every_try_gives_up_after_the_retries(
    gateway: Any,
    proxy: FaultProxy,
    make_llm: Any,
    fault: Any,
    error: type[Exception],
    code: int | None,
) -> None:
    llm = make_llm(proxy.url)
    _warm(llm)
    call = _Call(gateway, proxy)
    proxy.script(*(fault() for _ in range(RETRIES + 3)))
    with within(bound()), pytest.raises(error) as caught:
        llm.chat(MODEL, MESSAGES)
    assert caught.value.status_code == code
    assert len(call.tries) == RETRIES + 1
    call.assert_one_payment()
    assert call.new_settlements == []


def test_closed_port_is_a_network_error_and_nothing_is_signed(make_llm: Any, spy: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens
    llm = make_llm(f"http://127.0.0.1:{port}")
    with within(bound()), pytest.raises(NetworkError):
        llm.chat(MODEL, MESSAGES)
    assert spy.calls == 0


def test_retry_after_longer_than_allowed_is_not_waited_for(
    gateway: Any, proxy: FaultProxy, make_llm: Any
) -> None:
    """A 429 asking to come back in an hour ends the call now instead of holding it."""
    llm = make_llm(proxy.url)
    _warm(llm)
    call = _Call(gateway, proxy)
    proxy.script(fp.status(429, retry_after="3600"))
    with within(bound()), pytest.raises(ServerError) as caught:
        llm.chat(MODEL, MESSAGES)
    assert caught.value.status_code == 429
    assert len(call.tries) == 1
    assert call.new_settlements == []


def test_v2_transient_fault_rides_the_same_session(
    gateway_v2: Any, proxy_v2: FaultProxy, make_llm: Any, spy: Any
) -> None:
    """With ``retry_session_requests=True`` (the default refuses the resend after the reset:
    see test_reliability_sessions.py)."""
    llm = make_llm(proxy_v2.url, retry_session_requests=True)
    _warm(llm)  # pays a permit and opens a session
    sessions = len(settled_nonces(gateway_v2))
    seen = len(proxy_v2.seen)
    proxy_v2.script(fp.status(503), fp.reset())
    with within(bound()):
        out = llm.chat(MODEL, MESSAGES)
    assert out.tee_proof is not None and out.tee_proof.verified
    assert spy.calls == 1  # no new permit: every try rode the session
    assert len(settled_nonces(gateway_v2)) == sessions
    tries = proxy_v2.seen[seen:]
    assert len({t.headers.get("x-upto-session") for t in tries}) == 1
    assert all(t.payment_nonce() is None for t in tries)


def test_completion_with_altered_text_raises(
    gateway: Any, proxy: FaultProxy, make_llm: Any
) -> None:
    llm = make_llm(proxy.url)
    llm.completion(MODEL, "Once upon a time")
    proxy.script(fp.tamper_content())
    with within(bound()), pytest.raises(VerificationError):
        llm.completion(MODEL, "Once upon a time")


# ---- faults the transport must not retry ---------------------------------------------------


def test_500_is_a_server_error_without_retry(
    gateway: Any, proxy: FaultProxy, make_llm: Any
) -> None:
    llm = make_llm(proxy.url)
    _warm(llm)
    call = _Call(gateway, proxy)
    proxy.script(fp.status(500))
    with within(bound()), pytest.raises(ServerError) as caught:
        llm.chat(MODEL, MESSAGES)
    assert caught.value.status_code == 500
    assert "injected fault 500" in str(caught.value)  # the server's message is in the error
    assert len(call.tries) == 1
    assert call.new_settlements == []


def test_invalid_json_answer_is_a_server_error(
    gateway: Any, proxy: FaultProxy, make_llm: Any
) -> None:
    llm = make_llm(proxy.url)
    _warm(llm)
    call = _Call(gateway, proxy)
    proxy.script(fp.invalid_json())
    with within(bound()), pytest.raises(ServerError):
        llm.chat(MODEL, MESSAGES)
    call.assert_one_payment()


def test_body_cut_midway_is_an_error_and_settles_at_most_once(
    gateway: Any, proxy: FaultProxy, make_llm: Any
) -> None:
    llm = make_llm(proxy.url)
    _warm(llm)
    call = _Call(gateway, proxy)
    proxy.script(fp.cut_body(), fp.cut_body(), fp.cut_body())
    with within(bound()), pytest.raises(ServerError):
        llm.chat(MODEL, MESSAGES)
    call.assert_one_payment()
    assert len(call.new_settlements) == 1  # the gateway did settle the first try


# ---- the gateway settled, the answer was lost --------------------------------------------

LOST_AFTER_SETTLEMENT = [
    pytest.param(fp.reset(upstream=True), id="reset"),
    pytest.param(fp.close(upstream=True), id="closed"),
    pytest.param(fp.stall(upstream=True), id="stall"),
    pytest.param(fp.status(503, upstream=True), id="503"),
]


@pytest.mark.parametrize("fault", LOST_AFTER_SETTLEMENT)
def test_answer_lost_after_settlement_never_settles_twice(
    gateway: Any, proxy: FaultProxy, make_llm: Any, spy: Any, fault: fp.Fault
) -> None:
    llm = make_llm(proxy.url)
    _warm(llm)
    signed = spy.calls
    call = _Call(gateway, proxy)
    proxy.script(fault)
    with within(bound()):
        try:
            out: TextGenerationOutput | None = llm.chat(MODEL, MESSAGES)
        except OpenGradientError:
            out = None
    assert len(call.new_settlements) == 1, "the lost answer's payment was settled twice"
    call.assert_one_payment()
    assert spy.calls - signed <= 1  # the pre-payment, and nothing after the gateway refused it
    if out is not None:
        assert out.tee_proof is not None and out.tee_proof.verified


# ---- answers that do not verify --------------------------------------------------------

UNVERIFIABLE = ["drop_tee", "tamper_content", "swap_signature"]


def _unverifiable(kind: str, clean: TextGenerationOutput) -> fp.Fault:
    if kind == "drop_tee":
        return fp.drop_tee()
    if kind == "tamper_content":
        return fp.tamper_content()
    assert clean.tee_proof is not None
    return fp.swap_signature(clean.tee_proof.signature)


@pytest.mark.parametrize("kind", UNVERIFIABLE)
def test_unverifiable_answer_raises_and_returns_no_content(
    gateway: Any, proxy: FaultProxy, make_llm: Any, kind: str
) -> None:
    llm = make_llm(proxy.url)
    clean = _warm(llm)
    if kind == "swap_signature":  # a valid signature, but of another answer
        clean = llm.chat(MODEL, [{"role": "user", "content": "Something else entirely."}])
    call = _Call(gateway, proxy)
    proxy.script(_unverifiable(kind, clean))
    with within(bound()), pytest.raises(VerificationError) as caught:
        llm.chat(MODEL, MESSAGES)
    assert len(call.tries) == 1  # a failed proof is not retried (it would pay again)
    assert len(call.new_settlements) <= 1
    content = _warm_content(llm)
    assert content not in str(caught.value) and content not in (caught.value.body or "")


def _warm_content(llm: LLM) -> str:
    content = llm.chat(MODEL, MESSAGES).chat_output["content"]
    assert isinstance(content, str) and content
    return content


def test_tampering_is_real_the_warn_policy_lets_the_altered_text_through(
    gateway: Any, proxy: FaultProxy, make_llm: Any
) -> None:
    """Control for the test above: the proxy really alters the text (with verification set to
    warn, the caller gets one character changed and a warning)."""
    llm = make_llm(proxy.url, verification="warn")
    clean = _warm(llm).chat_output["content"]
    proxy.script(fp.tamper_content())
    with pytest.warns(Warning):
        out = llm.chat(MODEL, MESSAGES)
    altered = out.chat_output["content"]
    assert altered != clean and len(altered) == len(clean)
    assert sum(a != b for a, b in zip(altered, clean, strict=True)) == 1
    assert out.tee_proof is None or not out.tee_proof.verified


# ---- streams -----------------------------------------------------------------------------


def _drain(stream: Any) -> tuple[list[Any], BaseException | None]:
    chunks: list[Any] = []
    try:
        for chunk in stream:
            chunks.append(chunk)
    except OpenGradientError as exc:
        return chunks, exc
    return chunks, None


def _stream(llm: LLM) -> tuple[list[Any], BaseException | None]:
    try:
        stream = llm.chat(MODEL, MESSAGES, stream=True)
    except OpenGradientError as exc:
        return [], exc
    return _drain(stream)


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param([fp.status(503)], id="503"),
        pytest.param([fp.reset()], id="reset"),
        pytest.param([fp.status(429, retry_after="0"), fp.close()], id="429-then-closed"),
    ],
)
def test_stream_fault_before_the_first_byte_is_retried(
    gateway: Any, proxy: FaultProxy, make_llm: Any, faults: list[fp.Fault]
) -> None:
    llm = make_llm(proxy.url)
    clean = _warm(llm)
    call = _Call(gateway, proxy)
    proxy.script(*faults)
    with within(bound()):
        chunks, error = _stream(llm)
    assert error is None
    assert chunks and chunks[-1].is_final and chunks[-1].tee_proof.verified
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == clean.chat_output["content"]
    assert len(call.tries) == len(faults) + 1
    call.assert_one_payment()
    assert len(call.new_settlements) == 1


STREAM_BROKEN = [
    pytest.param(fp.cut_stream(2), StreamInterruptedError, id="cut-abruptly"),
    pytest.param(fp.cut_stream(2, clean=True), StreamInterruptedError, id="ended-before-done"),
    pytest.param(fp.stall_stream(2), ServerError, id="stalled-midway"),
    pytest.param(fp.drop_tee(), VerificationError, id="tee-fields-dropped"),
    pytest.param(fp.tamper_content(), VerificationError, id="content-altered"),
]


@pytest.mark.parametrize(("fault", "error"), STREAM_BROKEN)
def test_broken_stream_raises_instead_of_the_final_chunk(
    gateway: Any, proxy: FaultProxy, make_llm: Any, fault: fp.Fault, error: type[Exception]
) -> None:
    llm = make_llm(proxy.url)
    _warm(llm)
    call = _Call(gateway, proxy)
    proxy.script(fault)
    with within(bound()):
        chunks, raised = _stream(llm)
    assert isinstance(raised, error), f"expected {error.__name__}, got {raised!r}"
    assert not any(c.is_final for c in chunks)
    assert len(call.tries) == 1  # no retry once bytes arrived: a resend could pay again
    assert len(call.new_settlements) <= 1


def test_stream_with_a_swapped_signature_raises_verification_error(
    gateway: Any, proxy: FaultProxy, make_llm: Any
) -> None:
    llm = make_llm(proxy.url)
    _warm(llm)
    other = llm.chat(MODEL, [{"role": "user", "content": "Something else entirely."}])
    assert other.tee_proof is not None
    proxy.script(fp.swap_signature(other.tee_proof.signature))
    with within(bound()):
        chunks, raised = _stream(llm)
    assert isinstance(raised, VerificationError)
    assert not any(c.is_final for c in chunks)


# ---- the async driver ------------------------------------------------------------------


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param([fp.status(503)], id="503"),
        pytest.param([fp.reset()], id="reset"),
        pytest.param([fp.stall()], id="stall"),
    ],
)
async def test_async_transient_fault_is_retried_with_the_same_payment(
    gateway: Any, proxy: FaultProxy, make_llm: Any, faults: list[fp.Fault]
) -> None:
    llm = make_llm(proxy.url)
    await llm.achat(MODEL, MESSAGES)
    call = _Call(gateway, proxy)
    proxy.script(*faults)
    with within(bound()):
        out = await llm.achat(MODEL, MESSAGES)
    assert out.tee_proof is not None and out.tee_proof.verified
    assert len(call.tries) == len(faults) + 1
    call.assert_one_payment()
    assert len(call.new_settlements) == 1
    await llm.aclose()


async def test_async_answer_lost_after_settlement_never_settles_twice(
    gateway: Any, proxy: FaultProxy, make_llm: Any
) -> None:
    llm = make_llm(proxy.url)
    await llm.achat(MODEL, MESSAGES)
    call = _Call(gateway, proxy)
    proxy.script(fp.reset(upstream=True))
    with within(bound()), contextlib.suppress(OpenGradientError):
        await llm.achat(MODEL, MESSAGES)
    assert len(call.new_settlements) == 1
    call.assert_one_payment()
    await llm.aclose()


async def test_async_stall_on_every_try_is_a_network_error(
    gateway: Any, proxy: FaultProxy, make_llm: Any
) -> None:
    llm = make_llm(proxy.url)
    await llm.achat(MODEL, MESSAGES)
    call = _Call(gateway, proxy)
    proxy.script(*(fp.stall() for _ in range(RETRIES + 3)))
    with within(bound()), pytest.raises(NetworkError):
        await llm.achat(MODEL, MESSAGES)
    assert len(call.tries) == RETRIES + 1
    assert call.new_settlements == []
    await llm.aclose()


@pytest.mark.parametrize(("fault", "error"), STREAM_BROKEN[:2] + STREAM_BROKEN[3:])
async def test_async_broken_stream_raises_instead_of_the_final_chunk(
    gateway: Any, proxy: FaultProxy, make_llm: Any, fault: fp.Fault, error: type[Exception]
) -> None:
    llm = make_llm(proxy.url)
    await llm.achat(MODEL, MESSAGES)
    proxy.script(fault)
    chunks: list[Any] = []
    with within(bound()), pytest.raises(error):
        stream = await llm.achat(MODEL, MESSAGES, stream=True)
        async for chunk in stream:
            chunks.append(chunk)
    assert not any(c.is_final for c in chunks)
    await llm.aclose()


async def test_async_unverifiable_answer_raises(
    gateway: Any, proxy: FaultProxy, make_llm: Any
) -> None:
    llm = make_llm(proxy.url)
    await llm.achat(MODEL, MESSAGES)
    proxy.script(fp.tamper_content())
    with within(bound()), pytest.raises(VerificationError):
        await llm.achat(MODEL, MESSAGES)
    await llm.aclose()


# ---- a server that never goes quiet long enough for a read timeout ------------------------

_DRIP_TIMEOUT = 0.3  # one try of 0.3 s: the bound is 2.3 s, the drip lasts 2.8 s


def test_dripping_answer_is_cut_at_the_bound(
    gateway: Any, proxy: FaultProxy, make_llm: Any
) -> None:
    llm = make_llm(proxy.url, timeout=_DRIP_TIMEOUT, max_retries=0)
    _warm(llm)
    call = _Call(gateway, proxy)
    limit = bound(_DRIP_TIMEOUT, 0)
    proxy.script(fp.drip(_DRIP_TIMEOUT / 2, seconds=limit + 0.5))
    with within(limit), pytest.raises(NetworkError, match="no complete answer within 0.3 s"):
        llm.chat(MODEL, MESSAGES)
    assert len(call.new_settlements) <= 1


async def test_async_dripping_answer_is_cut_at_the_bound(
    gateway: Any, proxy: FaultProxy, make_llm: Any
) -> None:
    llm = make_llm(proxy.url, timeout=_DRIP_TIMEOUT, max_retries=0)
    await llm.achat(MODEL, MESSAGES)
    limit = bound(_DRIP_TIMEOUT, 0)
    proxy.script(fp.drip(_DRIP_TIMEOUT / 2, seconds=limit + 0.5))
    with within(limit), pytest.raises(NetworkError, match="no complete answer within 0.3 s"):
        await llm.achat(MODEL, MESSAGES)
    await llm.aclose()


def test_the_deadline_ends_when_a_stream_starts(gateway: Any, make_llm: Any) -> None:
    """Control for the drip tests: a stream whose chunks come steadily may last longer than
    one timeout in total (the per-try timeout bounds the wait for its headers and each idle
    gap; its length is bounded by the call's ``deadline``: see test_reliability_limits.py)."""
    llm = make_llm(gateway.url, timeout=_DRIP_TIMEOUT, max_retries=0, deadline=30)
    _warm(llm)
    gateway.chunk_delay = _DRIP_TIMEOUT / 3
    chunks = list(llm.chat(MODEL, MESSAGES, max_tokens=40, stream=True))
    assert len(chunks) * gateway.chunk_delay > _DRIP_TIMEOUT  # it outlived one timeout
    assert chunks[-1].is_final and chunks[-1].tee_proof is not None
    assert chunks[-1].tee_proof.verified


async def test_async_deadline_ends_when_a_stream_starts(gateway: Any, make_llm: Any) -> None:
    llm = make_llm(gateway.url, timeout=_DRIP_TIMEOUT, max_retries=0, deadline=30)
    await llm.achat(MODEL, MESSAGES)
    gateway.chunk_delay = _DRIP_TIMEOUT / 3
    stream = await llm.achat(MODEL, MESSAGES, max_tokens=40, stream=True)
    chunks = [chunk async for chunk in stream]
    assert len(chunks) * gateway.chunk_delay > _DRIP_TIMEOUT
    assert chunks[-1].is_final and chunks[-1].tee_proof is not None
    assert chunks[-1].tee_proof.verified
    await llm.aclose()
