"""Issue 13's funnel, fuzzed: seeded random mutations of real answer, stream event, 402
challenge and ``/signing-key`` shapes (wrong types, huge numbers, NaN/Infinity, deep nesting,
hostile text, missing and extra fields) never escape as anything but an ``OpenGradientError``.

The pure readers are fuzzed in-process with many cases; the client boundary (``LLM.chat``
against the hostile server) with fewer, since each is a real HTTP exchange.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from opengradient_shared import LLM, TEE_LLM, protocol, tee
from opengradient_shared.errors import OpenGradientError
from opengradient_shared.stream import StreamAssembler
from opengradient_shared.verification import TrustAnchor, VerificationPolicy, check_proof
from opengradient_shared.x402 import ChallengeError, parse_challenge

from hostile import HostileServer, Reply, chat_events, deep_json, sse

MODEL = TEE_LLM.GPT_4_1_2025_04_14
REQUEST = protocol.prepare_chat(MODEL, [{"role": "user", "content": "hi"}])
CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
RAW = "\u0000RAW:"
RAW_TEXT = {
    "inf": "Infinity",
    "nan": "NaN",
    "digits": "7" * 5000,
    "float": "1e999",
    "deep": deep_json(5000).decode(),
}
HOSTILE: list[Any] = [
    None,
    True,
    -1,
    0,
    1.5,
    2**300,
    -(2**70),
    "",
    "a",
    "0",
    "-5",
    "\n\x1b[31mCRITICAL:root:x",
    "x" * 3000,
    [],
    {},
    ["a"],
    {"a": None},
    [[[[]]]],
    *(RAW + name for name in RAW_TEXT),
]


def _dumps(value: Any) -> bytes:
    text = json.dumps(value)
    for name, raw in RAW_TEXT.items():
        text = text.replace(json.dumps(RAW + name), raw)
    return text.encode()


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) of a JSON document."""
    found: list[tuple[Any, Any]] = []
    keys = node.keys() if isinstance(node, dict) else range(len(node))
    for key in list(keys):
        found.append((node, key))
        child = node[key]
        if isinstance(child, dict | list):
            found.extend(_slots(child))
    return found


def _hostile(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(HOSTILE))


def _mutate(document: Any, rng: random.Random) -> Any:
    """The document with one to three random hostile edits."""
    doc = json.loads(json.dumps(document))
    for _ in range(rng.randint(1, 3)):
        slots = _slots(doc) if isinstance(doc, dict | list) else []
        if not slots or rng.random() < 0.03:
            return _hostile(rng)
        container, key = rng.choice(slots)
        action = rng.random()
        if action < 0.65:
            container[key] = _hostile(rng)
        elif action < 0.8 and isinstance(container, dict):
            del container[key]
        elif isinstance(container, dict):
            container[rng.choice(["index", "id", "usage", "tee_id", "name", "zz"])] = _hostile(rng)
        else:
            container.append(rng.choice([_hostile(rng), copy.deepcopy(container[key])]))
    return doc


def _answer(server: HostileServer) -> dict[str, Any]:
    message = {"role": "assistant", "content": "", "tool_calls": [CALL]}
    return {
        "id": "x",
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        **server.proof(REQUEST.body, "", [CALL]),
    }


def _events(server: HostileServer) -> list[Any]:
    events: list[Any] = chat_events("m", "", [CALL])
    final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    events.append(
        {**final, "usage": {"prompt_tokens": 1}, **server.proof(REQUEST.body, "", [CALL])}
    )
    return events


def _check(key: Any) -> Callable[[Any, str], Any]:
    return partial(
        check_proof,
        VerificationPolicy.RAISE,
        key=key,
        request_hash=REQUEST.request_hash,
        now=time.time(),
        max_age_seconds=300,
    )


@pytest.fixture(scope="module")
def server(tee_signing_key_pem: bytes) -> HostileServer:
    """A hostile server's keys, not started (the pure fuzz needs only its proofs)."""
    return HostileServer(signing_key_pem=tee_signing_key_pem)


def _only_our_errors(run: Callable[[], Any], *allowed: type[BaseException]) -> None:
    try:
        run()
    except (OpenGradientError, *allowed):
        pass


