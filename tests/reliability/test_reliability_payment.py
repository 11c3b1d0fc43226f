"""Payment safety: a payment the client's policy does not allow is refused with nothing signed;
a refused payment is never retried into a loop; one call settles at most once. Signatures are
counted with the ``spy`` on the account's signing methods (every x402 payment is a signature);
the proxy rewrites challenges to stand for a gateway that changes its terms."""

from __future__ import annotations

import base64
import json
from typing import Any

import faultproxy as fp
import pytest
import requests
from eth_account import Account
from faultproxy import FaultProxy
from harness import MESSAGES, MODEL, bound, settled_nonces, within
from opengradient_shared import PaymentPolicyError, PaymentRejectedError, TextGenerationOutput
from opengradient_shared.x402 import PaymentRequirement, parse_challenge

OTHER = Account.create().address  # an address nobody here controls


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


def _paid_to(proxy: FaultProxy) -> list[tuple[str, str]]:
    """(payee, token) of every payment the client sent through the proxy."""
    out: list[tuple[str, str]] = []
    for seen in proxy.seen:
        for name in ("x-payment", "payment-signature"):
            if name in seen.headers:
                payload = json.loads(base64.b64decode(seen.headers[name]))
                inner = payload["payload"]
                if "authorization" in inner:
                    out.append((inner["authorization"]["to"], payload.get("network", "")))
                else:
                    permit = inner["permit2Authorization"]
                    out.append((permit["witness"]["to"], permit["permitted"]["token"]))
    return out


# ---- the cap ---------------------------------------------------------------------------


def test_price_over_the_cap_is_refused_with_nothing_signed(
    gateway: Any, set_price: Any, make_llm: Any, spy: Any
) -> None:
    set_price(10_000)
    llm = make_llm(gateway.url, max_payment=9_999)
    count, settled = gateway.request_count, len(gateway.ledger.entries)
    with within(bound()), pytest.raises(PaymentPolicyError) as caught:
        llm.chat(MODEL, MESSAGES)
    assert "10000" in str(caught.value).replace(",", "").replace("_", "")
    assert "9999" in str(caught.value).replace(",", "").replace("_", "")
    assert spy.calls == 0
    assert len(gateway.ledger.entries) == settled
    assert gateway.request_count - count == 1  # the unpaid ask, nothing after it


def test_price_at_the_cap_is_paid_once(
    gateway: Any, set_price: Any, make_llm: Any, spy: Any
) -> None:
    """Control for the test above: the same setup with the cap equal to the price pays."""
    set_price(10_000)
    llm = make_llm(gateway.url, max_payment=10_000)
    settled = len(gateway.ledger.entries)
    out = llm.chat(MODEL, MESSAGES)
    assert isinstance(out, TextGenerationOutput)
    assert spy.calls == 1
    assert [e.amount for e in gateway.ledger.entries[settled:]] == [10_000]


def test_price_raised_mid_session_over_the_cap_is_refused(
    gateway: Any, set_price: Any, make_llm: Any, spy: Any
) -> None:
    set_price(1_000)
    llm = make_llm(gateway.url, max_payment=5_000)
    llm.chat(MODEL, MESSAGES)
    signed, settled = spy.calls, len(gateway.ledger.entries)
    set_price(6_000)
    with within(bound()), pytest.raises(PaymentPolicyError):
        llm.chat(MODEL, MESSAGES)
    # the pre-payment at the old price may be signed (the gateway refuses it), nothing more
    assert spy.calls - signed <= 1
    assert len(gateway.ledger.entries) == settled


def test_v2_cap_bounds_the_session(
    gateway_v2: Any, proxy_v2: FaultProxy, make_llm: Any, spy: Any
) -> None:
    cap = _requirement(gateway_v2).amount
    refused = make_llm(proxy_v2.url, max_payment=cap - 1)
    with within(bound()), pytest.raises(PaymentPolicyError):
        refused.chat(MODEL, MESSAGES)
    assert spy.calls == 0
    assert proxy_v2.nonces() == []

    allowed = make_llm(proxy_v2.url, max_payment=cap)
    for _ in range(3):
        allowed.chat(MODEL, MESSAGES)
    assert spy.calls == 1  # one permit opens the session; later calls ride on it
    permits = [
        json.loads(base64.b64decode(s.headers["payment-signature"]))
        for s in proxy_v2.seen
        if "payment-signature" in s.headers
    ]
    assert len(permits) == 1
    assert int(permits[0]["payload"]["permit2Authorization"]["permitted"]["amount"]) <= cap


