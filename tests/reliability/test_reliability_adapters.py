"""The same faults through both adapters, with the same invariants: a transient fault is retried
by the transport alone (never by the adapter), one settlement per call, a bounded wall time, and
no unverifiable content: a tampered or unsigned answer raises, a stream raises instead of its
final chunk. The fault proxy is the one mock (it stands for a misbehaving network)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faultproxy as fp
import pytest
from faultproxy import FaultProxy
from harness import (
    MESSAGES,
    RETRIES,
    TIMEOUT,
    adapter,
    bound,
    settled_nonces,
    within,
)
from opengradient_shared import (
    ServerError,
    StreamInterruptedError,
    VerificationError,
)

PROMPT = MESSAGES[0]["content"]


def _key(account: Any) -> str:
    return "0x" + bytes(account.key).hex()


class _Adapter:
    """One adapter behind a uniform call/stream interface, built on the proxy's URL."""

    def __init__(self, name: str, url: str, account: Any) -> None:
        self.name = name
        common = {"private_key": _key(account), "base_url": url, "timeout": TIMEOUT}
        if name == "langchain":
            lc = adapter("langchain_opengradient")
            self.model = lc.ChatOpenGradient(
                model="openai/gpt-4.1-2025-04-14", max_retries=RETRIES, **common
            )
        else:
            li = adapter("llamaindex_opengradient")
            self.model = li.OpenGradient(
                model="openai/gpt-4.1-2025-04-14", max_retries=RETRIES, **common
            )

    def call(self) -> str:
        if self.name == "langchain":
            return str(self.model.invoke(PROMPT).content)
        from llama_index.core.llms import ChatMessage

        return str(self.model.chat([ChatMessage(role="user", content=PROMPT)]).message.content)

    def stream(self) -> tuple[list[Any], BaseException | None]:
        """Chunks received before the stream ended, and what it raised (None if nothing)."""
        chunks: list[Any] = []
        try:
            if self.name == "langchain":
                for chunk in self.model.stream(PROMPT):
                    chunks.append(chunk)
            else:
                from llama_index.core.llms import ChatMessage

                for chunk in self.model.stream_chat([ChatMessage(role="user", content=PROMPT)]):
                    chunks.append(chunk)
        except Exception as exc:  # the test asserts the type
            return chunks, exc
        return chunks, None

    @staticmethod
    def has_proof(chunk: Any) -> bool:
        """Whether a streamed chunk carries the final chunk's TEE proof."""
        meta = getattr(chunk, "response_metadata", None) or getattr(chunk, "additional_kwargs", {})
        text = repr(meta)
        return "tee" in text.lower() and "verified" in text.lower()


ADAPTERS = ["langchain", "llamaindex"]


@pytest.fixture(params=ADAPTERS)
def wrapped(request: pytest.FixtureRequest, proxy: FaultProxy, account: Any) -> _Adapter:
    built = _Adapter(request.param, proxy.url, account)
    built.call()  # warm: the first 402 and the signing key are behind us
    return built


def _settled(gateway: Any) -> Callable[[], int]:
    start = len(settled_nonces(gateway))
    return lambda: len(settled_nonces(gateway)) - start


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param([fp.status(503)], id="503-then-ok"),
        pytest.param([fp.reset()], id="reset-then-ok"),
    ],
)
def test_adapter_call_survives_a_transient_fault(
    gateway: Any, proxy: FaultProxy, wrapped: _Adapter, faults: list[fp.Fault]
) -> None:
    clean = wrapped.call()
    settled, seen = _settled(gateway), len(proxy.seen)
    proxy.script(*faults)
    with within(bound()):
        assert wrapped.call() == clean
    tries = proxy.seen[seen:]
    assert len(tries) == len(faults) + 1
    assert len({t.payment_nonce() for t in tries}) == 1
    assert settled() == 1


def test_adapter_does_not_add_retries_of_its_own(
    gateway: Any, proxy: FaultProxy, wrapped: _Adapter
) -> None:
    settled, seen = _settled(gateway), len(proxy.seen)
    proxy.script(*(fp.status(503) for _ in range(3 * (RETRIES + 1))))
    with within(bound()), pytest.raises(ServerError):
        wrapped.call()
    assert len(proxy.seen) - seen == RETRIES + 1
    assert settled() == 0


@pytest.mark.parametrize("fault", [fp.tamper_content, fp.drop_tee], ids=["tampered", "no-tee"])
def test_adapter_call_with_an_unverifiable_answer_raises(
    gateway: Any, proxy: FaultProxy, wrapped: _Adapter, fault: Callable[[], fp.Fault]
) -> None:
    settled = _settled(gateway)
    proxy.script(fault())
    with within(bound()), pytest.raises(VerificationError):
        wrapped.call()
    assert settled() <= 1


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        pytest.param(fp.cut_stream(2), StreamInterruptedError, id="cut"),
        pytest.param(fp.tamper_content(), VerificationError, id="tampered"),
        pytest.param(fp.drop_tee(), VerificationError, id="no-tee"),
    ],
)
def test_adapter_stream_raises_instead_of_the_final_chunk(
    gateway: Any, proxy: FaultProxy, wrapped: _Adapter, fault: fp.Fault, error: type[Exception]
) -> None:
    settled, seen = _settled(gateway), len(proxy.seen)
    proxy.script(fault)
    with within(bound()):
        chunks, raised = wrapped.stream()
    assert isinstance(raised, error), f"expected {error.__name__}, got {raised!r}"
    assert not any(_Adapter.has_proof(c) for c in chunks)
    assert len(proxy.seen) - seen == 1
    assert settled() <= 1


def test_adapter_stream_survives_503_before_the_first_byte(
    gateway: Any, proxy: FaultProxy, wrapped: _Adapter
) -> None:
    settled = _settled(gateway)
    proxy.script(fp.status(503))
    with within(bound()):
        chunks, raised = wrapped.stream()
    assert raised is None
    assert any(_Adapter.has_proof(c) for c in chunks)
    assert settled() == 1


@pytest.mark.parametrize("name", ADAPTERS)
async def test_adapter_async_path_raises_on_tampering(
    gateway: Any, proxy: FaultProxy, account: Any, name: str
) -> None:
    model = _Adapter(name, proxy.url, account).model
    if name == "langchain":
        ask: Any = lambda: model.ainvoke(PROMPT)  # noqa: E731
    else:
        from llama_index.core.llms import ChatMessage

        ask = lambda: model.achat([ChatMessage(role="user", content=PROMPT)])  # noqa: E731
    await ask()
    settled = _settled(gateway)
    proxy.script(fp.tamper_content())
    with within(bound()), pytest.raises(VerificationError):
        await ask()
    assert settled() <= 1
