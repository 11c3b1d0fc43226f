"""Issue 15: interop with the real gateway's behaviour, each item against the local gateway
over real HTTP (real eth-account signatures, real TEE proofs)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from opengradient_shared import LLM, TEE_LLM, TextGenerationOutput, x402SettlementMode
from reliability import faultproxy as fp

MODEL = TEE_LLM.GPT_4_1_2025_04_14
ASK = [{"role": "user", "content": "Say something short."}]


@pytest.fixture
def proxy_v2(gateway_v2: Any) -> Iterator[fp.FaultProxy]:
    """A pass-through proxy recording the POSTs the client sent (no faults scripted)."""
    with fp.FaultProxy(gateway_v2.url) as p:
        yield p


def _chat(llm: LLM, **kwargs: Any) -> TextGenerationOutput:
    out = llm.chat(MODEL, ASK, **kwargs)
    assert isinstance(out, TextGenerationOutput)
    assert out.tee_proof is not None and out.tee_proof.verified
    return out


# ---- 5. /signing-key once per server ---------------------------------------------------------


async def test_concurrent_first_async_calls_fetch_the_signing_key_once(
    account: LocalAccount, gateway_v2: Any
) -> None:
    llm = LLM(account, gateway_v2.url)
    outs = await asyncio.gather(*(llm.achat(MODEL, ASK) for _ in range(8)))
    await llm.aclose()
    assert all(o.tee_proof is not None and o.tee_proof.verified for o in outs)  # type: ignore[union-attr]
    assert gateway_v2.key_request_count == 1


def test_concurrent_first_threaded_calls_fetch_the_signing_key_once(
    account: LocalAccount, gateway: Any
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with LLM(account, gateway.url) as llm, ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: _chat(llm), range(8)))
    assert gateway.key_request_count == 1


def test_a_failed_key_fetch_lets_the_next_call_fetch_again(
    account: LocalAccount, gateway: Any
) -> None:
    from opengradient_shared import VerificationError

    real = gateway.signing_key
    gateway.signing_key = lambda: {"public_key": "not a key"}  # the server's answer is bad once
    with LLM(account, gateway.url) as llm:
        with pytest.raises(VerificationError):
            _chat(llm)
        gateway.signing_key = real
        _chat(llm)


# ---- 6. the unpaid first try sends no generation-1 spelling ---------------------------------


def test_unpaid_first_try_names_no_settlement_mode_then_the_servers_spelling(
    account: LocalAccount, proxy_v2: fp.FaultProxy
) -> None:
    with LLM(account, proxy_v2.url) as llm:
        _chat(llm, x402_settlement_mode=x402SettlementMode.SETTLE)
        _chat(llm, x402_settlement_mode=x402SettlementMode.SETTLE)
    sent = [seen.headers.get("x-settlement-type") for seen in proxy_v2.seen]
    assert sent == [None, "private", "private"]  # 402, paid, session


# ---- sync call inside a running loop while an async call leads --------------------------------


async def test_sync_call_in_the_loop_does_not_block_on_the_loops_own_leader(
    account: LocalAccount, gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An async first call leads (it holds the route while its request is in flight); a sync
    call made on the same event loop's thread meanwhile must not block on the leader's future
    (the leader cannot move while the loop's thread blocks). Spy: every blocking
    ``Future.result`` on the loop's thread on a future not yet done is recorded."""
    loop_thread = threading.get_ident()
    blocked: list[Future[Any]] = []
    real_result = Future.result

    def spying_result(self: Future[Any], timeout: float | None = None) -> Any:
        if threading.get_ident() == loop_thread and not self.done():
            blocked.append(self)
        return real_result(self, timeout)

    monkeypatch.setattr(Future, "result", spying_result)
    gateway.latency = 0.3  # keeps the leader's request in flight while the sync call runs
    llm = LLM(account, gateway.url, timeout=10)
    leader = asyncio.create_task(llm.achat(MODEL, ASK))
    endpoint_url = gateway.url + "/v1/chat/completions"
    exchange = llm._exchange
    while not (
        exchange._fetching.get(gateway.url)
        or (endpoint_url in exchange._endpoints and exchange._endpoints[endpoint_url].opening)
    ):
        await asyncio.sleep(0.001)
    out = _chat(llm)  # blocks this loop's thread until done
    assert blocked == []
    assert out.payment is not None
    first = await leader
    assert isinstance(first, TextGenerationOutput) and first.tee_proof is not None
    await llm.aclose()


# ---- 1. no reuse of a connection the server said it closes -----------------------------------


