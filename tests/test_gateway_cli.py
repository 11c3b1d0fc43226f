"""The gateway's command line: ``python -m opengradient_shared.gateway --port 0`` serves a paid,
TEE-signed chat answer to a request built by hand."""

from __future__ import annotations

import base64
import json
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_account import Account
from opengradient_shared import tee
from opengradient_shared.gateway.signer import TeeSigner
from opengradient_shared.x402 import parse_challenge, upto
from opengradient_shared.x402.networks import lookup_network

_AUTH = {"Authorization": "Bearer anything"}


@contextmanager
def _serve(*options: str) -> Iterator[str]:
    """The CLI in a subprocess on a free port; yields its URL, terminates it after."""
    command = [sys.executable, "-m", "opengradient_shared.gateway", "--port", "0", *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line + process.stderr.read()
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def cli(tmp_path: Path, tee_signing_key_pem: bytes) -> Iterator[tuple[str, Path]]:
    """The CLI with a key file and a ledger file; yields (url, ledger path)."""
    key_file, ledger = tmp_path / "tee.pem", tmp_path / "ledger.jsonl"
    key_file.write_bytes(tee_signing_key_pem)
    options = ("--price", "2500", "--key-file", str(key_file), "--ledger", str(ledger))
    with _serve(*options) as url:
        yield url, ledger


def test_cli_serves_a_paid_signed_answer_to_a_hand_built_request(
    cli: tuple[str, Path], tee_signing_key_pem: bytes
) -> None:
    url, ledger = cli
    body = {"model": "gpt-4.1-2025-04-14", "messages": [{"role": "user", "content": "Hello!"}]}
    headers = {"Authorization": "Bearer anything", "X-SETTLEMENT-TYPE": "settle"}
    challenge = requests.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=5)
    assert challenge.status_code == 402
    requirement = challenge.json()["accepts"][0]
    assert requirement["maxAmountRequired"] == "2500"

    # the EIP-3009 authorization, built field by field as protocol.md section 4 says
    payer, now = Account.create(), int(time.time())
    network = lookup_network(requirement["network"])
    assert network is not None
    authorization = {
        "from": payer.address,
        "to": requirement["payTo"],
        "value": requirement["maxAmountRequired"],
        "validAfter": str(now - 60),
        "validBefore": str(now + requirement["maxTimeoutSeconds"]),
        "nonce": "0x" + secrets.token_hex(32),
    }
    signed = payer.sign_typed_data(
        domain_data={
            "name": requirement["extra"]["name"],
            "version": requirement["extra"]["version"],
            "chainId": network.chain_id,
            "verifyingContract": requirement["asset"],
        },
        message_types={
            "TransferWithAuthorization": [
                {"name": "from", "type": "address"},
                {"name": "to", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "validAfter", "type": "uint256"},
                {"name": "validBefore", "type": "uint256"},
                {"name": "nonce", "type": "bytes32"},
            ]
        },
        message_data={
            **authorization,
            **{k: int(authorization[k]) for k in ("value", "validAfter", "validBefore")},
            "nonce": bytes.fromhex(authorization["nonce"][2:]),
        },
    )
    payment = {
        "x402Version": 1,
        "scheme": "exact",
        "network": requirement["network"],
        "payload": {"signature": "0x" + signed.signature.hex(), "authorization": authorization},
    }
    x_payment = base64.b64encode(json.dumps(payment).encode()).decode()
    answer = requests.post(
        url + "/v1/chat/completions",
        json=body,
        headers={**headers, "X-PAYMENT": x_payment},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    receipt = json.loads(base64.b64decode(answer.headers["X-PAYMENT-RESPONSE"]))
    assert receipt["success"] and receipt["payer"] == payer.address

    data = answer.json()
    key = requests.get(url + "/signing-key", timeout=5).json()["public_key"]
    assert tee.verify(
        tee.proof_from_fields(data),
        tee.load_public_key(key),
        expected_request_hash=tee.request_hash(body),
        expected_output_hash=tee.output_hash(data["choices"][0]["message"]["content"]),
    ).verified
    assert data["tee_id"] == TeeSigner(tee_signing_key_pem).tee_id  # the --key-file key signs
    (line,) = ledger.read_text().splitlines()
    assert json.loads(line)["settlement_type"] == "settle"
    assert json.loads(line)["amount"] == 2500


def test_cli_speaks_generation_2_on_request() -> None:
    with _serve("--protocol", "v2", "--session-cap", "777") as url:
        answer = requests.post(
            url + "/v1/completions",
            json={"model": "gpt-4.1-2025-04-14", "prompt": "hi"},
            headers={"Authorization": "Bearer x"},
            timeout=5,
        )
    assert answer.status_code == 402 and answer.json() == {}
    required = json.loads(base64.b64decode(answer.headers["PAYMENT-REQUIRED"]))
    assert required["accepts"][0]["scheme"] == "upto"
    assert required["accepts"][0]["amount"] == "777"


def test_cli_refuses_an_unknown_network() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "opengradient_shared.gateway", "--port", "0", "--network", "moon"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "moon" in done.stderr


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_prints_its_terms_and_stops_cleanly_on_a_signal(
    tmp_path: Path, tee_signing_key_pem: bytes, account: Any, stop: signal.Signals
) -> None:
    """The second line names the protocol, network and tee_id; a signal stops the gateway with
    exit status 0 after it settles the open sessions into the ledger file."""
    key_file, ledger = tmp_path / "tee.pem", tmp_path / "ledger.jsonl"
    key_file.write_bytes(tee_signing_key_pem)
    options = ["--protocol", "v2", "--key-file", str(key_file), "--ledger", str(ledger)]
    command = [sys.executable, "-m", "opengradient_shared.gateway", "--port", "0", *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        url = process.stdout.readline().split()[-1]
        tee_id = TeeSigner(tee_signing_key_pem).tee_id
        assert process.stdout.readline().split() == [
            *("protocol", "v2,", "network", "eip155:8453,", "tee_id", tee_id)
        ]
        body = {"model": "gpt-4.1-2025-04-14", "messages": [{"role": "user", "content": "Hi"}]}
        ask = requests.post(url + "/v1/chat/completions", json=body, headers=_AUTH, timeout=5)
        challenge = parse_challenge(ask.headers, ask.content)
        assert challenge is not None
        permit = upto.sign_payment(account, challenge.accepts[0], challenge, now=int(time.time()))
        headers = {**_AUTH, permit.header_name: permit.header_value}
        opened = requests.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=5)
        assert opened.status_code == 200 and not ledger.exists()  # the session is still open
        process.send_signal(stop)
        assert process.wait(timeout=10) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        process.kill()
        process.wait()
    (line,) = [json.loads(text) for text in ledger.read_text().splitlines()]
    assert line["closed"] and line["session_id"] == opened.headers[upto.SESSION_HEADER]


def test_help_is_plain_text_naming_every_option() -> None:
    command = [sys.executable, "-m", "opengradient_shared.gateway", "--help"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "``" not in done.stdout and ":class:" not in done.stdout
    for option in ("--host", "--port", "--protocol", "--price", "--token-price", "--ledger"):
        assert option in done.stdout
    assert "local OpenGradient TEE LLM gateway" in done.stdout
