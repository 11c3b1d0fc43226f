"""Money limits against a server that lies about its terms: unknown assets are not guessed, one
call never authorizes more than ``max_payment`` in total, a client-wide ``budget`` bounds every
call and session (atomically under concurrency), and a hostile value in a challenge is refused
before anything is signed, with no key in any traceback (locals included).

The fault proxy rewrites the real gateway's challenges (the hostile part); signatures are
counted with the ``spy`` on the account's signing methods."""

from __future__ import annotations

import base64
import json
import threading
import traceback
from typing import Any

import faultproxy as fp
import pytest
import requests
from eth_account import Account
from faultproxy import FaultProxy
from harness import MESSAGES, MODEL, bound, within
from opengradient_shared import (
    LLM,
    OpenGradientError,
    PaymentError,
    PaymentPolicyError,
    ServerError,
    TextGenerationOutput,
)
from opengradient_shared.x402 import (
    PaymentChallenge,
    PaymentRequirement,
    exact,
    parse_challenge,
    upto,
)
from opengradient_shared.x402.policy import PaymentPolicy

UNKNOWN_TOKEN = Account.create().address  # an ERC-20 this client has no decimals for


def _requirement(gateway: Any) -> PaymentRequirement:
    """The gateway's own terms, read from a real unpaid request."""
    answer = requests.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt-4.1-2025-04-14", "messages": MESSAGES, "max_tokens": 10},
        headers={"Authorization": "Bearer x"},
        timeout=5,
    )
    assert answer.status_code == 402
    challenge = parse_challenge(answer.headers, answer.content)
    assert challenge is not None
    return challenge.accepts[0]


def _permits(proxy: FaultProxy) -> list[dict[str, Any]]:
    return [
        json.loads(base64.b64decode(s.headers["payment-signature"]))
        for s in proxy.seen
        if "payment-signature" in s.headers
    ]


def _with_locals(exc: BaseException) -> str:
    """The traceback an error reporter records: every frame's locals, the chain included."""
    return "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())


# ---- unknown decimals ------------------------------------------------------------------


def test_unknown_asset_is_refused_without_an_explicit_cap(
    gateway: Any, proxy: FaultProxy, make_llm: Any, spy: Any
) -> None:
    """The issue's case: 999999999999999999 base units of an asset the client does not know
    (a 6-decimal token would make that 10^12 tokens)."""
    llm = make_llm(proxy.url, allowed_assets=None)
    proxy.script(fp.rewrite_challenge(asset=UNKNOWN_TOKEN, maxAmountRequired=str(10**18 - 1)))
    with within(bound()), pytest.raises(PaymentPolicyError) as caught:
        llm.chat(MODEL, MESSAGES)
    message = str(caught.value)
    assert UNKNOWN_TOKEN in message and "decimals" in message and "max_payment" in message
    assert spy.calls == 0
    assert proxy.nonces() == []


def test_unknown_asset_is_paid_under_an_explicit_cap() -> None:
    """Control: with ``max_payment`` set, the unknown asset is priced against it."""
    entry = {
        "scheme": "exact",
        "network": "og-evm",
        "maxAmountRequired": "5000",
        "resource": "http://gw/v1/chat/completions",
        "payTo": Account.create().address,
        "maxTimeoutSeconds": 60,
        "asset": UNKNOWN_TOKEN,
        "extra": {"name": "T", "version": "1"},
    }
    challenge = parse_challenge({}, json.dumps({"x402Version": 1, "accepts": [entry]}).encode())
    assert challenge is not None
    assert PaymentPolicy(max_payment=5000).choose(challenge).asset == UNKNOWN_TOKEN
    with pytest.raises(PaymentPolicyError, match="decimals"):
        PaymentPolicy().choose(challenge)
    with pytest.raises(PaymentPolicyError, match="cap of 4999"):
        PaymentPolicy(max_payment=4999).choose(challenge)