def _stream_text(llm: LLM) -> str:
    stream = llm.chat(MODEL, ASK, stream=True)
    assert not isinstance(stream, TextGenerationOutput)
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_gateway_stream_says_keep_alive_then_close(account: LocalAccount, gateway: Any) -> None:
    """The local gateway reproduces the real one: a paid stream carries two Connection
    headers, ``keep-alive`` then ``close``; a plain JSON answer keeps the connection."""
    import time

    import requests
    from opengradient_shared.x402 import exact, parse_challenge

    url = gateway.url + "/v1/chat/completions"
    body = {"model": "gpt-4.1-2025-04-14", "stream": True, "messages": ASK}
    auth = {"Authorization": "Bearer x"}
    asked = requests.post(url, json=body, headers=auth, timeout=5)
    assert asked.status_code == 402 and "connection" not in asked.headers
    challenge = parse_challenge(asked.headers, asked.content)
    assert challenge is not None
    paid = exact.sign_payment(account, challenge.accepts[0], challenge, now=int(time.time()))
    headers = {**auth, paid.header_name: paid.header_value}
    with requests.post(url, json=body, headers=headers, timeout=5, stream=True) as answer:
        assert answer.status_code == 200
        assert answer.raw.headers.getlist("Connection") == ["keep-alive", "close"]
        assert answer.content.rstrip().endswith(b"data: [DONE]")


def test_sync_call_after_a_sync_stream_gets_a_fresh_connection(
    account: LocalAccount, gateway: Any
) -> None:
    """Without the fix, the call after the stream reuses the socket the gateway is draining,
    gets no answer and times out (one try, three seconds)."""
    with LLM(account, gateway.url, timeout=3, max_retries=0) as llm:
        _chat(llm)  # pays; the route is known
        text = _stream_text(llm)
        assert text
        _chat(llm)
        _stream_text(llm)
        _chat(llm)


def test_sync_call_after_a_stream_closed_early_gets_a_fresh_connection(
    account: LocalAccount, gateway: Any
) -> None:
    gateway.chunk_delay = 0.01
    with LLM(account, gateway.url, timeout=3, max_retries=0) as llm:
        stream = llm.chat(MODEL, ASK, stream=True)
        assert not isinstance(stream, TextGenerationOutput)
        next(iter(stream))
        stream.close()  # not read to its end
        _chat(llm)


async def test_async_call_after_an_async_stream(account: LocalAccount, gateway: Any) -> None:
    llm = LLM(account, gateway.url, timeout=3, max_retries=0)
    for _ in range(2):
        stream = await llm.achat(MODEL, ASK, stream=True)
        assert not isinstance(stream, TextGenerationOutput)
        assert [c async for c in stream]
        out = await llm.achat(MODEL, ASK)
        assert isinstance(out, TextGenerationOutput) and out.payment is not None
    await llm.aclose()


# ---- an async stream's close releases its connection ------------------------------------------


def _busy_connections(llm: LLM) -> int:
    pool = llm._async._client()._transport._pool  # type: ignore[attr-defined]
    return sum(1 for c in pool.connections if not (c.is_idle() or c.is_closed()))


async def test_async_stream_aclose_releases_the_connection(
    account: LocalAccount, gateway: Any
) -> None:
    gateway.chunk_delay = 0.01
    llm = LLM(account, gateway.url)
    stream = await llm.achat(MODEL, ASK, stream=True)
    assert not isinstance(stream, TextGenerationOutput)
    await stream.__anext__()
    assert _busy_connections(llm) == 1
    await stream.aclose()
    assert _busy_connections(llm) == 0
    await llm.aclose()


async def test_async_stream_close_schedules_the_real_close(
    account: LocalAccount, gateway: Any
) -> None:
    gateway.chunk_delay = 0.01
    llm = LLM(account, gateway.url)
    stream = await llm.achat(MODEL, ASK, stream=True)
    assert not isinstance(stream, TextGenerationOutput)
    await stream.__anext__()
    stream.close()  # the sync spelling, inside the loop: no un-awaited coroutine left behind
    await stream.aclose()  # awaits the close that close() started
    assert _busy_connections(llm) == 0
    await llm.aclose()


# ---- 2. models: the served list, retired names, unknown models --------------------------------


