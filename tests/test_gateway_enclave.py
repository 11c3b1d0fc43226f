"""The local gateway's enclave over real HTTP on 127.0.0.1: ``GET /enclave/attestation`` answers
nitriding's format, and the document attests the key that signs the gateway's answers."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization as ser
from opengradient_shared.attestation import (
    ATTESTATION_PATH,
    AttestationError,
    attestation_request_path,
    check_binding,
    new_nonce,
    read_attestation_answer,
    verify_attestation,
    verify_document,
)
from opengradient_shared.gateway import LocalGateway


def _signing_key_der(gateway: Any) -> bytes:
    """The DER of the key the gateway publishes at /signing-key (and signs answers with)."""
    pem = requests.get(gateway.url + "/signing-key", timeout=10).json()["public_key"]
    return bytes(
        ser.load_pem_public_key(pem.encode()).public_bytes(
            ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo
        )
    )


def test_the_gateway_serves_a_document_that_attests_its_signing_key(gateway: Any) -> None:
    nonce = new_nonce()
    answer = requests.get(gateway.url + attestation_request_path(nonce), timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/plain"
    assert answer.content.endswith(b"\n")
    document = read_attestation_answer(answer.content)
    now = time.time()
    parsed = verify_document(
        document, nonce=nonce, now=now, root_sha256=gateway.enclave.root_sha256
    )
    assert parsed.pcr_hash == gateway.enclave.pcr_hash
    # plain HTTP: no TLS certificate, so nitriding's unset (all-zero) hash stands in its place
    key_sha256 = hashlib.sha256(_signing_key_der(gateway)).digest()
    check_binding(parsed, tls_certificate_sha256=bytes(32), signing_key_sha256=key_sha256)
    with pytest.raises(AttestationError, match="does not answer our nonce"):
        verify_document(
            document, nonce=new_nonce(), now=now, root_sha256=gateway.enclave.root_sha256
        )


def test_a_gateway_with_a_tls_certificate_binds_it(gateway: Any) -> None:
    certificate = b"the DER certificate this gateway serves"
    gateway.enclave.tls_certificate_der = certificate
    nonce = new_nonce().upper()  # nitriding takes hex in any case
    answer = requests.get(f"{gateway.url}{ATTESTATION_PATH}?nonce={nonce}", timeout=10)
    verdict = verify_attestation(
        read_attestation_answer(answer.content),
        nonce=nonce,
        tls_certificate_der=certificate,
        signing_key_der=_signing_key_der(gateway),
        expected_pcr_hash=gateway.enclave.pcr_hash,
        now=time.time(),
        root_sha256=gateway.enclave.root_sha256,
    )
    assert verdict.pcr_hash == gateway.enclave.pcr_hash
    assert verdict.module_id == gateway.enclave.module_id


def test_each_gateway_has_its_own_test_root(tee_signing_key_pem: bytes) -> None:
    one = LocalGateway(signing_key_pem=tee_signing_key_pem)
    two = LocalGateway(signing_key_pem=tee_signing_key_pem)
    assert one.enclave.root_sha256 != two.enclave.root_sha256
    assert one.enclave is one.enclave


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?nonce=",
        "?nonce=abc",
        "?nonce=" + "g" * 40,
        "?nonce=" + "a" * 42,
        "?other=1",
        "?nonce=" + "a" * 40 + "&nonce=" + "b" * 40,
    ],
)
def test_a_missing_or_bad_nonce_gets_400(gateway: Any, query: str) -> None:
    answer = requests.get(f"{gateway.url}{ATTESTATION_PATH}{query}", timeout=10)
    assert answer.status_code == 400
    assert "nonce" in answer.json()["error"]


def test_other_pages_still_answer(gateway: Any) -> None:
    assert requests.get(gateway.url + "/health", timeout=10).json()["status"] == "ok"
    assert requests.get(gateway.url + "/enclave/other", timeout=10).status_code == 404
