"""The incremental SSE decoder, fed real captured gateway bytes split in every way."""

from __future__ import annotations

import json

import pytest
from gateway_vectors import load_vector
from opengradient_shared.errors import StreamInterruptedError
from opengradient_shared.sse import SSEDecoder

STREAM: bytes = load_vector("chat_stream.sse")


def _decode(pieces: list[bytes]) -> list[dict]:
    decoder = SSEDecoder()
    events = []
    for piece in pieces:
        events += decoder.feed(piece)
    events += decoder.end()
    return events


def _text(events: list[dict]) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events)


def test_whole_capture_decodes_to_its_events() -> None:
    events = _decode([STREAM])
    assert len(events) == STREAM.count(b"data: {")
    assert _text(events) == "Hello from fake-openai. You said: Grüße, say hi 👋"
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert "tee_signature" in events[-1]


def test_byte_by_byte_feeding_gives_the_same_events_even_inside_utf8() -> None:
    assert "👋".encode() in STREAM or b"\\ud83d" in STREAM
    whole = _decode([STREAM])
    assert _decode([STREAM[i : i + 1] for i in range(len(STREAM))]) == whole


def test_raw_utf8_split_across_chunks() -> None:
    payload = 'data: {"choices": [{"delta": {"content": "Grüße 👋"}}]}\n\ndata: [DONE]\n\n'
    raw = payload.encode("utf-8")
    cut = raw.index("👋".encode()) + 2  # inside the 4-byte character
    assert _text(_decode([raw[:cut], raw[cut:]])) == "Grüße 👋"


@pytest.mark.parametrize("newline", ["\r\n", "\r", "\n"])
def test_any_line_ending(newline: str) -> None:
    text = STREAM.decode("utf-8").replace("\n", newline)
    raw = text.encode("utf-8")
    assert _decode([raw]) == _decode([STREAM])
    # a \r\n split between two chunks is one line ending, not two
    assert _decode([raw[i : i + 7] for i in range(0, len(raw), 7)]) == _decode([STREAM])


def test_comments_and_other_fields_are_skipped() -> None:
    raw = (
        b": keep-alive\n\nevent: message\nid: 7\nretry: 100\n"
        b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n'
        b"data: [DONE]\n\n"
    )
    assert _text(_decode([raw])) == "hi"


def test_multi_line_data_is_joined() -> None:
    raw = b'data: {"choices":\ndata: [{"delta": {"content": "x"}}]}\n\ndata: [DONE]\n\n'
    assert _text(_decode([raw])) == "x"


def test_nothing_after_done_is_read() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: [DONE]\n\n") == []
    assert decoder.done
    assert decoder.feed(b'data: {"late": true}\n\n') == []
    assert decoder.end() == []


def test_done_without_trailing_blank_line_at_close() -> None:
    decoder = SSEDecoder()
    decoder.feed(b'data: {"a": 1}\n\ndata: [DONE]')
    assert decoder.end() == []
    assert decoder.done


@pytest.mark.parametrize("cut", [0, 10, STREAM.index(b"data: [DONE]")])
def test_stream_closed_before_done_is_an_error(cut: int) -> None:
    decoder = SSEDecoder()
    decoder.feed(STREAM[:cut])
    with pytest.raises(StreamInterruptedError, match=r"\[DONE\]"):
        decoder.end()


def test_error_event_raises_with_the_servers_message() -> None:
    decoder = SSEDecoder()
    first = decoder.feed(b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n')
    assert len(first) == 1
    with pytest.raises(StreamInterruptedError, match="provider exploded") as caught:
        decoder.feed(b'data: {"error": {"message": "provider exploded"}}\n\n')
    assert "provider exploded" in (caught.value.body or "")


def test_event_that_is_not_json_raises() -> None:
    with pytest.raises(StreamInterruptedError, match="not JSON"):
        SSEDecoder().feed(b"data: {broken\n\n")


def test_events_are_returned_as_soon_as_complete() -> None:
    decoder = SSEDecoder()
    event = {"choices": [{"delta": {"content": "x"}}]}
    line = b"data: " + json.dumps(event).encode()
    assert decoder.feed(line) == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\n") == [event]
