"""Issue 13, parsing resources and escaping, against the hostile server: deep nesting, wrong
types, huge numbers, oversized stream events and hostile text end as an ``OpenGradientError``
subclass with a bounded, escaped message (never a raw exception, a crash or unbounded work),
and a challenge that cannot be read is never signed."""

from __future__ import annotations

import base64
import json
import logging
import sys
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from opengradient_shared import LLM, TEE_LLM
from opengradient_shared.errors import (
    MAX_MESSAGE,
    MalformedAnswerError,
    OpenGradientError,
    PaymentRejectedError,
    ServerError,
    StreamInterruptedError,
    VerificationError,
)
from signing_spy import SignSpy

from hostile import HostileServer, Reply, deep_json, sse
from langchain_opengradient import ChatOpenGradient

MODEL = TEE_LLM.GPT_4_1_2025_04_14
ASK = [{"role": "user", "content": "hi"}]
DEPTH = 100_000
DEEP = deep_json(DEPTH)


def _llm(account: LocalAccount, hostile: HostileServer, **options: Any) -> LLM:
    return LLM(account, hostile.url, max_retries=0, **options)


def test_the_overflow_condition_holds_in_this_process() -> None:
    """eth-account raised the recursion limit, so json.loads alone could overflow the C stack
    on these payloads: the tests below would crash the process if the depth check failed."""
    assert sys.getrecursionlimit() >= DEPTH


# ---- deep nesting -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 402, 500])
def test_deeply_nested_answer_bodies(
    hostile: HostileServer, account: LocalAccount, spy: SignSpy, status: int
) -> None:
    hostile.script(Reply(status=status, body=DEEP))
    with pytest.raises(OpenGradientError):
        _llm(account, hostile).chat(MODEL, ASK)
    assert spy.calls == 0


def test_deeply_nested_object_answer_names_the_depth(
    hostile: HostileServer, account: LocalAccount
) -> None:
    hostile.script(Reply(body=deep_json(DEPTH, key="choices")))
    with pytest.raises(MalformedAnswerError, match="nested deeper"):
        _llm(account, hostile).chat(MODEL, ASK)


def test_deeply_nested_stream_event(hostile: HostileServer, account: LocalAccount) -> None:
    hostile.script(Reply.sse([DEEP.decode()]))
    with pytest.raises(StreamInterruptedError, match="nested deeper"):
        list(_llm(account, hostile).chat(MODEL, ASK, stream=True))


def test_deeply_nested_signing_key(hostile: HostileServer, account: LocalAccount) -> None:
    hostile.route("/signing-key", Reply(body=DEEP))
    with pytest.raises(VerificationError, match="nested deeper"):
        _llm(account, hostile).chat(MODEL, ASK)


def test_deeply_nested_payment_required_header(
    hostile: HostileServer, account: LocalAccount, spy: SignSpy
) -> None:
    header = base64.b64encode(deep_json(20_000)).decode()
    hostile.script(Reply(status=402, body=b"{}", headers={"PAYMENT-REQUIRED": header}))
    with pytest.raises(ServerError, match="nested deeper"):
        _llm(account, hostile).chat(MODEL, ASK)
    assert spy.calls == 0


def test_deeply_nested_answer_through_langchain(
    hostile: HostileServer, account: LocalAccount
) -> None:
    hostile.script(Reply(body=DEEP))
    model = ChatOpenGradient(
        model=MODEL.value, private_key="0x" + bytes(account.key).hex(), base_url=hostile.url
    )
    with pytest.raises(ServerError):
        model.invoke("hi")


# ---- wrongly typed answers ----------------------------------------------------------------------


def _answer(**fields: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": "hi"}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return {"choices": [choice], "model": "m", **fields}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (json.dumps({"choices": ["a", "b"]}).encode(), r"choices\[0\]"),
        (json.dumps({"choices": "abc"}).encode(), "choices"),
        (json.dumps(_answer() | {"choices": [{"index": "a", "message": {}}]}).encode(), "index"),
        (json.dumps({"choices": [{"index": 0, "message": "hi"}]}).encode(), "message"),
        (json.dumps(_answer(usage={"prompt_tokens": "many"})).encode(), "prompt_tokens"),
        (json.dumps(_answer(usage={"prompt_tokens": -3})).encode(), "prompt_tokens"),
        (json.dumps(_answer(usage=[1])).encode(), "usage"),
        (json.dumps(_answer(model=["m"])).encode(), "model"),
        (b'{"choices": [], "usage": {"prompt_tokens": ' + b"9" * 5000 + b"}}", "integer"),
        (b'{"choices": [], "usage": {"prompt_tokens": Infinity}}', "Infinity"),
        (b'{"choices": [], "usage": {"prompt_tokens": 1e999}}', "range"),
        (b'{"choices": [], "usage": {"prompt_tokens": NaN}}', "NaN"),
        (b"\xff\xfe not utf-8", "JSON"),
    ],
)
def test_wrongly_typed_answers_are_server_errors_naming_the_problem(
    hostile: HostileServer, account: LocalAccount, body: bytes, field: str
) -> None:
    hostile.script(Reply(body=body))
    with pytest.raises(MalformedAnswerError, match=field):
        _llm(account, hostile).chat(MODEL, ASK)


