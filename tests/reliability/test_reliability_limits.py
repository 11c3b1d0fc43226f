"""Resource limits against a hostile server (``tests/hostile``): an answer larger than
``max_response_bytes`` — announced or endless, a 200, an error body, a 402 or ``/signing-key``,
streamed or not — is cut without reading past the limit (bounded time and memory, traced with
``tracemalloc``), and a stream that never ends or drips one byte at a time ends by the call's
deadline, in both drivers and through LangChain. Nothing is signed in any of these cases."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from harness import MESSAGES, MODEL, within
from hostile import HostileServer, Reply, chat_events, sse_event
from opengradient_shared import (
    LLM,
    NetworkError,
    ServerError,
    StreamInterruptedError,
    TextGenerationOutput,
)

LIMIT = 1024 * 1024  # the tests' max_response_bytes: 1 MiB
HUGE = 500 * 1024 * 1024  # what the server claims or would send: 500 MB
BLOCK = b"x" * 65536
MARGIN = 2.0  # scheduling slack on the loaded test machine


def _endless() -> Iterator[bytes]:
    return itertools.repeat(BLOCK)


HUGE_ANSWERS = [
    pytest.param(Reply(pieces=_endless()), id="200-endless-chunked"),
    pytest.param(Reply(pieces=_endless(), framing="close"), id="200-endless-until-close"),
    pytest.param(Reply(pieces=_endless(), framing="length", length=HUGE), id="200-announced"),
    pytest.param(Reply(status=500, pieces=_endless()), id="500-endless"),
    pytest.param(Reply(status=402, pieces=_endless()), id="402-endless"),
    pytest.param(Reply(status=402, pieces=_endless(), framing="length", length=HUGE), id="402-ann"),
]


def _traced(call: Any) -> tuple[BaseException, int]:
    """Run ``call``, expecting an error; return it and the peak of traced memory."""
    tracemalloc.start()
    try:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - the caller asserts the type
            error: BaseException = exc
        else:
            raise AssertionError("the call did not fail")
        return error, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("reply", HUGE_ANSWERS)
def test_huge_answer_is_cut_at_the_limit(
    hostile: HostileServer, account: Any, spy: Any, reply: Reply
) -> None:
    hostile.script(reply)
    llm = LLM(account, hostile.url, max_response_bytes=LIMIT, timeout=5, max_retries=0)
    with within(5 + MARGIN):
        error, peak = _traced(lambda: llm.chat(MODEL, MESSAGES))
    assert isinstance(error, ServerError) and "max_response_bytes=1048576" in str(error)
    assert peak < 8 * LIMIT, f"peak {peak} bytes"
    assert spy.calls == 0
    llm.close()


@pytest.mark.parametrize("reply", HUGE_ANSWERS[:3])
async def test_async_huge_answer_is_cut_at_the_limit(
    hostile: HostileServer, account: Any, spy: Any, reply: Reply
) -> None:
    hostile.script(reply)
    llm = LLM(account, hostile.url, max_response_bytes=LIMIT, timeout=5, max_retries=0)
    tracemalloc.start()
    try:
        with within(5 + MARGIN), pytest.raises(ServerError, match="max_response_bytes"):
            await llm.achat(MODEL, MESSAGES)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * LIMIT, f"peak {peak} bytes"
    assert spy.calls == 0
    await llm.aclose()


def test_huge_signing_key_answer_is_cut(hostile: HostileServer, account: Any, spy: Any) -> None:
    hostile.route("/signing-key", Reply(pieces=_endless()))
    llm = LLM(account, hostile.url, max_response_bytes=LIMIT, timeout=5, max_retries=0)
    with within(5 + MARGIN), pytest.raises(ServerError, match="max_response_bytes"):
        llm.chat(MODEL, MESSAGES)
    assert hostile.posts == [] and spy.calls == 0
    llm.close()


def test_default_limit_cuts_a_500_mb_answer(hostile: HostileServer, account: Any, spy: Any) -> None:
    """The default (8 MiB) at work on the issue's 500 MB answer."""
    hostile.script(Reply(pieces=_endless(), framing="length", length=HUGE))
    hostile.script(Reply(pieces=_endless()))
    with LLM(account, hostile.url, timeout=5, max_retries=0) as llm:
        for _ in range(2):
            with within(5 + MARGIN), pytest.raises(ServerError, match="8388608"):
                llm.chat(MODEL, MESSAGES)
    assert spy.calls == 0


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_compressed_bomb_is_cut_by_its_decoded_size(
    hostile: HostileServer, account: Any, spy: Any, driver: str
) -> None:
    """A small gzip body (20 KB on the wire) that inflates to 20 MiB: its Content-Length is
    under the limit, yet only the decoded bytes count."""
    bomb = gzip.compress(b"\0" * (20 * LIMIT))
    assert len(bomb) < LIMIT
    hostile.script(Reply(body=bomb, headers={"Content-Encoding": "gzip"}))
    llm = LLM(account, hostile.url, max_response_bytes=LIMIT, timeout=5, max_retries=0)
    call = (
        (lambda: llm.chat(MODEL, MESSAGES))
        if driver == "sync"
        else (lambda: asyncio.run(llm.achat(MODEL, MESSAGES)))
    )
    with within(5 + MARGIN):
        error, peak = _traced(call)
    assert isinstance(error, ServerError) and "max_response_bytes" in str(error)
    assert peak < 8 * LIMIT, f"peak {peak} bytes"
    assert spy.calls == 0
    llm.close()