# ---- allow-lists -----------------------------------------------------------------------


@pytest.mark.parametrize("which", ["network", "asset", "payee"])
def test_requirement_outside_the_allow_lists_is_refused(
    gateway: Any, make_llm: Any, spy: Any, which: str
) -> None:
    real = _requirement(gateway)
    options = {
        "network": {"allowed_networks": ("base",)},
        "asset": {"allowed_assets": (OTHER,)},
        "payee": {"allowed_payees": (OTHER,)},
    }[which]
    named = {"network": real.network, "asset": real.asset, "payee": real.pay_to}[which]
    llm = make_llm(gateway.url, **options)
    settled = len(gateway.ledger.entries)
    with within(bound()), pytest.raises(PaymentPolicyError) as caught:
        llm.chat(MODEL, MESSAGES)
    assert named.lower() in str(caught.value).lower()
    assert spy.calls == 0
    assert len(gateway.ledger.entries) == settled


def test_unknown_network_in_the_challenge_is_refused(
    gateway: Any, proxy: FaultProxy, make_llm: Any, spy: Any
) -> None:
    llm = make_llm(proxy.url, allowed_networks=("og-evm", "solana-mainnet"))
    proxy.script(fp.rewrite_challenge(network="solana-mainnet"))
    with within(bound()), pytest.raises(PaymentPolicyError) as caught:
        llm.chat(MODEL, MESSAGES)
    assert "solana-mainnet" in str(caught.value)
    assert spy.calls == 0
    assert proxy.forwarded == 1 and proxy.nonces() == []


# ---- a challenge that changes its terms mid-session ------------------------------------


@pytest.mark.parametrize("change", ["payTo", "asset"])
def test_changed_payee_or_asset_outside_the_allow_list_is_refused(
    gateway: Any, proxy: FaultProxy, make_llm: Any, spy: Any, change: str
) -> None:
    real = _requirement(gateway)
    llm = make_llm(proxy.url, allowed_payees=(real.pay_to,), allowed_assets=(real.asset,))
    llm.chat(MODEL, MESSAGES)
    settled = len(gateway.ledger.entries)
    proxy.script(fp.rewrite_challenge(**{change: OTHER}), fp.rewrite_challenge(**{change: OTHER}))
    with within(bound()), pytest.raises(PaymentPolicyError) as caught:
        llm.chat(MODEL, MESSAGES)
    assert OTHER.lower() in str(caught.value).lower()
    assert all(payee.lower() == real.pay_to.lower() for payee, _ in _paid_to(proxy))
    assert len(gateway.ledger.entries) == settled
    assert spy.calls <= 2  # the first call's payment and the second call's pre-payment


@pytest.mark.parametrize("change", ["payTo", "asset"])
def test_changed_payee_or_asset_without_allow_list_is_refused(
    gateway: Any, proxy: FaultProxy, make_llm: Any, spy: Any, change: str
) -> None:
    real = _requirement(gateway)
    llm = make_llm(proxy.url)
    llm.chat(MODEL, MESSAGES)
    signed = spy.calls
    proxy.script(fp.rewrite_challenge(**{change: OTHER}), fp.rewrite_challenge(**{change: OTHER}))
    with within(bound()), pytest.raises(PaymentPolicyError):
        llm.chat(MODEL, MESSAGES)
    assert all(payee.lower() == real.pay_to.lower() for payee, _ in _paid_to(proxy))
    assert spy.calls - signed <= 1


