"""The local gateway's HTTP surface: auth, content type, paths, body limits, keep-alive, slow
clients, and a 400 naming the problem for every bad input — before any payment is settled."""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any

import pytest
import requests
from opengradient_shared.gateway import LocalGateway
from opengradient_shared.x402 import exact, parse_challenge

CHAT = "/v1/chat/completions"
HEADERS = {"Authorization": "Bearer test"}
USER = [{"role": "user", "content": "Hi."}]
BODY = {"model": "gpt-4.1-2025-04-14", "messages": USER}


def _post(gw: Any, body: Any, path: str = CHAT, **headers: str) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    merged = {"Content-Type": "application/json", **HEADERS, **headers}
    return requests.post(gw.url + path, data=data, headers=merged, timeout=10)


def _payment(gw: Any, account: Any) -> str:
    answer = _post(gw, BODY)
    challenge = parse_challenge(answer.headers, answer.content)
    assert challenge is not None
    return exact.sign_payment(
        account, challenge.accepts[0], challenge, now=int(time.time())
    ).header_value


def test_missing_authorization_is_401(gateway: Any) -> None:
    answer = requests.post(gateway.url + CHAT, json=BODY, timeout=5)
    assert answer.status_code == 401 and "Authorization" in answer.json()["error"]
    wrong = requests.post(
        gateway.url + CHAT, json=BODY, headers={"Authorization": "Basic x"}, timeout=5
    )
    assert wrong.status_code == 401