def test_answer_under_the_limit_is_read(hostile: HostileServer, account: Any) -> None:
    """Control: an honest answer of a few hundred bytes passes a limit just above it."""
    hostile.script(hostile.signed_chat("small and honest"))
    with LLM(account, hostile.url, max_response_bytes=4096) as llm:
        out = llm.chat(MODEL, MESSAGES)
    assert isinstance(out, TextGenerationOutput) and out.tee_proof is not None
    assert out.tee_proof.verified


# ---- streams ---------------------------------------------------------------------------

EVENT = sse_event(chat_events("gpt-4.1-2025-04-14", "more")[0])


def _flood() -> Reply:
    """An endless stream of well-formed content events, as fast as the socket takes them."""
    return Reply(headers={"Content-Type": "text/event-stream"}, pieces=itertools.repeat(EVENT))


def _drip(interval: float = 0.05) -> Reply:
    """An endless stream of one byte every ``interval`` seconds (never idle for a timeout)."""
    data = itertools.cycle(EVENT)
    return Reply(
        headers={"Content-Type": "text/event-stream"},
        pieces=(bytes([b]) for b in data),
        delay=interval,
    )


def test_endless_stream_is_cut_at_the_limit(hostile: HostileServer, account: Any) -> None:
    hostile.script(_flood())
    llm = LLM(account, hostile.url, max_response_bytes=LIMIT, timeout=5, deadline=60)
    started = time.monotonic()
    with pytest.raises(StreamInterruptedError, match="max_response_bytes"):
        for _ in llm.chat(MODEL, MESSAGES, stream=True):
            assert time.monotonic() - started < 30, "the stream was not cut"
    llm.close()


async def test_async_endless_stream_is_cut_at_the_limit(
    hostile: HostileServer, account: Any
) -> None:
    hostile.script(_flood())
    llm = LLM(account, hostile.url, max_response_bytes=LIMIT, timeout=5, deadline=60)
    stream = await llm.achat(MODEL, MESSAGES, stream=True)
    with pytest.raises(StreamInterruptedError, match="max_response_bytes"):
        async for _ in stream:
            pass
    await llm.aclose()


