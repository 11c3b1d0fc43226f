"""The hostile server itself: an honest script through it is a verified, paid answer (so a
refusal in the hardening tests is the client's doing, not a broken server)."""

from __future__ import annotations

import requests
from eth_account.signers.local import LocalAccount
from opengradient_shared import LLM, TEE_LLM
from signing_spy import SignSpy

from hostile import HostileServer, Reply, deep_json, sse

MODEL = TEE_LLM.GPT_4_1_2025_04_14
ASK = [{"role": "user", "content": "hello"}]


def test_honest_v1_answer_is_paid_once_and_verifies(
    hostile: HostileServer, account: LocalAccount, spy: SignSpy
) -> None:
    answer = hostile.paid(hostile.signed_chat("hello there"))
    hostile.script(answer, answer)  # one step per POST: the 402, then the paid answer
    out = LLM(account, hostile.url).chat(MODEL, ASK)
    assert out.chat_output == {"role": "assistant", "content": "hello there"}
    assert out.tee_proof is not None and out.tee_proof.verified
    assert out.tee_proof.tee_id == hostile.tee_id
    assert spy.calls == 1 and len(hostile.payments) == 1
    assert [r.path for r in hostile.received] == [
        "/signing-key",
        "/v1/chat/completions",
        "/v1/chat/completions",
    ]


def test_honest_stream_verifies(hostile: HostileServer, account: LocalAccount) -> None:
    hostile.script(hostile.signed_chat("one two three"))
    chunks = list(LLM(account, hostile.url).chat(MODEL, ASK, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert chunks[-1].is_final and chunks[-1].tee_proof is not None
    assert chunks[-1].tee_proof.verified


def test_honest_tool_call_stream_verifies(hostile: HostileServer, account: LocalAccount) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
    hostile.script(hostile.signed_chat(tool_calls=[call]))
    chunks = list(LLM(account, hostile.url).chat(MODEL, ASK, stream=True))
    assert chunks[-1].tee_proof is not None and chunks[-1].tee_proof.verified


def test_honest_v2_session(hostile: HostileServer, account: LocalAccount, spy: SignSpy) -> None:
    answer = hostile.paid(hostile.signed_chat("hi"), hostile.challenge_v2(), session="s-1")
    hostile.route("/v1/chat/completions", answer)  # every request: 402, paid, session
    llm = LLM(account, hostile.url)
    first, second = llm.chat(MODEL, ASK), llm.chat(MODEL, ASK)
    assert first.payment is not None and first.payment.session_id == "s-1"
    assert second.payment is not None and not second.payment.new_payment
    assert spy.calls == 1
    assert hostile.posts[-1].headers.get("x-upto-session") == "s-1"


def test_pieces_delays_and_recording(hostile: HostileServer) -> None:
    hostile.script(
        Reply(pieces=[b"ab", b"cd"], delay=0.01),
        Reply(pieces=iter([b"x"] * 3), framing="close"),
        Reply.sse([{"a": 1}]),
        Reply(body=deep_json(5, key="k")),
    )
    assert requests.post(hostile.url + "/a", data=b"1").content == b"abcd"
    assert requests.post(hostile.url + "/b").content == b"xxx"
    assert requests.post(hostile.url + "/c").content == sse({"a": 1})
    assert requests.post(hostile.url + "/d").json() == {"k": {"k": {"k": {"k": {"k": 1}}}}}
    assert requests.post(hostile.url + "/e").status_code == 500  # the script ran out
    assert hostile.received[0].body == b"1" and not hostile.errors