@pytest.mark.parametrize(
    "event",
    [
        {"choices": "abc"},
        {"choices": [{"index": "a", "delta": {"content": "x"}}]},
        {"choices": [{"index": 0, "delta": ["x"]}]},
        {"choices": [{"index": 0, "delta": {"content": 5}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": "f"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": "a"}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "type": "magic"}]}}]},
        {"choices": [{"index": 0, "delta": {}}], "usage": {"total_tokens": "7"}},
        {"choices": [{"index": 0, "delta": {}}, {"index": 0, "delta": {}}]},
        '{"choices": [], "usage": {"prompt_tokens": Infinity}}',
        "[1, 2]",
    ],
)
def test_wrongly_typed_stream_events_interrupt_the_stream(
    hostile: HostileServer, account: LocalAccount, event: Any
) -> None:
    hostile.script(hostile.signed_chat("hello", mutate_events=lambda events: [event, *events]))
    with pytest.raises(StreamInterruptedError):
        list(_llm(account, hostile).chat(MODEL, ASK, stream=True))


@pytest.mark.parametrize("stream", [False, True])
def test_negative_http_chunk_size(
    hostile: HostileServer, account: LocalAccount, stream: bool
) -> None:
    headers = {"Transfer-Encoding": "chunked", "Content-Type": "text/event-stream"}
    hostile.script(Reply(headers=headers, pieces=[b"-5\r\nhello\r\n0\r\n\r\n"], framing="close"))
    with pytest.raises(OpenGradientError):
        out = _llm(account, hostile).chat(MODEL, ASK, stream=stream)
        list(out) if stream else None  # type: ignore[call-overload]


# ---- challenges that cannot be read are never signed --------------------------------------------


def _v1_raw(entry_json: str, version: str = "1") -> Reply:
    return Reply(status=402, body=f'{{"x402Version": {version}, "accepts": [{entry_json}]}}')


V1 = json.dumps(HostileServer.v1_entry())


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (_v1_raw(V1, '"abc"'), "x402Version"),
        (_v1_raw(V1.replace('"maxTimeoutSeconds": 300', '"maxTimeoutSeconds": Infinity')), "JSON"),
        (_v1_raw(V1.replace('"maxTimeoutSeconds": 300', '"maxTimeoutSeconds": 1e300')), "integer"),
        (_v1_raw(V1.replace('"maxTimeoutSeconds": 300', '"maxTimeoutSeconds": -5')), "range"),
        (_v1_raw(V1.replace('"1000"', '"-1"')), "maxAmountRequired"),
        (_v1_raw(V1.replace('"1000"', '"1e3"')), "maxAmountRequired"),
        (_v1_raw(V1.replace('"1000"', '"' + "9" * 5000 + '"')), "maxAmountRequired"),
        (_v1_raw(V1.replace("0x7e57CA7E0000000000000000000000000000A402", "alice")), "payTo"),
        (_v1_raw(V1.replace('"extra": {', '"extra": [{').replace('"2"}', '"2"}]')), "extra"),
        (_v1_raw('"not an object"'), "entry"),
        (_v1_raw(V1.replace('"version": "2"', '"version": 2')), "version"),
    ],
)
def test_unreadable_v1_challenges_are_server_errors_and_nothing_is_signed(
    hostile: HostileServer, account: LocalAccount, spy: SignSpy, reply: Reply, problem: str
) -> None:
    hostile.script(reply)
    with pytest.raises(ServerError, match=problem):
        _llm(account, hostile).chat(MODEL, ASK)
    assert spy.calls == 0 and hostile.payments == []


@pytest.mark.parametrize(
    ("entry", "top", "problem"),
    [
        ({"amount": "-1"}, {}, "amount"),
        ({"amount": -1}, {}, "amount"),
        ({"payTo": "0x1234"}, {}, "payTo"),
        ({"asset": None}, {}, "asset"),
        ({}, {"x402Version": "abc"}, "x402Version"),
        ({}, {"accepts": "all"}, "accepts"),
        ({}, {"resource": "here"}, "resource"),
        ({"extra": {"facilitatorAddress": "0x12"}}, {}, "facilitatorAddress"),
        ({"extra": {"facilitatorAddress": "0x" + "1" * 40, "name": ["x"]}}, {}, "name"),
    ],
)
def test_unreadable_v2_challenges_are_server_errors_and_nothing_is_signed(
    hostile: HostileServer,
    account: LocalAccount,
    spy: SignSpy,
    entry: dict[str, Any],
    top: dict[str, Any],
    problem: str,
) -> None:
    hostile.script(hostile.challenge_v2(hostile.v2_entry(**entry), **top))
    with pytest.raises(ServerError, match=problem):
        _llm(account, hostile).chat(MODEL, ASK)
    assert spy.calls == 0 and hostile.payments == []