def test_wrong_content_type_is_415(gateway: Any) -> None:
    answer = _post(gateway, json.dumps(BODY).encode(), **{"Content-Type": "text/plain"})
    assert answer.status_code == 415 and "text/plain" in answer.json()["error"]
    ok = _post(gateway, BODY, **{"Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 402  # the right type goes on to ask for payment


def test_unknown_paths_are_404_and_wrong_methods_405(gateway: Any) -> None:
    count = gateway.request_count
    assert requests.get(gateway.url + "/v1/models", timeout=5).status_code == 404
    assert _post(gateway, BODY, "/v1/embeddings").status_code == 404
    answer = requests.get(gateway.url + CHAT, timeout=5)
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"
    assert gateway.request_count == count  # only inference POSTs are counted


def test_body_over_the_limit_is_413(gateway: Any) -> None:
    big = {**BODY, "messages": [{"role": "user", "content": "x" * (9 * 2**20)}]}
    answer = _post(gateway, big)
    assert answer.status_code == 413 and "MiB" in answer.json()["error"]
    assert gateway.request_count == 1 and gateway.ledger.entries == []


def test_post_without_content_length_is_411(gateway: Any) -> None:
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 411 ")


def test_keep_alive_serves_several_requests_on_one_connection(gateway: Any) -> None:
    host, port = gateway.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for _ in range(3):
            connection.request(
                "POST", CHAT, json.dumps(BODY), {**HEADERS, "Content-Type": "application/json"}
            )
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 402
            sock = connection.sock
            assert sock is not None
        assert connection.sock is sock  # the same socket throughout
    finally:
        connection.close()
    assert gateway.request_count == 3


def test_a_silent_client_is_disconnected(tee_signing_key_pem: bytes) -> None:
    """A client that sends half a request and goes quiet loses its connection after
    ``socket_timeout`` instead of holding a worker forever."""
    with LocalGateway(socket_timeout=0.2, signing_key_pem=tee_signing_key_pem) as gw:
        host, port = gw.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{".encode()
            )
            assert sock.recv(4096) == b""  # closed by the gateway
        assert (
            requests.post(gw.url + CHAT, json=BODY, headers=HEADERS, timeout=5).status_code == 402
        )


BAD_CHAT = [
    pytest.param(b"{not json", "malformed JSON", id="malformed-json"),
    pytest.param([1, 2], "JSON object", id="not-an-object"),
    pytest.param({"messages": USER}, "'model'", id="no-model"),
    pytest.param({"model": 7, "messages": USER}, "'model'", id="model-not-a-string"),
    pytest.param({"model": "gpt-4.1-2025-04-14"}, "'messages'", id="no-messages"),
    pytest.param({"model": "gpt-4.1-2025-04-14", "messages": []}, "non-empty", id="empty-messages"),
    pytest.param(
        {"model": "gpt-4.1-2025-04-14", "messages": "hi"}, "'messages'", id="messages-not-a-list"
    ),
    pytest.param(
        {"model": "gpt-4.1-2025-04-14", "messages": ["hi"]},
        "messages[0]",
        id="message-not-an-object",
    ),
    pytest.param(
        {"model": "gpt-4.1-2025-04-14", "messages": [{"role": "developer", "content": "x"}]},
        "role",
        id="bad-role",
    ),
    pytest.param(
        {"model": "gpt-4.1-2025-04-14", "messages": [{"role": "user"}]}, "content", id="no-content"
    ),
    pytest.param(
        {"model": "gpt-4.1-2025-04-14", "messages": [{"role": "user", "content": 5}]},
        "content",
        id="content-number",
    ),
    pytest.param(
        {"model": "gpt-4.1-2025-04-14", "messages": [{"role": "tool", "content": "x"}]},
        "tool_call_id",
        id="tool-no-id",
    ),
    pytest.param(
        {
            "model": "gpt-4.1-2025-04-14",
            "messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}],
        },
        "tool_calls",
        id="bad-tool-calls",
    ),
    pytest.param({**BODY, "max_tokens": 0}, "max_tokens", id="max-tokens-zero"),
    pytest.param({**BODY, "max_tokens": 10**9}, "max_tokens", id="max-tokens-huge"),
    pytest.param({**BODY, "max_tokens": "100"}, "max_tokens", id="max-tokens-string"),
    pytest.param({**BODY, "max_tokens": True}, "max_tokens", id="max-tokens-bool"),
    pytest.param({**BODY, "temperature": 3}, "temperature", id="temperature-high"),
    pytest.param({**BODY, "temperature": "hot"}, "temperature", id="temperature-string"),
    pytest.param({**BODY, "stop": 5}, "stop", id="stop-number"),
    pytest.param({**BODY, "stop": ["a"] * 5}, "stop", id="stop-too-many"),
    pytest.param({**BODY, "tools": {"name": "x"}}, "tools", id="tools-not-a-list"),
    pytest.param({**BODY, "tools": [{"type": "function"}]}, "tools[0]", id="tool-without-function"),
    pytest.param({**BODY, "tool_choice": "sometimes"}, "tool_choice", id="bad-tool-choice"),
    pytest.param(
        {
            **BODY,
            "tools": [{"type": "function", "function": {"name": "a"}}],
            "tool_choice": {"type": "function", "function": {"name": "b"}},
        },
        "'b'",
        id="tool-choice-not-offered",
    ),
    pytest.param({**BODY, "response_format": {"type": "yaml"}}, "response_format", id="bad-format"),
    pytest.param(
        {**BODY, "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
        "schema",
        id="json-schema-without-schema",
    ),
    pytest.param({**BODY, "stream": "yes"}, "stream", id="stream-not-bool"),
]


@pytest.mark.parametrize(("body", "named"), BAD_CHAT)
def test_bad_chat_input_is_a_400_naming_it_and_nothing_is_settled(
    gateway: Any, account: Any, body: Any, named: str
) -> None:
    payment = _payment(gateway, account)
    answer = _post(gateway, body if isinstance(body, bytes) else body, **{"X-PAYMENT": payment})
    assert answer.status_code == 400
    assert named in answer.json()["error"]
    assert gateway.ledger.entries == []
    assert _post(gateway, BODY, **{"X-PAYMENT": payment}).status_code == 200  # still unspent


BAD_COMPLETION = [
    pytest.param({"model": "gpt-4.1-2025-04-14"}, "'prompt'", id="no-prompt"),
    pytest.param({"model": "gpt-4.1-2025-04-14", "prompt": ""}, "'prompt'", id="empty-prompt"),
    pytest.param({"model": "gpt-4.1-2025-04-14", "prompt": ["a"]}, "'prompt'", id="prompt-list"),
    pytest.param(
        {"model": "gpt-4.1-2025-04-14", "prompt": "x", "stream": True}, "stream", id="stream"
    ),
    pytest.param(
        {"model": "gpt-4.1-2025-04-14", "prompt": "x", "max_tokens": -1},
        "max_tokens",
        id="max-tokens",
    ),
]


@pytest.mark.parametrize(("body", "named"), BAD_COMPLETION)
def test_bad_completion_input_is_a_400_naming_it(gateway: Any, body: Any, named: str) -> None:
    answer = _post(gateway, body, "/v1/completions")
    assert answer.status_code == 400 and named in answer.json()["error"]


def test_prefixed_model_names_are_accepted(gateway: Any) -> None:
    assert _post(gateway, {**BODY, "model": "openai/gpt-4.1-2025-04-14"}).status_code == 402
