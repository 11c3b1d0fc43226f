"""Gateway hardening beyond tests/test_gateway_*.py (which cover a 9 MiB body -> 413, 411, one
silent client, ten concurrent copies of one v1 payment, and v1 headers that are bad base64,
bad JSON or the wrong version). Added here: a body announced far over the limit, many slow and
half-open clients at once, a client dripping its request byte by byte, one v2 permit sent
concurrently, malformed v2 payment and session headers, and v1 payment headers that are empty,
not UTF-8 or huge — each a 4xx with a reason, never a 500, and never a settlement."""

from __future__ import annotations

import base64
import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from harness import MESSAGES, bound, within
from opengradient_shared.gateway import LocalGateway
from opengradient_shared.x402 import parse_challenge, upto

PATH = "/v1/chat/completions"
BODY = {"model": "gpt-4.1-2025-04-14", "messages": MESSAGES, "max_tokens": 10}
HEADERS = {"Authorization": "Bearer test", "Content-Type": "application/json"}
SOCKET_TIMEOUT = 0.3


def _address(gateway: Any) -> tuple[str, int]:
    host, port = gateway.url.removeprefix("http://").split(":")
    return host, int(port)


def _post(gateway: Any, **headers: str) -> requests.Response:
    return requests.post(gateway.url + PATH, json=BODY, headers={**HEADERS, **headers}, timeout=5)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def quick_gateway(tee_signing_key_pem: bytes) -> Iterator[Any]:
    """A gateway that drops a silent client after ``SOCKET_TIMEOUT`` seconds."""
    with LocalGateway(socket_timeout=SOCKET_TIMEOUT, signing_key_pem=tee_signing_key_pem) as gw:
        yield gw


def test_body_announced_far_over_the_limit_is_413_without_reading_it(gateway: Any) -> None:
    count, settled = gateway.request_count, len(gateway.ledger.entries)
    with socket.create_connection(_address(gateway), timeout=5) as sock:
        sock.sendall(
            f"POST {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
            "Content-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n{".encode()
        )
        answer = b""
        while piece := sock.recv(65536):  # the gateway answers, then closes
            answer += piece
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert "MiB" in json.loads(body)["error"]  # the limit is named
    assert gateway.request_count == count + 1
    assert len(gateway.ledger.entries) == settled


