"""The x402 exchange flow as the pure state machine it is: driven step by step with plain
response values (no server), real eth-account signatures, and an injected clock (the one
stand-in, named ``Clock``) to walk a session up to its permit's deadline."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from gateway_vectors import load_vector
from opengradient_shared.errors import PaymentPolicyError, PaymentRejectedError, ServerError
from opengradient_shared.exchange import Delivery, Exchange, Flow, HttpRequest, HttpResponse, Wait
from opengradient_shared.protocol import prepare_chat
from opengradient_shared.verification import TrustAnchor, VerificationPolicy
from opengradient_shared.x402 import decode_header
from opengradient_shared.x402.policy import PaymentPolicy

SERVER = "http://gw.test"
PREPARED = prepare_chat("openai/gpt-4.1-2025-04-14", [{"role": "user", "content": "hi"}])
V2_CHALLENGE = load_vector("payment_required.json")["PAYMENT-REQUIRED(decoded)"]
V2_HEADER = base64.b64encode(json.dumps(V2_CHALLENGE).encode()).decode()
V1_ACCEPTS = [
    {
        "scheme": "exact",
        "network": "og-evm",
        "maxAmountRequired": "1000",
        "resource": SERVER + "/v1/chat/completions",
        "payTo": "0x" + "11" * 20,
        "maxTimeoutSeconds": 60,
        "asset": "0x094E464A23B90A71a0894D5D1e5D470FfDD074e1",
        "extra": {"name": "OUSDC", "version": "2"},
    }
]


class Clock:
    """A settable stand-in for ``time.time``."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _exchange(account: LocalAccount, clock: Clock | None = None) -> Exchange:
    return Exchange(
        account=account,
        policy=PaymentPolicy(),
        verification=VerificationPolicy.OFF,
        anchor=TrustAnchor(None, None),
        clock=clock or Clock(),
    )


def _v1_402(error: str = "X-PAYMENT header is required") -> HttpResponse:
    body = {"x402Version": 1, "error": error, "accepts": V1_ACCEPTS}
    return HttpResponse(402, {}, json.dumps(body).encode())


def _v2_402() -> HttpResponse:
    return HttpResponse(402, {"PAYMENT-REQUIRED": V2_HEADER}, b"{}")


EXHAUSTED = HttpResponse(402, {}, b'{"error": "Session expired or exhausted"}')


def _ok(session: str | None = None) -> HttpResponse:
    return HttpResponse(200, {"X-Upto-Session": session} if session else {}, b"{}")


class Run:
    """Steps a flow: ``send`` answers the pending request and returns the next one."""

    def __init__(self, flow: Flow) -> None:
        self._flow = flow
        self.requests: list[Any] = [next(flow)]
        self.delivery: Delivery | None = None

    def send(self, response: HttpResponse | None) -> Any:
        try:
            self.requests.append(self._flow.send(response))
        except StopIteration as stop:
            self.delivery = stop.value
            return None
        return self.requests[-1]

    @property
    def last(self) -> HttpRequest:
        return self.requests[-1]


def _permit_nonce(request: HttpRequest) -> str:
    payload = decode_header(request.headers["PAYMENT-SIGNATURE"])
    return str(payload["payload"]["permit2Authorization"]["nonce"])


def _call(exchange: Exchange, *answers: HttpResponse) -> Run:
    run = Run(exchange.flow(SERVER, PREPARED))
    for answer in answers:
        run.send(answer)
    return run


# ---- generation 1 --------------------------------------------------------------------------


def test_v1_first_call_asks_then_pays_later_calls_prepay(account: LocalAccount) -> None:
    exchange = _exchange(account)
    first = _call(exchange, _v1_402(), _ok())
    assert [("X-PAYMENT" in r.headers) for r in first.requests] == [False, True]
    # the unpaid first try names no settlement mode: the server's generation is unknown yet
    assert "X-SETTLEMENT-TYPE" not in first.requests[0].headers
    assert first.requests[1].headers["X-SETTLEMENT-TYPE"] == "settle-batch"
    assert first.delivery is not None and first.delivery.receipt is not None
    second = _call(exchange, _ok())
    assert len(second.requests) == 1 and "X-PAYMENT" in second.requests[0].headers
    assert second.requests[0].headers["X-PAYMENT"] != first.requests[1].headers["X-PAYMENT"]


def test_v1_prepayment_refused_rereads_once_then_gives_up(account: LocalAccount) -> None:
    exchange = _exchange(account)
    _call(exchange, _v1_402(), _ok())
    run = _call(exchange, _v1_402("invalid_signature"))
    assert "X-PAYMENT" in run.last.headers and len(run.requests) == 2  # one fresh resend
    with pytest.raises(PaymentRejectedError, match="nonce_already_used"):
        run.send(_v1_402("nonce_already_used"))


def test_v1_payment_refused_after_a_resend_is_not_replaced(account: LocalAccount) -> None:
    exchange = _exchange(account)
    _call(exchange, _v1_402(), _ok())
    run = Run(exchange.flow(SERVER, PREPARED))
    refused = _v1_402("nonce_already_used")
    refused.attempts = 2  # the driver resent it: an earlier try may have been settled
    with pytest.raises(PaymentRejectedError, match="may have been settled"):
        run.send(refused)
    assert len(run.requests) == 1