# ---- stream event size --------------------------------------------------------------------------


def test_a_huge_line_without_newline_is_cut_off_at_the_event_limit(
    hostile: HostileServer, account: LocalAccount
) -> None:
    pieces = [b"data: " + b"x" * 65_536] * 64  # 4 MB, no line end
    hostile.script(Reply(headers={"Content-Type": "text/event-stream"}, pieces=pieces))
    with pytest.raises(StreamInterruptedError, match="max_event_bytes=1048576"):
        list(_llm(account, hostile).chat(MODEL, ASK, stream=True))


def test_the_event_limit_is_configurable(hostile: HostileServer, account: LocalAccount) -> None:
    text = "word " * 1000  # one 5 KB event
    long_event = {"choices": [{"index": 0, "delta": {"content": text}}], "model": "m"}
    answer = hostile.signed_chat(
        "short " + text, mutate_events=lambda events: [events[0], long_event, *events[-1:]]
    )
    hostile.script(answer, answer)
    chunks = list(_llm(account, hostile).chat(MODEL, ASK, stream=True))
    assert chunks[-1].tee_proof is not None and chunks[-1].tee_proof.verified
    small = _llm(account, hostile, max_stream_event_bytes=4096)
    with pytest.raises(StreamInterruptedError, match="max_event_bytes=4096"):
        list(small.chat(MODEL, ASK, stream=True))


# ---- escaping and bounds of server text ---------------------------------------------------------

FORGED = "boom\n\x1b[31mCRITICAL:root:forged line\r\x00"


def _clean(text: str) -> bool:
    return not any(ch in text for ch in "\n\r\x1b\x00")


def test_server_error_text_is_escaped_in_exceptions(
    hostile: HostileServer, account: LocalAccount
) -> None:
    hostile.script(Reply.json({"error": FORGED}, 500))
    with pytest.raises(ServerError) as caught:
        _llm(account, hostile).chat(MODEL, ASK)
    assert "CRITICAL:root:forged" in str(caught.value) and _clean(str(caught.value))
    assert caught.value.body is not None and _clean(caught.value.body)


def test_a_5_mb_server_error_makes_a_bounded_exception(
    hostile: HostileServer, account: LocalAccount
) -> None:
    hostile.script(Reply.json({"error": "A" * 5_000_000}, 500))
    with pytest.raises(ServerError) as caught:
        _llm(account, hostile).chat(MODEL, ASK)
    assert len(str(caught.value)) <= MAX_MESSAGE + 1
    assert caught.value.body is not None and len(caught.value.body) <= 501


def test_stream_error_event_text_is_escaped(hostile: HostileServer, account: LocalAccount) -> None:
    hostile.script(Reply.sse([{"error": {"message": FORGED}}], done=False))
    with pytest.raises(StreamInterruptedError) as caught:
        list(_llm(account, hostile).chat(MODEL, ASK, stream=True))
    assert "forged" in str(caught.value) and _clean(str(caught.value))


def test_payment_rejection_reason_is_escaped(hostile: HostileServer, account: LocalAccount) -> None:
    rejected = Reply.json({"x402Version": 1, "error": FORGED, "accepts": []}, 402)
    hostile.script(hostile.challenge_v1(), rejected)
    with pytest.raises(PaymentRejectedError) as caught:
        _llm(account, hostile).chat(MODEL, ASK)
    assert "forged" in str(caught.value) and _clean(str(caught.value))


def test_server_text_in_the_librarys_log_lines_is_escaped(
    hostile: HostileServer, account: LocalAccount, caplog: pytest.LogCaptureFixture
) -> None:
    def forge(data: dict[str, Any]) -> dict[str, Any]:
        data["tee_id"] = "0xabc" + FORGED
        return data

    hostile.script(hostile.signed_chat("hi", mutate=forge))
    with caplog.at_level(logging.WARNING), pytest.warns(UserWarning):
        out = _llm(account, hostile, verification="warn").chat(MODEL, ASK)
    assert out.tee_proof is not None and not out.tee_proof.verified
    logged = [record.getMessage() for record in caplog.records]
    assert any("forged" in line for line in logged)
    assert all(_clean(line) for line in logged)
    assert "\nCRITICAL" not in caplog.text


def test_sse_sample_helper_is_well_formed() -> None:
    assert sse({"a": 1}) == b'data: {"a": 1}\n\ndata: [DONE]\n\n'