@pytest.mark.parametrize("change", ["payTo", "asset"])
def test_v2_challenge_changing_terms_mid_session_is_refused(
    gateway_v2: Any, proxy_v2: FaultProxy, make_llm: Any, spy: Any, change: str
) -> None:
    real = _requirement(gateway_v2)
    llm = make_llm(proxy_v2.url, allowed_payees=(real.pay_to,), allowed_assets=(real.asset,))
    llm.chat(MODEL, MESSAGES)  # opens the session
    assert spy.calls == 1
    # the session header is stripped, so the gateway asks again; the proxy alters its terms
    proxy_v2.script(*(fp.rewrite_challenge(**{change: OTHER}) for _ in range(3)))
    with within(bound()), pytest.raises(PaymentPolicyError):
        llm.chat(MODEL, MESSAGES)
    assert spy.calls == 1
    assert all(v.lower() != OTHER.lower() for pair in _paid_to(proxy_v2) for v in pair)


# ---- validity window -------------------------------------------------------------------


@pytest.mark.parametrize("proxy_name", ["proxy", "proxy_v2"])
def test_over_long_validity_window_is_refused(
    request: pytest.FixtureRequest, make_llm: Any, spy: Any, proxy_name: str
) -> None:
    proxy: FaultProxy = request.getfixturevalue(proxy_name)
    llm = make_llm(proxy.url, max_validity_seconds=600)
    proxy.script(fp.rewrite_challenge(maxTimeoutSeconds=86_400))
    with within(bound()), pytest.raises(PaymentPolicyError) as caught:
        llm.chat(MODEL, MESSAGES)
    assert "86400" in str(caught.value).replace(",", "")
    assert spy.calls == 0
    assert proxy.nonces() == []


# ---- refusals by the gateway -----------------------------------------------------------


def test_insufficient_balance_is_rejected_after_one_signature(
    gateway: Any, account: Any, make_llm: Any, spy: Any
) -> None:
    gateway.balances = {account.address: 0}
    try:
        llm = make_llm(gateway.url)
        count, settled = gateway.request_count, len(gateway.ledger.entries)
        with within(bound()), pytest.raises(PaymentRejectedError) as caught:
            llm.chat(MODEL, MESSAGES)
    finally:
        gateway.balances = None
    assert "insufficient" in str(caught.value).lower()
    assert spy.calls == 1
    assert len(gateway.ledger.entries) == settled
    assert gateway.request_count - count == 2  # the unpaid ask and the one paid try


def test_402_on_every_try_stops_with_one_payment_rejected(
    gateway: Any, proxy: FaultProxy, make_llm: Any, spy: Any
) -> None:
    """The proxy strips every payment, so the gateway answers its real 402 to every try."""
    llm = make_llm(proxy.url)
    settled = len(settled_nonces(gateway))
    proxy.script(*(fp.strip_payment() for _ in range(10)))
    with within(bound()), pytest.raises(PaymentRejectedError):
        llm.chat(MODEL, MESSAGES)
    assert spy.calls == 1  # one payment signed for this call, never a loop
    assert len(proxy.seen) == 2  # the unpaid ask, then the one paid try
    assert len(settled_nonces(gateway)) == settled


def test_402_on_every_try_of_a_prepaid_call_is_bounded(
    gateway: Any, proxy: FaultProxy, make_llm: Any, spy: Any
) -> None:
    llm = make_llm(proxy.url)
    llm.chat(MODEL, MESSAGES)
    signed, tries, settled = spy.calls, len(proxy.seen), len(settled_nonces(gateway))
    proxy.script(*(fp.strip_payment() for _ in range(10)))
    with within(bound()), pytest.raises(PaymentRejectedError):
        llm.chat(MODEL, MESSAGES)
    # the pre-payment, then one re-read of the challenge and one resend: never a loop
    assert spy.calls - signed <= 2
    assert len(proxy.seen) - tries <= 2
    assert len(settled_nonces(gateway)) == settled


def test_v2_402_on_every_try_stops(
    gateway_v2: Any, proxy_v2: FaultProxy, make_llm: Any, spy: Any
) -> None:
    llm = make_llm(proxy_v2.url)
    proxy_v2.script(*(fp.strip_payment() for _ in range(10)))
    with within(bound()), pytest.raises(PaymentRejectedError):
        llm.chat(MODEL, MESSAGES)
    assert spy.calls == 1
    assert len(proxy_v2.seen) == 2
