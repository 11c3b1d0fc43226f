"""The payment policy (pure): what a client agrees to pay, with real captured challenges."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest
from gateway_vectors import load_vector
from opengradient_shared.errors import InvalidRequestError, PaymentPolicyError
from opengradient_shared.x402 import PaymentChallenge, PaymentRequirement, parse_challenge
from opengradient_shared.x402.networks import OPG_BASE_ADDRESS
from opengradient_shared.x402.policy import PaymentPolicy, PinnedTerms

OUSDC = "0x094E464A23B90A71a0894D5D1e5D470FfDD074e1"
PAYEE = "0x" + "11" * 20
OTHER = "0x" + "22" * 20


def _v2_challenge() -> PaymentChallenge:
    decoded = load_vector("payment_required.json")["PAYMENT-REQUIRED(decoded)"]
    header = base64.b64encode(json.dumps(decoded).encode()).decode()
    challenge = parse_challenge({"PAYMENT-REQUIRED": header}, b"{}")
    assert challenge is not None
    return challenge


def _v1(amount: int = 1000, **changes: Any) -> PaymentChallenge:
    entry = {
        "scheme": "exact",
        "network": "og-evm",
        "maxAmountRequired": str(amount),
        "resource": "http://gw/v1/chat/completions",
        "payTo": PAYEE,
        "maxTimeoutSeconds": 60,
        "asset": OUSDC,
        "extra": {"name": "OUSDC", "version": "2"},
        **changes,
    }
    challenge = parse_challenge({}, json.dumps({"x402Version": 1, "accepts": [entry]}).encode())
    assert challenge is not None
    return challenge


def test_default_policy_pays_todays_gateway_and_the_seeds() -> None:
    policy = PaymentPolicy()
    chosen = policy.choose(_v2_challenge())
    assert chosen.scheme == "upto" and chosen.asset == OPG_BASE_ADDRESS
    assert policy.choose(_v1()).network == "og-evm"


def test_default_cap_is_one_whole_token_of_the_asset() -> None:
    policy = PaymentPolicy()
    assert policy.cap_for(OUSDC) == 10**6
    assert policy.cap_for(OPG_BASE_ADDRESS) == 10**18
    policy.choose(_v1(10**6))
    with pytest.raises(PaymentPolicyError, match=f"{10**6 + 1}.*cap of {10**6}"):
        policy.choose(_v1(10**6 + 1))


def test_cap_names_price_and_cap() -> None:
    with pytest.raises(PaymentPolicyError) as caught:
        PaymentPolicy(max_payment=999).choose(_v1(1000))
    assert "1000" in str(caught.value) and "999" in str(caught.value)
    assert "nothing was signed" in str(caught.value)
    v2 = _v2_challenge()
    with pytest.raises(PaymentPolicyError, match="per session"):
        PaymentPolicy(max_payment=v2.accepts[0].amount - 1).choose(v2)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"allowed_networks": ("base",)}, "og-evm"),
        ({"allowed_assets": (OTHER,)}, OUSDC),
        ({"allowed_payees": (OTHER,)}, PAYEE),
        ({"max_validity_seconds": 59}, "60 s"),
    ],
)
def test_allow_lists_and_validity(options: dict[str, Any], named: str) -> None:
    with pytest.raises(PaymentPolicyError) as caught:
        PaymentPolicy(**options).choose(_v1())
    assert named in str(caught.value)


def test_networks_by_name_or_caip2() -> None:
    v2 = _v2_challenge()  # eip155:8453
    assert PaymentPolicy(allowed_networks=("base",)).choose(v2)
    with pytest.raises(PaymentPolicyError, match="eip155:8453"):
        PaymentPolicy(allowed_networks=("og-evm",)).choose(v2)
    with pytest.raises(PaymentPolicyError, match="og-evm"):
        PaymentPolicy(allowed_networks=("eip155:8453",)).choose(_v1())


def test_unpayable_scheme_or_network_is_refused() -> None:
    with pytest.raises(PaymentPolicyError, match="'streamed'"):
        PaymentPolicy().choose(_v1(scheme="streamed"))
    policy = PaymentPolicy(allowed_networks=("og-evm", "solana"))
    with pytest.raises(PaymentPolicyError, match="solana"):
        policy.choose(_v1(network="solana"))


def test_pinned_payee_and_asset() -> None:
    policy = PaymentPolicy()
    pinned = PinnedTerms(PAYEE, OUSDC)
    assert policy.choose(_v1(), pinned).pay_to == PAYEE
    with pytest.raises(PaymentPolicyError, match=OTHER):
        policy.choose(_v1(payTo=OTHER), pinned)
    with pytest.raises(PaymentPolicyError, match="allowed_assets"):
        policy.choose(_v1(asset=OTHER), pinned)
    # an explicit allow-list accepts the change
    assert PaymentPolicy(allowed_payees=(PAYEE, OTHER)).choose(_v1(payTo=OTHER), pinned)


def test_cheapest_acceptable_offer_wins() -> None:
    base = _v1(500).accepts[0]
    offers = (replace(base, amount=900), base, replace(base, network="base", amount=1))
    chosen = PaymentPolicy(allowed_networks=("og-evm",)).choose(
        PaymentChallenge(x402_version=1, error=None, accepts=offers)
    )
    assert isinstance(chosen, PaymentRequirement) and chosen.amount == 500


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_payment": -1}, "max_payment"),
        ({"max_payment": "10"}, "max_payment"),
        ({"allowed_networks": ("narnia",)}, "narnia"),
        ({"allowed_assets": ("0x12",)}, "allowed_assets"),
        ({"allowed_payees": ("bob",)}, "allowed_payees"),
        ({"max_validity_seconds": 0}, "max_validity_seconds"),
    ],
)
def test_bad_policy_options(options: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidRequestError, match=named):
        PaymentPolicy(**options)