# ---- the cap holds per call ------------------------------------------------------------


@pytest.mark.parametrize(("cap", "refused"), [(10_000, True), (11_000, False)])
def test_refused_prepayment_and_a_402_at_the_cap_stay_within_the_cap(
    gateway: Any, set_price: Any, make_llm: Any, spy: Any, cap: int, refused: bool
) -> None:
    """A call pre-pays the price it learned (1000); the server refuses it and asks the cap.
    Both authorizations count: 1000 + 10000 is over a cap of 10000, so the second is never
    signed; with a cap of 11000 (the control) it is."""
    set_price(1_000)
    llm = make_llm(gateway.url, max_payment=cap)
    llm.chat(MODEL, MESSAGES)
    signed, settled = spy.calls, len(gateway.ledger.entries)
    set_price(10_000)
    if refused:
        with within(bound()), pytest.raises(PaymentPolicyError) as caught:
            llm.chat(MODEL, MESSAGES)
        assert "already signed 1000" in str(caught.value) and str(cap) in str(caught.value)
        assert "nothing more was signed" in str(caught.value)
        assert spy.calls - signed == 1  # only the pre-payment, which the gateway refused
        assert len(gateway.ledger.entries) == settled
    else:
        out = llm.chat(MODEL, MESSAGES)
        assert isinstance(out, TextGenerationOutput) and out.payment is not None
        assert out.payment.amount == 10_000
        assert spy.calls - signed == 2
        assert [e.amount for e in gateway.ledger.entries[settled:]] == [10_000]


# ---- the budget ------------------------------------------------------------------------


def test_budget_bounds_the_total_across_calls_and_is_reported(
    gateway: Any, set_price: Any, make_llm: Any, spy: Any
) -> None:
    set_price(1_000)
    llm = make_llm(gateway.url, budget=2_500)
    first, second = llm.chat(MODEL, MESSAGES), llm.chat(MODEL, MESSAGES)
    assert isinstance(first, TextGenerationOutput) and isinstance(second, TextGenerationOutput)
    assert first.payment is not None and second.payment is not None
    assert (first.payment.authorized_total, first.payment.budget_remaining) == (1_000, 1_500)
    assert (second.payment.authorized_total, second.payment.budget_remaining) == (2_000, 500)
    settled = len(gateway.ledger.entries)
    with within(bound()), pytest.raises(PaymentPolicyError) as caught:
        llm.chat(MODEL, MESSAGES)
    message = str(caught.value)
    assert "budget is 2500" in message and "2000 are already authorized" in message
    assert "asks 1000" in message and "nothing was signed" in message
    assert spy.calls == 2
    assert len(gateway.ledger.entries) == settled


def test_receipt_without_budget_reports_the_total_only(
    gateway: Any, set_price: Any, make_llm: Any
) -> None:
    set_price(1_000)
    llm = make_llm(gateway.url)
    llm.chat(MODEL, MESSAGES)
    out = llm.chat(MODEL, MESSAGES)
    assert isinstance(out, TextGenerationOutput) and out.payment is not None
    assert (out.payment.authorized_total, out.payment.budget_remaining) == (2_000, None)


def test_budget_bounds_a_v2_server_that_calls_every_session_exhausted(
    gateway_v2: Any, proxy_v2: FaultProxy, make_llm: Any, spy: Any
) -> None:
    """The proxy answers every session request with a bare 402 ("exhausted"), so every call
    needs a new full-cap permit: the budget (two sessions' worth) stops the third."""
    cap = _requirement(gateway_v2).amount
    llm = make_llm(proxy_v2.url, budget=2 * cap)
    # call 1: unpaid ask, permit; call 2: session 402, unpaid ask, permit; call 3: session 402,
    # unpaid ask -> refused by the budget before signing
    proxy_v2.script(
        fp.passthrough(), fp.passthrough(), fp.status(402), fp.passthrough(), fp.passthrough(),
        fp.status(402), fp.passthrough(),
    )  # fmt: skip
    first, second = llm.chat(MODEL, MESSAGES), llm.chat(MODEL, MESSAGES)
    assert isinstance(first, TextGenerationOutput) and isinstance(second, TextGenerationOutput)
    assert first.payment is not None and second.payment is not None
    assert first.payment.budget_remaining == cap and second.payment.budget_remaining == 0
    with within(bound()), pytest.raises(PaymentPolicyError, match="budget"):
        llm.chat(MODEL, MESSAGES)
    assert spy.calls == 2
    assert len(_permits(proxy_v2)) == 2