def test_tee_llm_is_the_served_list() -> None:
    from opengradient_shared.types import KNOWN_MODELS

    wire = {m.value.split("/", 1)[1] for m in TEE_LLM}
    assert wire <= KNOWN_MODELS
    assert {"gpt-4o", "claude-3.7-sonnet", "gemini-2.0-flash", "grok-2-1212"}.isdisjoint(
        KNOWN_MODELS
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("GPT_4O", "GPT_4_1_2025_04_14"),
        ("CLAUDE_3_7_SONNET", "CLAUDE_SONNET_4_5"),
        ("CLAUDE_3_5_HAIKU", "CLAUDE_HAIKU_4_5"),
        ("GEMINI_2_0_FLASH", "GEMINI_2_5_FLASH"),
        ("GROK_2_1212", "GROK_4"),
        ("GROK_2_VISION_LATEST", "GROK_4"),
    ],
)
def test_seed_names_of_retired_models_warn_and_mean_their_successor(old: str, new: str) -> None:
    with pytest.warns(FutureWarning, match=f"TEE_LLM.{old} is deprecated.*TEE_LLM.{new}"):
        assert getattr(TEE_LLM, old) is TEE_LLM[new]
    with pytest.warns(FutureWarning):
        assert TEE_LLM[old] is TEE_LLM[new]


def test_gateway_checks_payment_before_the_model(account: LocalAccount, gateway: Any) -> None:
    """Like the real gateway: an unpaid request for an unserved model gets the 402, a paid one
    the 400 "Model '<m>' is not supported" (the payment was taken)."""
    with LLM(account, gateway.url, allow_unknown_models=True) as llm:
        from opengradient_shared import InvalidRequestError

        with pytest.raises(InvalidRequestError, match="Model 'gpt-4o' is not supported"):
            llm.chat("openai/gpt-4o", ASK)
    assert gateway.request_count == 2  # the 402, then the paid request refused with 400
    assert len(gateway.ledger.entries) == 1


def test_unknown_model_is_refused_before_anything_is_sent(
    account: LocalAccount, gateway: Any, spy: Any
) -> None:
    from opengradient_shared import InvalidRequestError

    with LLM(account, gateway.url) as llm:
        with pytest.raises(InvalidRequestError, match=r"'gpt-4o'.*TEE_LLM.GPT_4_1_2025_04_14"):
            llm.chat("openai/gpt-4o", ASK)
        with pytest.raises(InvalidRequestError, match="allow_unknown_models=True"):
            llm.completion("openai/gpt-9-preview", "hi")
    assert gateway.request_count == 0 and gateway.key_request_count == 0
    assert spy.calls == 0


async def test_unknown_model_is_refused_before_paying_async(
    account: LocalAccount, gateway_v2: Any, spy: Any
) -> None:
    from opengradient_shared import InvalidRequestError

    llm = LLM(account, gateway_v2.url)
    with pytest.raises(InvalidRequestError):
        await llm.achat("anthropic/claude-3.7-sonnet", ASK, stream=True)
    with pytest.raises(InvalidRequestError):
        await llm.acompletion("x-ai/grok-2-1212", "hi")
    await llm.aclose()
    assert gateway_v2.request_count == 0 and spy.calls == 0


def test_served_names_compare_case_insensitively(account: LocalAccount, gateway: Any) -> None:
    with LLM(account, gateway.url) as llm:
        _chat_model = llm.chat(" openai/GPT-4.1 ", ASK)
        assert isinstance(_chat_model, TextGenerationOutput)


# ---- 4. receipts: only what the server's settlement header says ---------------------------------


def _receipt_of(account: LocalAccount, challenge: Any, answer: Any) -> Any:
    from opengradient_shared.exchange import Exchange
    from opengradient_shared.protocol import prepare_chat
    from opengradient_shared.verification import TrustAnchor, VerificationPolicy
    from opengradient_shared.x402.policy import PaymentPolicy

    exchange = Exchange(
        account=account,
        policy=PaymentPolicy(),
        verification=VerificationPolicy.OFF,
        anchor=TrustAnchor(None, None),
    )
    flow = exchange.flow("http://gw.test", prepare_chat(MODEL, ASK))
    next(flow)
    flow.send(challenge)
    with pytest.raises(StopIteration) as stop:
        flow.send(answer)
    return stop.value.value.receipt


def _v1_challenge() -> Any:
    import json

    from opengradient_shared.exchange import HttpResponse

    accepts = {
        "scheme": "exact",
        "network": "og-evm",
        "maxAmountRequired": "1000",
        "payTo": "0x" + "11" * 20,
        "maxTimeoutSeconds": 60,
        "asset": "0x094E464A23B90A71a0894D5D1e5D470FfDD074e1",
        "extra": {"name": "OUSDC", "version": "2"},
    }
    body = {"x402Version": 1, "error": "pay", "accepts": [accepts]}
    return HttpResponse(402, {}, json.dumps(body).encode())


def _v2_challenge() -> Any:
    import base64
    import json

    from gateway_vectors import load_vector
    from opengradient_shared.exchange import HttpResponse

    decoded = load_vector("payment_required.json")["PAYMENT-REQUIRED(decoded)"]
    header = base64.b64encode(json.dumps(decoded).encode()).decode()
    return HttpResponse(402, {"PAYMENT-REQUIRED": header}, b"{}")


