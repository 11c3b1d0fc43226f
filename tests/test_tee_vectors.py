"""The client's verification against the real gateway's captured answers: every vector verifies
through the same path ``LLM`` uses (request rebuilt by ``protocol``, output as received, key
from ``/signing-key``), and fails with any single byte changed."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from gateway_vectors import load_vector
from opengradient_shared import tee
from opengradient_shared.errors import VerificationError
from opengradient_shared.protocol import parse_chat, parse_completion
from opengradient_shared.stream import StreamAssembler
from opengradient_shared.verification import TrustAnchor, VerificationPolicy, check_proof

KEY_ANSWER = json.dumps(load_vector("signing_key.json")).encode()
KEY = TrustAnchor(None, None).key_from_answer(200, KEY_ANSWER, "vector")

CASES = [
    ("chat_request.json", "chat_response.json", False),
    ("tool_request.json", "tool_response.json", False),
    ("completion_request.json", "completion_response.json", True),
]


def _verify(request: dict[str, Any], body: bytes, completion: bool, key: Any = KEY) -> Any:
    answer = parse_completion(body) if completion else parse_chat(body)
    return check_proof(
        VerificationPolicy.RAISE,
        answer.data,
        key,
        request_hash=tee.request_hash(request, completion=completion),
        output_hash=answer.output_hash,
    )


def _stream(request: dict[str, Any], raw: bytes, key: Any = KEY) -> list[Any]:
    def check(fields: Any, output_hash: str) -> Any:
        return check_proof(
            VerificationPolicy.RAISE,
            fields,
            key,
            request_hash=tee.request_hash(request),
            output_hash=output_hash,
        )

    assembler = StreamAssembler(check, None, "")
    return assembler.feed(raw) + assembler.end()


@pytest.mark.parametrize(("request_file", "response_file", "completion"), CASES)
def test_vector_verifies(request_file: str, response_file: str, completion: bool) -> None:
    body = json.dumps(load_vector(response_file)["body"]).encode()
    proof = _verify(load_vector(request_file), body, completion)
    assert proof.verified and proof.tee_id == load_vector("signing_key.json")["tee_id"]


def test_stream_vector_verifies() -> None:
    chunks = _stream(load_vector("chat_stream_request.json"), load_vector("chat_stream.sse"))
    assert chunks[-1].is_final and chunks[-1].tee_proof.verified
    assert sum(c.is_final for c in chunks) == 1


def _flip_char(text: str, index: int) -> str:
    """``text`` with one character changed (a hex digit stays hex, base64 stays base64)."""
    char = text[index]
    return text[:index] + ("1" if char != "1" else "2") + text[index + 1 :]


FIELDS = ["content", "tee_output_hash", "tee_request_hash", "tee_timestamp", "tee_signature"]


@pytest.mark.parametrize(("request_file", "response_file", "completion"), CASES)
@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("where", [0, 7, -2])
def test_one_changed_byte_fails(
    request_file: str, response_file: str, completion: bool, field: str, where: int
) -> None:
    body = load_vector(response_file)["body"]
    if field == "content":
        choice = body["choices"][0]
        if completion:
            choice["text"] = _flip_char(choice["text"], where)
        elif choice["message"].get("tool_calls"):
            function = choice["message"]["tool_calls"][0]["function"]
            function["arguments"] = _flip_char(function["arguments"], where)
        else:
            choice["message"]["content"] = _flip_char(choice["message"]["content"], where)
    elif field == "tee_timestamp":
        body[field] = int(_flip_char(str(body[field]), where))
    elif field == "tee_signature":
        raw = bytearray(base64.b64decode(body[field]))
        raw[where] ^= 0x01
        body[field] = base64.b64encode(bytes(raw)).decode()
    else:
        body[field] = _flip_char(body[field], where)
    with pytest.raises(VerificationError):
        _verify(load_vector(request_file), json.dumps(body).encode(), completion)


@pytest.mark.parametrize(("request_file", "response_file", "completion"), CASES)
def test_one_changed_request_byte_fails(
    request_file: str, response_file: str, completion: bool
) -> None:
    request = load_vector(request_file)
    key = "prompt" if completion else "messages"
    if completion:
        request[key] = _flip_char(request[key], 0)
    else:
        request[key][-1]["content"] = _flip_char(request[key][-1]["content"], 0)
    body = json.dumps(load_vector(response_file)["body"]).encode()
    with pytest.raises(VerificationError, match="request hash"):
        _verify(request, body, completion)


@pytest.mark.parametrize("where", [40, 100, -40])
def test_one_changed_key_byte_fails(where: int) -> None:
    """A different key (one byte of its modulus changed) fails, whether or not it is pinned."""
    data = load_vector("signing_key.json")
    pem = data["public_key"]
    lines = pem.splitlines()
    der = bytearray(base64.b64decode("".join(lines[1:-1])))
    der[where] ^= 0x01
    body_b64 = base64.b64encode(bytes(der)).decode()
    other_pem = "\n".join([lines[0], *[body_b64[i : i + 64] for i in range(0, len(body_b64), 64)]])
    other_pem += "\n" + lines[-1] + "\n"
    # the server's announced tee_id no longer matches the key
    tampered = json.dumps({**data, "public_key": other_pem}).encode()
    with pytest.raises(VerificationError, match="tee_id"):
        TrustAnchor(None, None).key_from_answer(200, tampered, "vector")
    # and the key itself does not verify the answer
    other = tee.load_public_key(other_pem)
    body = json.dumps(load_vector("chat_response.json")["body"]).encode()
    with pytest.raises(VerificationError):
        _verify(load_vector("chat_request.json"), body, False, key=other)


def test_pinned_tee_id_must_match_the_served_key() -> None:
    tee_id = load_vector("signing_key.json")["tee_id"]
    assert TrustAnchor(None, tee_id).key_from_answer(200, KEY_ANSWER, "vector")
    with pytest.raises(VerificationError, match="pinned"):
        TrustAnchor(None, "0x" + "ab" * 32).key_from_answer(200, KEY_ANSWER, "vector")


def test_stream_with_one_changed_content_byte_raises_instead_of_the_final_chunk() -> None:
    raw = load_vector("chat_stream.sse").replace(b'"content": " from"', b'"content": " frum"', 1)
    with pytest.raises(VerificationError):
        _stream(load_vector("chat_stream_request.json"), raw)


def test_warn_policy_returns_the_unverified_proof() -> None:
    body = load_vector("chat_response.json")["body"]
    body["choices"][0]["message"]["content"] += "!"
    answer = parse_chat(json.dumps(body).encode())
    with pytest.warns(UserWarning, match="output hash"):
        proof = check_proof(
            VerificationPolicy.WARN,
            answer.data,
            KEY,
            request_hash=tee.request_hash(load_vector("chat_request.json")),
            output_hash=answer.output_hash,
        )
    assert proof is not None and not proof.verified