def test_v1_changed_payee_is_refused_before_signing(account: LocalAccount) -> None:
    exchange = _exchange(account)
    _call(exchange, _v1_402(), _ok())
    changed = json.loads(_v1_402().body)
    changed["accepts"][0]["payTo"] = "0x" + "33" * 20
    run = Run(exchange.flow(SERVER, PREPARED))
    with pytest.raises(PaymentPolicyError, match="0x" + "33" * 20):
        run.send(HttpResponse(402, {}, json.dumps(changed).encode()))


# ---- generation 2 --------------------------------------------------------------------------


def test_v2_session_is_opened_once_and_reused(account: LocalAccount) -> None:
    exchange = _exchange(account)
    first = _call(exchange, _v2_402(), _ok("s-1"))
    assert "PAYMENT-SIGNATURE" in first.last.headers
    assert first.last.headers["X-SETTLEMENT-TYPE"] == "batch"  # generation 2 spelling now
    payload = decode_header(first.last.headers["PAYMENT-SIGNATURE"])
    assert payload["accepted"] == V2_CHALLENGE["accepts"][0]
    assert first.delivery is not None and first.delivery.receipt is not None
    assert first.delivery.receipt.session_id == "s-1" and first.delivery.receipt.new_payment
    for _ in range(5):
        run = _call(exchange, _ok("s-1"))
        assert len(run.requests) == 1
        assert run.requests[0].headers["X-Upto-Session"] == "s-1"
        assert "PAYMENT-SIGNATURE" not in run.requests[0].headers
        assert run.delivery is not None and run.delivery.receipt is not None
        assert not run.delivery.receipt.new_payment


def test_v2_exhausted_session_asks_again_and_signs_one_new_permit(account: LocalAccount) -> None:
    exchange = _exchange(account)
    first = _call(exchange, _v2_402(), _ok("s-1"))
    run = _call(exchange, EXHAUSTED)
    assert "X-Upto-Session" not in run.last.headers and "PAYMENT-SIGNATURE" not in run.last.headers
    run.send(_v2_402())
    assert _permit_nonce(run.last) != _permit_nonce(first.last)  # a new permit, never a replay
    run.send(_ok("s-2"))
    assert run.delivery is not None and run.delivery.receipt is not None
    assert run.delivery.receipt.session_id == "s-2"
    assert _call(exchange, _ok("s-2")).requests[0].headers["X-Upto-Session"] == "s-2"


def test_v2_session_near_its_deadline_is_replaced_up_front(account: LocalAccount) -> None:
    clock = Clock()
    exchange = _exchange(account, clock)
    first = _call(exchange, _v2_402(), _ok("s-1"))
    clock.now += 200  # maxTimeoutSeconds is 300: still well inside the permit
    assert "X-Upto-Session" in _call(exchange, _ok("s-1")).requests[0].headers
    clock.now += 80  # 20 s left, under the renewal margin
    run = _call(exchange, _ok("s-2"))
    assert len(run.requests) == 1 and "X-Upto-Session" not in run.requests[0].headers
    assert _permit_nonce(run.requests[0]) != _permit_nonce(first.last)


def test_v2_rejected_permit_is_not_retried_into_a_loop(account: LocalAccount) -> None:
    run = _call(_exchange(account), _v2_402())
    with pytest.raises(PaymentRejectedError):
        run.send(_v2_402())
    assert len(run.requests) == 2


def test_v2_a_second_call_waits_while_the_first_opens_the_session(account: LocalAccount) -> None:
    exchange = _exchange(account)
    leader = Run(exchange.flow(SERVER, PREPARED))
    follower = Run(exchange.flow(SERVER, PREPARED))
    (wait,) = follower.requests
    assert isinstance(wait, Wait) and not wait.done.done()
    leader.send(_v2_402())
    leader.send(_ok("s-1"))
    assert leader.delivery is not None and wait.done.done()
    follower.send(None)  # the driver resumes the flow once the wait is over
    assert follower.last.headers["X-Upto-Session"] == "s-1"
    assert "PAYMENT-SIGNATURE" not in follower.last.headers


def test_v2_a_failed_leader_lets_the_waiting_call_go_ahead(account: LocalAccount) -> None:
    exchange = _exchange(account)
    leader = Run(exchange.flow(SERVER, PREPARED))
    follower = Run(exchange.flow(SERVER, PREPARED))
    with pytest.raises(ServerError):
        leader.send(HttpResponse(500, {}, b'{"error": "provider down"}'))
    assert follower.requests[0].done.done()
    follower.send(None)
    assert isinstance(follower.last, HttpRequest)  # it asks the server itself


def test_v1_known_route_needs_no_waiting(account: LocalAccount) -> None:
    exchange = _exchange(account)
    _call(exchange, _v1_402(), _ok())
    first, second = Run(exchange.flow(SERVER, PREPARED)), Run(exchange.flow(SERVER, PREPARED))
    assert all(isinstance(r.last, HttpRequest) for r in (first, second))
    assert "X-PAYMENT" in second.last.headers  # both pre-pay at once
