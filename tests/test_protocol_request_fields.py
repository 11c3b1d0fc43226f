"""Request building for the adapters' OpenAI habits (pure): ``max_tokens=None`` leaves the cap
out, ``extra_body`` adds the gateway's optional fields (checked, and outside the TEE request
hash), and transport errors name the server instead of an endpoint or pool internals."""

from __future__ import annotations

from typing import Any

import pytest
from opengradient_shared import InvalidRequestError
from opengradient_shared.openai_schema import EXTRA_CHAT_FIELDS
from opengradient_shared.protocol import (
    failure_reason,
    prepare_chat,
    prepare_completion,
    server_of,
)

MODEL = "openai/gpt-4.1-2025-04-14"
HI = [{"role": "user", "content": "hi"}]


def test_max_tokens_none_leaves_the_cap_out_of_body_and_hash() -> None:
    uncapped, capped = prepare_chat(MODEL, HI, None), prepare_chat(MODEL, HI, 100)
    assert "max_tokens" not in uncapped.body and capped.body["max_tokens"] == 100
    assert uncapped.request_hash != capped.request_hash
    assert "max_tokens" not in prepare_completion(MODEL, "hi", None).body
    assert prepare_chat(MODEL, HI).body["max_tokens"] == 100  # the seed's default stays
    with pytest.raises(InvalidRequestError, match="positive integer or None"):
        prepare_chat(MODEL, HI, 0)


def test_extra_fields_are_sent_but_not_hashed() -> None:
    extra = {
        "top_p": 0.5, "n": 1, "seed": 3, "presence_penalty": -1, "frequency_penalty": 2,
        "logit_bias": {50256: -100}, "user": "u-1",
    }  # fmt: skip
    plain, rich = prepare_chat(MODEL, HI), prepare_chat(MODEL, HI, extra_body=extra)
    assert set(EXTRA_CHAT_FIELDS) == set(extra)
    assert {k: rich.body[k] for k in extra} == {**extra, "logit_bias": {"50256": -100.0}}
    assert rich.request_hash == plain.request_hash  # tee-gateway hashes none of them
    assert "top_p" not in prepare_chat(MODEL, HI, extra_body={"top_p": None}).body


BAD_EXTRAS = [
    pytest.param({"top_k": 3}, "top_k; OpenGradient's gateway reads top_p, n, seed", id="unknown"),
    pytest.param({"top_p": 1.5}, "top_p must be a number from 0 to 1", id="top-p"),
    pytest.param({"top_p": float("nan")}, "top_p", id="nan"),
    pytest.param({"n": 2}, "one choice", id="n"),
    pytest.param({"seed": True}, "seed must be an integer", id="seed-bool"),
    pytest.param({"seed": "7"}, "seed must be an integer", id="seed-text"),
    pytest.param({"presence_penalty": -3}, "from -2 to 2", id="penalty"),
    pytest.param({"logit_bias": {"the": 1}}, "token ids", id="bias-key"),
    pytest.param({"logit_bias": {"1": 101}}, "-100 to 100", id="bias-value"),
    pytest.param({"user": ""}, "non-empty string", id="user"),
    pytest.param(["top_p"], "must be a dict", id="not-a-dict"),
]


@pytest.mark.parametrize(("extra", "named"), BAD_EXTRAS)
def test_bad_extra_fields_are_refused(extra: Any, named: str) -> None:
    with pytest.raises(InvalidRequestError, match=named):
        prepare_chat(MODEL, HI, extra_body=extra)


def test_errors_name_the_server_and_the_reason() -> None:
    assert server_of("http://h:1/prefix/signing-key") == "http://h:1/prefix"
    assert server_of("https://h/v1/chat/completions") == "https://h"
    assert server_of("https://h/v1/completions") == "https://h"
    assert server_of("https://h/other") == "https://h/other"
    pooled = (
        "_HTTPPool(host='127.0.0.1', port=9): Max retries exceeded with url: /signing-key "
        "(Caused by NewConnectionError(\"_HTTPConnection(host='127.0.0.1', port=9): Failed to "
        'establish a new connection: [Errno 111] Connection refused"))'
    )
    assert failure_reason(pooled) == "[Errno 111] Connection refused"
    assert failure_reason("All connection attempts failed") == "All connection attempts failed"