def test_many_slow_and_half_open_clients_are_dropped_while_others_are_served(
    quick_gateway: Any,
) -> None:
    slow: list[socket.socket] = []
    try:
        for i in range(24):
            sock = socket.create_connection(_address(quick_gateway), timeout=10)
            if i % 3 == 0:  # half a request line, never finished
                sock.sendall(b"POST /v1/chat/comp")
            elif i % 3 == 1:  # headers announcing a body that never comes
                sock.sendall(
                    f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{{".encode()
                )
            # else: connected, silent
            slow.append(sock)
        with within(bound()):  # served while all of them hang
            assert _post(quick_gateway).status_code == 402
        # the gateway disconnects each of them: recv reaches EOF (a TimeoutError here, after
        # 10 s, would mean a worker is still held)
        for sock in slow:
            while sock.recv(4096):
                pass
    finally:
        for sock in slow:
            sock.close()
    with within(bound()):
        assert _post(quick_gateway).status_code == 402


def test_a_client_dripping_its_request_byte_by_byte_is_cut_off(quick_gateway: Any) -> None:
    """Never silent for ``socket_timeout``, yet never done: the whole request must arrive within
    ``socket_timeout``, so the gateway drops the connection long before the drip would end."""
    head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n".encode()
    pause, drips = SOCKET_TIMEOUT / 6, 0
    with socket.create_connection(_address(quick_gateway), timeout=10) as sock:
        sock.sendall(head)
        while not select.select([sock], [], [], pause)[0]:  # until the gateway acts
            if drips == 200:  # the whole drip: 200 * pause = 10 s
                pytest.fail("the gateway kept reading a request dripped over 10 s")
            sock.sendall(b"x")
            drips += 1
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(4096) == b""  # closed (or reset) without an answer
    assert drips < 100
    assert _post(quick_gateway).status_code == 402  # others are served as ever


def test_the_same_permit_sent_concurrently_opens_one_session(gateway_v2: Any, account: Any) -> None:
    settled = len(gateway_v2.ledger.entries)
    answer = _post(gateway_v2)
    challenge = parse_challenge(answer.headers, answer.content)
    assert challenge is not None
    permit = upto.sign_payment(account, challenge.accepts[0], challenge, now=int(time.time()))
    start = threading.Barrier(10)
    statuses: list[int] = []
    sessions: set[str] = set()

    def send() -> None:
        start.wait()
        reply = _post(gateway_v2, **{permit.header_name: permit.header_value})
        statuses.append(reply.status_code)
        if reply.status_code == 200:
            sessions.add(reply.headers[upto.SESSION_HEADER])
        else:
            assert reply.json()["error"].startswith("nonce_already_used")

    threads = [threading.Thread(target=send) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [402] * 9
    assert len(sessions) == 1
    opened = gateway_v2.ledger.entries[settled:]  # a session is in the ledger once opened
    assert [(e.nonce, e.session_id) for e in opened] == [(permit.nonce, sessions.pop())]


V1_ODD_HEADERS = [
    pytest.param("", id="empty"),
    pytest.param(_b64(b"\xff\xfe\x00\x80"), id="not-utf8"),
    pytest.param(_b64(b'"just a string"'), id="json-string"),
    pytest.param("A" * 20_000, id="huge"),
    pytest.param(_b64(json.dumps({"x402Version": "1", "scheme": "exact"}).encode()), id="v-text"),
    pytest.param(
        _b64(json.dumps({"x402Version": 1, "scheme": "exact", "payload": []}).encode()),
        id="payload-a-list",
    ),
]


@pytest.mark.parametrize("header", V1_ODD_HEADERS)
def test_odd_v1_payment_header_gets_402_with_a_reason(gateway: Any, header: str) -> None:
    settled = len(gateway.ledger.entries)
    answer = _post(gateway, **{"X-PAYMENT": header})
    assert answer.status_code == 402, answer.text
    assert answer.json().get("error")
    assert len(gateway.ledger.entries) == settled


V2_BAD_HEADERS = [
    pytest.param("%%% not base64 %%%", id="bad-base64"),
    pytest.param(_b64(b"not json"), id="bad-json"),
    pytest.param(_b64(b"[1, 2]"), id="json-array"),
    pytest.param(_b64(b"\xff\xfe"), id="not-utf8"),
    pytest.param(_b64(json.dumps({"x402Version": 1, "payload": {}}).encode()), id="version-1"),
    pytest.param(_b64(json.dumps({"x402Version": 2}).encode()), id="no-payload"),
    pytest.param(
        _b64(json.dumps({"x402Version": 2, "payload": {"signature": "0x00"}}).encode()),
        id="no-permit",
    ),
    pytest.param("B" * 20_000, id="huge"),
]


@pytest.mark.parametrize("header", V2_BAD_HEADERS)
def test_malformed_v2_payment_header_gets_402_with_a_reason(gateway_v2: Any, header: str) -> None:
    settled = len(gateway_v2.ledger.entries)
    answer = _post(gateway_v2, **{"PAYMENT-SIGNATURE": header})
    assert answer.status_code == 402, answer.text
    assert answer.json().get("error")
    assert "PAYMENT-REQUIRED" in answer.headers  # the client is told how to pay instead
    assert len(gateway_v2.ledger.entries) == settled


@pytest.mark.parametrize("session", ["", "not-a-session", "x" * 10_000, "../../etc/passwd"])
def test_unknown_or_garbage_session_header_gets_402(gateway_v2: Any, session: str) -> None:
    answer = _post(gateway_v2, **{upto.SESSION_HEADER: session})
    assert answer.status_code == 402, answer.text
    assert answer.json().get("error")