STREAM_FLOODS = [
    pytest.param(lambda: _flood(), id="chunked"),
    pytest.param(
        lambda: Reply(
            headers={"Content-Type": "text/event-stream"},
            pieces=itertools.repeat(EVENT),
            framing="close",
        ),
        id="until-close",
    ),
    pytest.param(
        lambda: Reply(
            headers={"Content-Type": "text/event-stream", "Content-Encoding": "gzip"},
            body=gzip.compress(EVENT * (20 * LIMIT // len(EVENT))),
        ),
        id="gzip-bomb",
    ),
]


@pytest.mark.parametrize("make_reply", STREAM_FLOODS)
@pytest.mark.parametrize("driver", ["sync", "async"])
def test_stream_flood_is_cut_with_bounded_memory(
    hostile: HostileServer, account: Any, make_reply: Any, driver: str
) -> None:
    hostile.script(make_reply())
    llm = LLM(account, hostile.url, max_response_bytes=LIMIT, timeout=5, deadline=30)

    def read() -> None:
        for _ in llm.chat(MODEL, MESSAGES, stream=True):
            pass

    async def aread() -> None:
        stream = await llm.achat(MODEL, MESSAGES, stream=True)
        async for _ in stream:
            pass

    with within(30 + MARGIN):
        error, peak = _traced(read if driver == "sync" else lambda: asyncio.run(aread()))
    assert isinstance(error, StreamInterruptedError), error
    assert "max_response_bytes" in str(error)
    assert peak < 8 * LIMIT, f"peak {peak} bytes"
    llm.close()


def test_dripping_stream_ends_by_the_default_deadline(hostile: HostileServer, account: Any) -> None:
    """timeout 0.5 s and one retry: the stream must be over 1 s after the call started,
    though a byte arrives every 0.05 s (no read ever times out)."""
    hostile.script(_drip())
    llm = LLM(account, hostile.url, timeout=0.5, max_retries=1)
    with within(1.0 + MARGIN), pytest.raises(StreamInterruptedError, match="deadline"):
        for _ in llm.chat(MODEL, MESSAGES, stream=True):
            pass
    llm.close()


async def test_async_dripping_stream_ends_by_the_default_deadline(
    hostile: HostileServer, account: Any
) -> None:
    hostile.script(_drip())
    llm = LLM(account, hostile.url, timeout=0.5, max_retries=1)
    with within(1.0 + MARGIN), pytest.raises(StreamInterruptedError, match="deadline"):
        stream = await llm.achat(MODEL, MESSAGES, stream=True)
        async for _ in stream:
            pass
    await llm.aclose()


def test_dripping_stream_ends_by_an_explicit_deadline(hostile: HostileServer, account: Any) -> None:
    hostile.script(_drip())
    llm = LLM(account, hostile.url, timeout=10, deadline=1.0)
    with within(1.0 + MARGIN), pytest.raises(StreamInterruptedError, match="deadline"):
        for _ in llm.chat(MODEL, MESSAGES, stream=True):
            pass
    llm.close()


def test_langchain_streaming_invoke_against_a_drip_is_bounded(
    hostile: HostileServer, account: Any
) -> None:
    """The issue's case: ``ChatOpenGradient(timeout=..., streaming=True).invoke`` against a
    one-byte-at-a-time stream ran for ever; now it ends by timeout x (max_retries + 1)."""
    lc = pytest.importorskip("langchain_opengradient")
    hostile.script(_drip())
    chat = lc.ChatOpenGradient(
        model=MODEL.value,
        base_url=hostile.url,
        private_key=bytes(account.key).hex(),
        timeout=0.5,
        max_retries=1,
        streaming=True,
    )
    with within(1.0 + MARGIN), pytest.raises(StreamInterruptedError):
        chat.invoke("hello")


def test_explicit_deadline_bounds_a_plain_call_across_retries(
    hostile: HostileServer, account: Any, spy: Any
) -> None:
    """Each try stalls past its timeout; five retries would take 6 s, the deadline stops the
    call at 1.5 s."""
    stall = Reply(stall=5.0)
    hostile.script(*[stall] * 6)
    llm = LLM(account, hostile.url, timeout=1.0, max_retries=5, deadline=1.5)
    with within(1.5 + MARGIN), pytest.raises(NetworkError, match="deadline|timed out"):
        llm.chat(MODEL, MESSAGES)
    assert len(hostile.posts) <= 2
    assert spy.calls == 0
    llm.close()


def test_deadline_and_limit_are_validated(account: Any) -> None:
    for bad in (0, -1, 1.5, "10", True):
        with pytest.raises(ValueError, match="max_response_bytes"):
            LLM(account, "http://127.0.0.1:9", max_response_bytes=bad)  # type: ignore[arg-type]
    for bad_deadline in (0, -1, float("inf"), "10"):
        with pytest.raises(ValueError, match="deadline"):
            LLM(account, "http://127.0.0.1:9", deadline=bad_deadline)  # type: ignore[arg-type]