def _ok(**headers: str) -> Any:
    from opengradient_shared.exchange import HttpResponse

    return HttpResponse(200, headers, b"{}")


@pytest.mark.parametrize("header", [None, "not base64!", "bm90IGpzb24="])
def test_v1_receipt_without_a_readable_settlement_claims_no_success(
    account: LocalAccount, header: str | None
) -> None:
    answer = _ok(**({"X-PAYMENT-RESPONSE": header} if header else {}))
    receipt = _receipt_of(account, _v1_challenge(), answer)
    assert receipt.success is None and receipt.transaction is None
    assert receipt.cost == receipt.amount == 1000  # the authorized price of this call


def test_v1_receipt_reads_the_settlement(account: LocalAccount) -> None:
    from opengradient_shared.x402 import encode_header

    report = encode_header({"success": True, "transaction": "0xabc", "network": "og-evm"})
    receipt = _receipt_of(account, _v1_challenge(), _ok(**{"x-payment-response": report}))
    assert receipt.success is True and receipt.transaction == "0xabc"


def test_v2_receipt_reads_payment_response(account: LocalAccount) -> None:
    from opengradient_shared.x402 import encode_header

    report = encode_header(
        {"success": True, "transaction": "0xfeed", "network": "eip155:8453", "amount": "42"}
    )
    answer = _ok(**{"X-Upto-Session": "s1", "PAYMENT-RESPONSE": report})
    receipt = _receipt_of(account, _v2_challenge(), answer)
    assert receipt.success is True and receipt.transaction == "0xfeed"
    assert receipt.session_id == "s1" and receipt.cost == 42


def test_v2_session_receipt_without_payment_response(account: LocalAccount) -> None:
    receipt = _receipt_of(account, _v2_challenge(), _ok(**{"X-Upto-Session": "s1"}))
    assert receipt.success is None and receipt.transaction is None and receipt.cost is None


def test_v2_failed_settlement_is_reported(account: LocalAccount) -> None:
    from opengradient_shared.x402 import encode_header

    report = encode_header({"success": False, "errorReason": "insufficient_funds"})
    answer = _ok(**{"X-Upto-Session": "s1", "PAYMENT-RESPONSE": report})
    assert _receipt_of(account, _v2_challenge(), answer).success is False


def test_local_v1_gateway_receipt(account: LocalAccount, gateway: Any) -> None:
    with LLM(account, gateway.url) as llm:
        receipt = _chat(llm).payment
    (entry,) = gateway.ledger.entries
    assert receipt is not None and receipt.success is True
    assert receipt.transaction == entry.transaction and receipt.cost == 1000


# ---- the adapters carry allow_unknown_models to the transport ---------------------------------


def test_langchain_adapter_refuses_unknown_models_unless_allowed(
    account: LocalAccount, gateway: Any
) -> None:
    from opengradient_shared import InvalidRequestError

    from langchain_opengradient import ChatOpenGradient

    key = account.key.hex()
    careful = ChatOpenGradient(model="openai/gpt-9-preview", private_key=key, base_url=gateway.url)
    with pytest.raises(InvalidRequestError, match="allow_unknown_models"):
        careful.invoke("hi")
    assert gateway.request_count == 0
    bold = ChatOpenGradient(
        model="openai/gpt-9-preview",
        private_key=key,
        base_url=gateway.url,
        allow_unknown_models=True,
    )
    with pytest.raises(InvalidRequestError, match="Model 'gpt-9-preview' is not supported"):
        bold.invoke("hi")  # reached the gateway, which took the payment first


def test_llamaindex_adapter_refuses_unknown_models_unless_allowed(
    account: LocalAccount, gateway: Any
) -> None:
    from llama_index.core.llms import ChatMessage
    from opengradient_shared import InvalidRequestError

    from llamaindex_opengradient import OpenGradient

    key = account.key.hex()
    ask = [ChatMessage(role="user", content="hi")]
    careful = OpenGradient(model="openai/gpt-9-preview", private_key=key, base_url=gateway.url)
    with pytest.raises(InvalidRequestError, match="allow_unknown_models"):
        careful.chat(ask)
    assert gateway.request_count == 0
    bold = OpenGradient(
        model="openai/gpt-9-preview",
        private_key=key,
        base_url=gateway.url,
        allow_unknown_models=True,
    )
    assert bold.transport.allow_unknown_models
    with pytest.raises(InvalidRequestError, match="is not supported"):
        bold.chat(ask)