def test_budget_holds_under_concurrent_calls(
    gateway: Any, set_price: Any, account: Any, spy: Any
) -> None:
    """Sixteen threads race on one client whose budget pays five calls: at most five
    signatures, at most the budget settled, every other call a PaymentPolicyError."""
    set_price(1_000)
    settled = len(gateway.ledger.entries)
    results: list[object] = []
    lock = threading.Lock()
    with LLM(account, gateway.url, budget=5_000, timeout=5) as llm:

        def call() -> None:
            try:
                outcome: object = llm.chat(MODEL, MESSAGES)
            except OpenGradientError as exc:
                outcome = exc
            with lock:
                results.append(outcome)

        threads = [threading.Thread(target=call) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    paid = [r for r in results if isinstance(r, TextGenerationOutput)]
    refused = [r for r in results if isinstance(r, PaymentPolicyError)]
    assert len(results) == 16 and len(paid) + len(refused) == 16
    assert 1 <= len(paid) <= 5
    assert spy.calls <= 5
    assert sum(e.amount for e in gateway.ledger.entries[settled:]) <= 5_000
    assert llm.payment_policy.budget.spent(gateway.asset) <= 5_000


def test_budget_is_validated() -> None:
    for bad in (-1, 1.5, "100", True):
        with pytest.raises(ValueError, match="budget"):
            PaymentPolicy(budget=bad)  # type: ignore[arg-type]


# ---- hostile values are refused before signing -----------------------------------------

V1_BAD = [
    pytest.param({"payTo": "0x1234"}, id="short-payTo"),
    pytest.param({"payTo": "0x" + "zz" * 20}, id="non-hex-payTo"),
    pytest.param({"payTo": ["0x" + "11" * 20]}, id="list-payTo"),
    pytest.param({"maxAmountRequired": "-1"}, id="negative-amount"),
]
V2_BAD = [
    pytest.param({"payTo": "0x1234"}, id="short-payTo"),
    pytest.param({"extra": {"facilitatorAddress": "0xnothex"}}, id="bad-facilitator"),
    pytest.param({"extra": {"facilitatorAddress": 7}}, id="number-facilitator"),
    pytest.param({"amount": "-1"}, id="negative-amount"),
    pytest.param({"amount": str(2**300)}, id="amount-over-uint256"),
]


def _refused_before_signing(llm: LLM, spy: Any) -> str:
    """The refusal's traceback with locals (this frame holds no key, so any key in it came
    from the library's frames)."""
    # refused by the strict challenge reader (ServerError) or by the policy or the scheme's
    # checks (PaymentError): either way before signing
    with within(bound()), pytest.raises((PaymentError, ServerError)) as caught:
        llm.chat(MODEL, MESSAGES)
    assert spy.calls == 0
    assert caught.value.__context__ is None or not _has_signer_frames(caught.value.__context__)
    return _with_locals(caught.value) + repr(caught.value)


def _has_signer_frames(exc: BaseException) -> bool:
    summary = traceback.extract_tb(exc.__traceback__)
    return any("eth_account" in frame.filename or "eth_keys" in frame.filename for frame in summary)


@pytest.mark.parametrize("changes", V1_BAD)
def test_v1_hostile_terms_are_refused_before_signing(
    gateway: Any, proxy: FaultProxy, account: Any, spy: Any, changes: dict[str, Any]
) -> None:
    with LLM(account, proxy.url, timeout=0.5, max_retries=0, max_payment=2**300) as llm:
        proxy.script(fp.rewrite_challenge(**changes))
        formatted = _refused_before_signing(llm, spy)
    assert bytes(account.key).hex()[:32] not in formatted
    assert proxy.nonces() == []


@pytest.mark.parametrize("changes", V2_BAD)
def test_v2_hostile_terms_are_refused_before_signing(
    gateway_v2: Any, proxy_v2: FaultProxy, account: Any, spy: Any, changes: dict[str, Any]
) -> None:
    with LLM(account, proxy_v2.url, timeout=0.5, max_retries=0, max_payment=2**300) as llm:
        proxy_v2.script(fp.rewrite_challenge(**changes))
        formatted = _refused_before_signing(llm, spy)
    assert bytes(account.key).hex()[:32] not in formatted
    assert _permits(proxy_v2) == []


# ---- the schemes' own checks (whatever reader produced the requirement) -----------------

GOOD = "0x" + "11" * 20
SCHEME_BAD = [
    pytest.param(scheme, changes, id=f"{scheme.SCHEME}-{name}")
    for scheme in (exact, upto)
    for name, changes in (
        ("short-payTo", {"pay_to": "0x1234"}),
        ("non-hex-asset", {"asset": "0x" + "zz" * 20}),
        ("negative-amount", {"amount": -1}),
        ("amount-over-uint256", {"amount": 2**256}),
        ("zero-validity", {"max_timeout_seconds": 0}),
        ("huge-validity", {"max_timeout_seconds": 2**300}),
    )
] + [
    pytest.param(upto, {"extra": {"facilitatorAddress": bad}}, id=f"upto-facilitator-{i}")
    for i, bad in enumerate(("0xnothex", 7, "0x" + "11" * 19))
]


@pytest.mark.parametrize(("scheme", "changes"), SCHEME_BAD)
def test_scheme_checks_every_value_before_the_key_is_used(
    account: Any, spy: Any, scheme: Any, changes: dict[str, Any]
) -> None:
    fields: dict[str, Any] = {
        "x402_version": scheme.X402_VERSION,
        "scheme": scheme.SCHEME,
        "network": "og-evm" if scheme is exact else "eip155:8453",
        "asset": GOOD,
        "amount": 1000,
        "pay_to": GOOD,
        "max_timeout_seconds": 60,
        "extra": {"name": "T", "version": "1", "facilitatorAddress": GOOD},
        **changes,
    }
    requirement = PaymentRequirement(**fields)
    challenge = PaymentChallenge(x402_version=scheme.X402_VERSION, error=None, accepts=())
    with pytest.raises(ValueError) as caught:
        scheme.sign_payment(account, requirement, challenge, now=1_800_000_000)
    assert spy.calls == 0
    assert not _has_signer_frames(caught.value)
    # control: the same requirement with good values is signed once
    good = PaymentRequirement(
        **{**fields, **{k: v for k, v in _good_fields().items() if k in changes}}
    )
    scheme.sign_payment(account, good, challenge, now=1_800_000_000)
    assert spy.calls == 1


def _good_fields() -> dict[str, Any]:
    return {
        "pay_to": GOOD,
        "asset": GOOD,
        "amount": 1000,
        "max_timeout_seconds": 60,
        "extra": {"name": "T", "version": "1", "facilitatorAddress": GOOD},
    }


@pytest.mark.parametrize("what", ["the amount", "the nonce"])
def test_a_huge_integer_is_refused_naming_the_field(what: str) -> None:
    # repr() of an integer of more than 4300 digits raises its own ValueError, which would
    # have replaced the message naming the field
    from opengradient_shared.x402.typed import uint256

    with pytest.raises(ValueError, match=f"^{what} is not an unsigned 256-bit integer: <an"):
        uint256(10**5000, what)
