"""The transport's safety settings as adapter fields (``budget``, ``deadline``,
``max_response_bytes``, ``retry_session_requests``, ``max_proof_age_seconds``,
``max_stream_event_bytes``), through both adapters: each reaches the transport and acts there
(against the LocalGateway, the fault proxy or the hostile server), a bad value is refused at
construction naming the field, and the wallet key appears in no error.

The signature spy counts every ``LocalAccount`` signature in the test (the adapters build their
own account from the key), the fault proxy is the one mock (a misbehaving network)."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import faultproxy as fp
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from faultproxy import FaultProxy
from harness import MESSAGES, RETRIES, TIMEOUT, adapter
from hostile import HostileServer
from opengradient_shared import (
    NetworkError,
    PaymentPolicyError,
    ServerError,
    StreamInterruptedError,
    VerificationError,
)
from opengradient_shared.client import DEFAULT_MAX_PROOF_AGE_SECONDS
from opengradient_shared.limits import DEFAULT_MAX_RESPONSE_BYTES
from opengradient_shared.sse import DEFAULT_MAX_EVENT_BYTES
from signing_spy import SignSpy

ADAPTERS = ["langchain", "llamaindex"]
MODEL = "openai/gpt-4.1-2025-04-14"
PROMPT = MESSAGES[0]["content"]
FIELDS = {
    "budget": 5_000,
    "deadline": 7.5,
    "max_response_bytes": 65_536,
    "retry_session_requests": True,
    "max_proof_age_seconds": 42.0,
    "max_stream_event_bytes": 4096,
}


def _key(account: LocalAccount) -> str:
    return "0x" + bytes(account.key).hex()


def _model(name: str, url: str, account: LocalAccount, **fields: Any) -> Any:
    settings = {"model": MODEL, "private_key": _key(account), "base_url": url, **fields}
    if name == "langchain":
        return adapter("langchain_opengradient").ChatOpenGradient(**settings)
    return adapter("llamaindex_opengradient").OpenGradient(**settings)


def _call(name: str, model: Any) -> str:
    if name == "langchain":
        return str(model.invoke(PROMPT).content)
    from llama_index.core.llms import ChatMessage

    return str(model.chat([ChatMessage(role="user", content=PROMPT)]).message.content)


def _stream(name: str, model: Any) -> str:
    if name == "langchain":
        return "".join(str(chunk.content) for chunk in model.stream(PROMPT))
    from llama_index.core.llms import ChatMessage

    chunks = list(model.stream_chat([ChatMessage(role="user", content=PROMPT)]))
    return str(chunks[-1].message.content)


@pytest.fixture
def signatures(monkeypatch: pytest.MonkeyPatch) -> SignSpy:
    """The ``spy`` of tests/conftest.py on the class: every wallet's signatures are counted."""
    return SignSpy(LocalAccount, monkeypatch)  # type: ignore[arg-type]


@pytest.fixture
def slow_gateway(tee_signing_key_pem: bytes) -> Iterator[Any]:
    """A gateway that streams an event every 0.4 s (its answers take about 3 s)."""
    from opengradient_shared.gateway import LocalGateway

    with LocalGateway(signing_key_pem=tee_signing_key_pem, chunk_delay=0.4) as gw:
        yield gw


# ---- every field reaches the transport ---------------------------------------------------------


@pytest.mark.parametrize("name", ADAPTERS)
def test_each_field_reaches_the_transport(name: str, account: LocalAccount) -> None:
    transport = _model(name, "http://127.0.0.1:9", account, **FIELDS)._llm
    assert transport.payment_policy.budget.limit == 5_000
    assert transport.deadline == 7.5
    assert transport.max_response_bytes == 65_536
    assert transport._exchange.retry_session_requests is True
    assert transport.max_proof_age_seconds == 42.0
    assert transport.max_stream_event_bytes == 4096


