"""The strict readers of server data (shared/wire.py), the escaping of server text
(errors.excerpt) and the new LLM options, unit by unit."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eth_account import Account
from opengradient_shared import LLM
from opengradient_shared.errors import (
    InvalidRequestError,
    MalformedAnswerError,
    StreamInterruptedError,
    excerpt,
    truncate_body,
)
from opengradient_shared.sse import SSEDecoder
from opengradient_shared.wire import (
    as_address,
    as_amount,
    as_int,
    loads,
    nesting_depth,
    opt_str,
)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"{}", 0),  # fewer brackets than the limit: not scanned
        (b'{"a": [1, {"b": []}]}', 0),
        (b"[" * 70 + b"]" * 70, 65),  # scanning stops just past the limit
        (b'["' + b"[" * 100 + b'"]', 1),  # brackets inside a string do not count
        (b'["\\"' + b"[" * 100 + b'"]', 1),  # nor after an escaped quote
        (b'"' + b"[" * 100, 0),  # an unterminated string swallows the rest
    ],
)
def test_nesting_depth(text: bytes, depth: int) -> None:
    assert nesting_depth(text, 64) == depth


def test_loads_accepts_real_json_and_refuses_the_rest() -> None:
    assert loads(b'{"a": [1, 2.5, "x", null, true]}', "t") == {"a": [1, 2.5, "x", None, True]}
    for bad, why in [
        (b"[" * 65 + b"]" * 65, "nested deeper than 64"),
        (b"[NaN]", "NaN"),
        (b"[-Infinity]", "Infinity"),
        (b"[1e400]", "range"),
        (b"[" + b"1" * 101 + b"]", "integer of 101 digits"),
        (b"\xff", "not JSON"),
        (b"{", "not JSON"),
    ]:
        with pytest.raises(MalformedAnswerError, match=why):
            loads(bad, "t")


def test_typed_getters_name_the_field() -> None:
    with pytest.raises(MalformedAnswerError, match="the server's choices\\[0\\].index should be"):
        as_int("0", "choices[0].index")
    with pytest.raises(MalformedAnswerError, match="out of range"):
        as_int(-1, "n")
    with pytest.raises(MalformedAnswerError, match="should be an integer"):
        as_int(True, "n")
    assert as_amount("1000", "a") == 1000 and as_amount(7, "a") == 7
    for bad in ("-1", "1e3", "", " 1", 1.0, -1, 2**256, None):
        with pytest.raises(MalformedAnswerError):
            as_amount(bad, "amount")
    assert as_address("0x" + "aB" * 20, "payTo")
    with pytest.raises(MalformedAnswerError, match="payTo"):
        as_address("0x1234", "payTo")
    assert opt_str({}, "k", "w") is None
    with pytest.raises(MalformedAnswerError, match="w.k"):
        opt_str({"k": 1}, "k", "w")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a\nb\x1b[31m", "a\\nb\\x1b[31m"),
        ("Grüße 👋", "Grüße 👋"),
        ("\u2028x\x00", "\\u2028x\\x00"),
        (b"\xffok", "\ufffdok"),
        (2**5000, "<an integer of 5001 bits>"),
    ],
)
def test_excerpt_escapes(value: Any, expected: str) -> None:
    assert excerpt(value) == expected


def test_excerpt_and_truncate_body_are_bounded() -> None:
    assert excerpt("x" * 10_000, 50) == "x" * 50 + "…"
    assert len(excerpt(list(range(100_000)))) <= 201
    assert truncate_body("  padded \n") == "padded"
    assert len(truncate_body("y" * 5_000_000)) == 501


def test_every_error_message_is_one_bounded_line() -> None:
    from opengradient_shared.errors import MAX_MESSAGE, ServerError

    assert str(ServerError("a\nb\x1b[2J")) == "a\\nb\\x1b[2J"
    assert len(str(ServerError("\x00" * 10_000))) == MAX_MESSAGE + 1
    assert str(ServerError("plain text, Grüße")) == "plain text, Grüße"


def test_sse_event_limit_counts_data_lines_and_unfinished_lines() -> None:
    decoder = SSEDecoder(max_event_bytes=64)
    assert decoder.feed(b"data: " + json.dumps({"a": "x" * 40}).encode() + b"\n\n")
    with pytest.raises(StreamInterruptedError, match="max_event_bytes=64"):
        SSEDecoder(max_event_bytes=64).feed(b"data: [1,\ndata: " + b"2," * 40 + b"\n")
    with pytest.raises(StreamInterruptedError, match="max_event_bytes=64"):
        SSEDecoder(max_event_bytes=64).feed(b"data: " + b"x" * 100)


def test_sse_decoder_keeps_a_split_crlf_as_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a": 1}\r') == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\r\n") == [{"a": 1}]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("stream_verification", "eager"),
        ("max_proof_age_seconds", 0),
        ("max_proof_age_seconds", float("inf")),
        ("max_stream_event_bytes", 10),
        ("max_stream_event_bytes", "1MB"),
    ],
)
def test_new_options_are_checked(option: str, value: Any) -> None:
    with pytest.raises(InvalidRequestError, match=option):
        LLM(Account.create(), "http://127.0.0.1:9", **{option: value})


def test_new_options_defaults() -> None:
    llm = LLM(Account.create(), "http://127.0.0.1:9")
    assert llm.stream_verification == "incremental"
    assert llm.max_proof_age_seconds == 300
    assert llm.max_stream_event_bytes == 1_048_576
    assert (
        LLM(
            Account.create(), "http://127.0.0.1:9", max_proof_age_seconds=None
        ).max_proof_age_seconds
        is None
    )