@pytest.mark.parametrize("seed", range(4))
def test_fuzzed_answers(server: HostileServer, seed: int) -> None:
    rng = random.Random(seed)
    key = tee.load_public_key(server.public_key_pem)
    base = _answer(server)

    def read(body: bytes) -> None:
        answer = protocol.parse_chat(body)
        _check(key)(answer.data, output_hash=answer.output_hash)

    read(_dumps(base))  # the unmutated answer verifies
    for _ in range(150):
        _only_our_errors(partial(read, _dumps(_mutate(base, rng))))


@pytest.mark.parametrize("seed", range(4))
def test_fuzzed_stream_events(server: HostileServer, seed: int) -> None:
    rng = random.Random(seed)
    key = tee.load_public_key(server.public_key_pem)
    base = _events(server)

    def read(data: bytes, cut: int) -> None:
        def check(fields: Any, output_hash: str) -> Any:
            return _check(key)(fields, output_hash=output_hash)

        assembler = StreamAssembler(check, None, "", mode=rng.choice(["incremental", "buffer"]))
        assembler.feed(data[:cut])
        assembler.feed(data[cut:])
        assembler.end()

    whole = sse(*[json.loads(_dumps(e)) for e in base])
    read(whole, len(whole) // 2)  # the unmutated stream verifies
    for _ in range(150):
        events = list(base)
        at = rng.randrange(len(events))
        events[at] = _mutate(events[at], rng)
        if rng.random() < 0.2:
            events.insert(rng.randrange(len(events)), _mutate(base[0], rng))
        data = b"".join(b"data: " + _dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        _only_our_errors(partial(read, data, rng.randrange(len(data) + 1)))


@pytest.mark.parametrize("seed", range(4))
def test_fuzzed_challenges(server: HostileServer, seed: int) -> None:
    rng = random.Random(seed)
    v1 = server.challenge_v1().body
    v2 = {"x402Version": 2, "resource": {"url": "u"}, "accepts": [server.v2_entry()]}
    assert parse_challenge({}, _dumps(v1)) is not None
    for _ in range(150):
        body = _dumps(_mutate(v1, rng))
        header = base64.b64encode(_dumps(_mutate(v2, rng))).decode()
        _only_our_errors(partial(parse_challenge, {}, body), ChallengeError)
        _only_our_errors(
            partial(parse_challenge, {"PAYMENT-REQUIRED": header}, b""), ChallengeError
        )


@pytest.mark.parametrize("seed", range(2))
def test_fuzzed_signing_keys(server: HostileServer, seed: int) -> None:
    rng = random.Random(seed)
    base = server.signer.signing_key_info()
    anchor = TrustAnchor(None, None)
    anchor.key_from_answer(200, _dumps(base), "u")
    for _ in range(150):
        _only_our_errors(partial(anchor.key_from_answer, 200, _dumps(_mutate(base, rng)), "u"))


def test_fuzzed_exchanges_through_the_client(hostile: HostileServer, account: LocalAccount) -> None:
    """The client boundary: answers, streams and challenges over real HTTP."""
    rng = random.Random(13)
    llm = LLM(account, hostile.url, max_retries=0)
    entry_v1 = hostile.v1_entry()
    for round_ in range(45):
        kind = round_ % 3
        stream = kind == 1
        if kind == 0:
            hostile.script(Reply(body=_dumps(_mutate(_answer(hostile), rng))))
        elif kind == 1:
            events = [_mutate(e, rng) if rng.random() < 0.3 else e for e in _events(hostile)]
            hostile.script(Reply(headers={"Content-Type": "text/event-stream"}, body=b"".join(
                b"data: " + _dumps(e) + b"\n\n" for e in events
            ) + b"data: [DONE]\n\n"))  # fmt: skip
        else:
            challenge = _mutate({"x402Version": 1, "accepts": [entry_v1]}, rng)
            hostile.script(Reply(status=402, body=_dumps(challenge)), Reply.json({}, 500))
        try:
            out = llm.chat(MODEL, [{"role": "user", "content": "hi"}], stream=stream)
            if stream:
                list(out)  # type: ignore[call-overload]
        except OpenGradientError:
            pass
    assert not hostile.errors