@pytest.mark.parametrize("name", ADAPTERS)
def test_unset_fields_keep_the_transport_defaults(
    name: str, account: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENGRADIENT_BUDGET", raising=False)
    transport = _model(name, "http://127.0.0.1:9", account)._llm
    assert transport.payment_policy.budget.limit is None
    assert transport.deadline is None
    assert transport.max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES
    assert transport._exchange.retry_session_requests is False
    assert transport.max_proof_age_seconds == DEFAULT_MAX_PROOF_AGE_SECONDS
    assert transport.max_stream_event_bytes == DEFAULT_MAX_EVENT_BYTES


@pytest.mark.parametrize("name", ADAPTERS)
def test_models_differing_in_a_limit_get_their_own_transport(
    name: str, account: LocalAccount
) -> None:
    """The new fields are part of the shared-transport cache key."""
    plain = _model(name, "http://127.0.0.1:9", account)
    for field, value in FIELDS.items():
        other = _model(name, "http://127.0.0.1:9", account, **{field: value})
        assert other._llm is not plain._llm, field
    assert _model(name, "http://127.0.0.1:9", account)._llm is plain._llm


# ---- budget --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ADAPTERS)
def test_budget_refuses_the_second_paid_call_before_signing(
    name: str, gateway: Any, account: LocalAccount, signatures: SignSpy
) -> None:
    assert gateway.price == 1_000
    model = _model(name, gateway.url, account, budget=1_000, timeout=5)
    settled = len(gateway.ledger.entries)
    assert _call(name, model)
    assert signatures.calls == 1
    with pytest.raises(PaymentPolicyError, match="budget is 1000") as caught:
        _call(name, model)
    assert "nothing was signed" in str(caught.value)
    assert signatures.calls == 1
    assert len(gateway.ledger.entries) - settled == 1
    assert _key(account)[2:] not in str(caught.value) + repr(caught.value) + repr(model)


@pytest.mark.parametrize("name", ADAPTERS)
def test_a_copy_of_a_model_does_not_get_a_fresh_budget(
    name: str, gateway: Any, account: LocalAccount, signatures: SignSpy
) -> None:
    """Frameworks copy models (``with_config``, ``deepcopy``); the copy shares the transport,
    so the budget the original spent is spent for the copy too."""
    model = _model(name, gateway.url, account, budget=1_000, timeout=5)
    assert _call(name, model)
    twin = copy.deepcopy(model)
    same_settings = _model(name, gateway.url, account, budget=1_000, timeout=5)
    for other in (twin, same_settings):
        with pytest.raises(PaymentPolicyError, match="budget is 1000"):
            _call(name, other)
    assert signatures.calls == 1


@pytest.mark.parametrize("name", ADAPTERS)
def test_budget_is_read_from_the_environment(
    name: str, account: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENGRADIENT_BUDGET", "2500")
    model = _model(name, "http://127.0.0.1:9", account)
    assert model.budget == 2_500
    assert model._llm.payment_policy.budget.limit == 2_500
    assert (
        _model(name, "http://127.0.0.1:9", account, budget=10)._llm.payment_policy.budget.limit
        == 10
    )
    monkeypatch.setenv("OPENGRADIENT_BUDGET", "a lot")
    with pytest.raises(ValueError, match="budget"):
        _model(name, "http://127.0.0.1:9", account)


# ---- deadline, answer size, stream event size --------------------------------------------------


@pytest.mark.parametrize("name", ADAPTERS)
def test_deadline_cuts_a_slow_stream(name: str, slow_gateway: Any, account: LocalAccount) -> None:
    """The gateway's stream takes about 3 s and is never idle for ``timeout``: without the
    field it completes (the default stream deadline is ``timeout × (max_retries + 1)``)."""
    model = _model(name, slow_gateway.url, account, timeout=10, deadline=0.8)
    with pytest.raises(StreamInterruptedError, match="deadline"):
        _stream(name, model)
    unbounded = _model(name, slow_gateway.url, Account.create(), timeout=10)
    assert _stream(name, unbounded)


@pytest.mark.parametrize("name", ADAPTERS)
def test_max_response_bytes_bounds_the_answer(
    name: str, gateway: Any, account: LocalAccount
) -> None:
    model = _model(name, gateway.url, account, max_response_bytes=256, timeout=5)
    with pytest.raises(ServerError, match="max_response_bytes=256") as caught:
        _call(name, model)
    assert _key(account)[2:] not in str(caught.value)


@pytest.mark.parametrize("name", ADAPTERS)
def test_max_stream_event_bytes_ends_a_stream(
    name: str, hostile: HostileServer, account: LocalAccount
) -> None:
    text = "word " * 1000  # one 5 KB event
    long_event = {"choices": [{"index": 0, "delta": {"content": text}}], "model": "m"}
    answer = hostile.signed_chat(
        "short " + text, mutate_events=lambda events: [events[0], long_event, *events[-1:]]
    )
    hostile.script(answer, answer)
    assert _stream(name, _model(name, hostile.url, account, max_retries=0))
    small = _model(name, hostile.url, account, max_retries=0, max_stream_event_bytes=4096)
    with pytest.raises(StreamInterruptedError, match="max_event_bytes=4096"):
        _stream(name, small)


# ---- proof age ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ADAPTERS)
def test_max_proof_age_seconds_refuses_an_older_proof(
    name: str, hostile: HostileServer, account: LocalAccount
) -> None:
    """A proof two minutes old passes the default (300 s) and fails a 60 s limit."""
    answer = hostile.signed_chat("an answer", timestamp=int(time.time()) - 120)
    hostile.script(answer, answer)
    assert _call(name, _model(name, hostile.url, account, max_retries=0)) == "an answer"
    strict = _model(name, hostile.url, account, max_retries=0, max_proof_age_seconds=60)
    with pytest.raises(VerificationError, match="max_proof_age_seconds=60"):
        _call(name, strict)


# ---- session requests ----------------------------------------------------------------------------


def _session_tries(proxy: FaultProxy, since: int) -> int:
    return sum("x-upto-session" in seen.headers for seen in proxy.seen[since:])


@pytest.mark.parametrize("opt_in", [False, True])
@pytest.mark.parametrize("name", ADAPTERS)
def test_retry_session_requests_decides_the_resend_after_a_reset(
    name: str,
    opt_in: bool,
    gateway_v2: Any,
    proxy_v2: FaultProxy,
    account: LocalAccount,
    signatures: SignSpy,
) -> None:
    model = _model(
        name,
        proxy_v2.url,
        account,
        timeout=TIMEOUT,
        max_retries=RETRIES,
        retry_session_requests=opt_in,
    )
    assert _call(name, model)  # opens the session (one permit)
    seen = len(proxy_v2.seen)
    proxy_v2.script(fp.reset())
    if opt_in:
        assert _call(name, model)
        assert _session_tries(proxy_v2, seen) == 2
    else:
        with pytest.raises(NetworkError, match="retry_session_requests"):
            _call(name, model)
        assert _session_tries(proxy_v2, seen) == 1
    assert signatures.calls == 1


# ---- bad values ----------------------------------------------------------------------------------

BAD_VALUES = [
    ("budget", -1),
    ("budget", True),
    ("budget", "lots"),
    ("deadline", 0),
    ("deadline", -2.0),
    ("deadline", float("inf")),
    ("deadline", float("nan")),
    ("deadline", True),
    ("max_response_bytes", 0),
    ("max_response_bytes", False),
    ("max_response_bytes", "8MB"),
    ("retry_session_requests", "sometimes"),
    ("max_proof_age_seconds", 0),
    ("max_proof_age_seconds", float("inf")),
    ("max_stream_event_bytes", 1023),
    ("max_stream_event_bytes", 1.5),
]


@pytest.mark.parametrize(("field", "value"), BAD_VALUES, ids=lambda v: repr(v))
@pytest.mark.parametrize("name", ADAPTERS)
def test_bad_values_are_refused_at_construction_naming_the_field(
    name: str, field: str, value: Any, account: LocalAccount
) -> None:
    with pytest.raises(ValueError, match=field) as caught:
        _model(name, "http://127.0.0.1:9", account, **{field: value})
    text = str(caught.value) + repr(caught.value)
    assert _key(account)[2:] not in text
