"""The Nitro verifier on a real AWS Nitro attestation document (tests/vectors/nitro-attestation,
og-evm's test vector): it verifies at its own time, and any change fails a named check."""

from __future__ import annotations

import base64
import hashlib
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opengradient_shared import VerificationError
from opengradient_shared.attestation import (
    AWS_NITRO_ROOT_SHA256,
    AttestationError,
    check_binding,
    check_measurements,
    parse_document,
    read_attestation_answer,
    verify_attestation,
    verify_document,
)

DOCUMENT = (
    Path(__file__).parent / "vectors" / "nitro-attestation" / "attestation_doc.bin"
).read_bytes()
NONCE = "0123456789abcdef0123456789abcdef01234567"
PCR_HASH = "0x8082af22571613eabd5dad9c7e857c4f16154ded3d387386d8193b53906f6a24"
# user_data of the document: SHA-256 of the TLS certificate and of the signing key it was made
# for (the vector does not ship those bytes, so the binding is checked against the digests)
TLS_SHA256 = bytes.fromhex("b735546536e78ee12beea2d384fcda35f7491446c6858f79fa7ad5e4ae89b49f")
KEY_SHA256 = bytes.fromhex("abf9d7453422eb419fc1391604b070a81bd6a61f4d9ae0ee71ab24d77670c154")


def _at(hour: int, minute: int, second: int = 0) -> float:
    return datetime(2026, 2, 12, hour, minute, second, tzinfo=UTC).timestamp()


NOW = _at(18, 0)  # the document is from 17:56:02; its leaf is valid 17:55:59 to 20:56:02


def _verify(
    document: bytes = DOCUMENT,
    *,
    nonce: str = NONCE,
    now: float = NOW,
    binding: tuple[bytes, bytes] = (TLS_SHA256, KEY_SHA256),
    expected_pcr_hash: str | None = PCR_HASH,
    allowed_measurements: list[str] | None = None,
    **options: Any,
) -> None:
    """The whole check of the real document, with the binding checked against its digests."""
    parsed = verify_document(document, nonce=nonce, now=now, **options)
    check_measurements(
        parsed, expected_pcr_hash=expected_pcr_hash, allowed_measurements=allowed_measurements
    )
    check_binding(parsed, tls_certificate_sha256=binding[0], signing_key_sha256=binding[1])


def test_the_pinned_root_is_the_first_certificate_of_the_real_cabundle() -> None:
    root = parse_document(DOCUMENT).cabundle[0]
    assert hashlib.sha256(root).hexdigest() == AWS_NITRO_ROOT_SHA256
    assert AWS_NITRO_ROOT_SHA256.startswith("641a0321") and AWS_NITRO_ROOT_SHA256.endswith("bb5b")


def test_the_real_document_verifies_at_its_time() -> None:
    parsed = verify_document(DOCUMENT, nonce=NONCE, now=NOW)
    assert parsed.module_id == "i-0340e0cb833504eb6-enc019c12d31f78864d"
    assert parsed.timestamp == 1770918962.724
    assert parsed.expires_at == _at(20, 56, 2)
    assert parsed.public_key == b"dummy"
    assert check_measurements(parsed, expected_pcr_hash=PCR_HASH) == PCR_HASH
    assert check_measurements(parsed, expected_pcr_hash=PCR_HASH.upper().replace("0X", "")) == (
        PCR_HASH
    )
    check_binding(parsed, tls_certificate_sha256=TLS_SHA256, signing_key_sha256=KEY_SHA256)
    _verify(allowed_measurements=["0x" + "00" * 32, PCR_HASH])


def test_the_real_document_verifies_as_tag_18() -> None:
    _verify(b"\xd2" + DOCUMENT)
    _verify(b"\xd8\x12" + DOCUMENT)


def test_the_all_in_one_check_reaches_the_binding_of_the_real_document() -> None:
    """verify_attestation passes every check of the real document up to the binding, which
    fails for certificate and key bytes that are not the ones it was made for."""
    with pytest.raises(AttestationError, match="does not bind this TLS certificate"):
        verify_attestation(
            DOCUMENT,
            nonce=NONCE,
            tls_certificate_der=b"another certificate",
            signing_key_der=b"another key",
            expected_pcr_hash=PCR_HASH,
            now=NOW,
        )


def test_the_nitriding_answer_decodes_to_the_document() -> None:
    body = base64.b64encode(DOCUMENT) + b"\n"
    assert read_attestation_answer(body) == DOCUMENT
    for bad, reason in [
        (b"", "empty"),
        (b"not base64 at all!", "not base64"),
        (DOCUMENT, "not base64"),
        (b"A" * 50_000, "over"),
    ]:
        with pytest.raises(AttestationError, match=reason):
            read_attestation_answer(bad)


def _flipped(offset: int) -> bytes:
    changed = bytearray(DOCUMENT)
    changed[offset] ^= 0x01
    return bytes(changed)


def test_every_changed_byte_of_the_real_document_fails() -> None:
    passed = []
    for offset in range(len(DOCUMENT)):
        try:
            _verify(_flipped(offset))
        except AttestationError:
            continue
        passed.append(offset)  # any other exception propagates and fails the test
    assert passed == []


def _offset_of(part: bytes, skip: int = 0) -> int:
    offset = DOCUMENT.index(part) + skip
    assert DOCUMENT.count(part) == 1
    return offset


PARSED = parse_document(DOCUMENT)
REGIONS = {
    "the COSE signature": (len(DOCUMENT) - 1, "COSE signature does not verify"),
    "PCR0": (_offset_of(PARSED.pcrs[0], 10), "COSE signature does not verify"),
    "PCR2": (_offset_of(PARSED.pcrs[2], 47), "COSE signature does not verify"),
    "the nonce": (_offset_of(bytes.fromhex(NONCE), 19), "COSE signature does not verify"),
    "the time": (_offset_of((1770918962724).to_bytes(8, "big"), 7), "COSE signature"),
    "the user_data": (_offset_of(PARSED.user_data or b"", 40), "COSE signature"),
    "the leaf certificate": (_offset_of(PARSED.certificate, 300), "leaf certificate"),
    "the root certificate": (_offset_of(PARSED.cabundle[0], 200), "not the pinned root"),
    "an intermediate": (_offset_of(PARSED.cabundle[2], 400), r"cabundle\[2\]"),
    "the protected header": (3, "alg ES384"),
}


@pytest.mark.parametrize("region", REGIONS)
def test_a_changed_byte_fails_the_check_that_covers_it(region: str) -> None:
    offset, reason = REGIONS[region]
    with pytest.raises(AttestationError, match=reason):
        _verify(_flipped(offset))


def test_a_wrong_nonce_fails() -> None:
    with pytest.raises(AttestationError, match="does not answer our nonce"):
        _verify(nonce="f" * 40)


@pytest.mark.parametrize(
    ("expected", "allowed"),
    [("0x" + "11" * 32, None), (PCR_HASH, ["0x" + "22" * 32]), (None, [])],
)
def test_a_wrong_pcr_set_fails(expected: str | None, allowed: list[str] | None) -> None:
    with pytest.raises(AttestationError, match="measurements"):
        _verify(expected_pcr_hash=expected, allowed_measurements=allowed)


@pytest.mark.parametrize(
    ("binding", "reason"),
    [
        ((hashlib.sha256(b"tls").digest(), KEY_SHA256), "this TLS certificate"),
        ((TLS_SHA256, hashlib.sha256(b"key").digest()), "this signing key"),
        ((KEY_SHA256, TLS_SHA256), "this TLS certificate"),
    ],
)
def test_a_wrong_user_data_binding_fails(binding: tuple[bytes, bytes], reason: str) -> None:
    with pytest.raises(AttestationError, match=reason):
        _verify(binding=binding)


def test_a_chain_to_another_root_fails() -> None:
    with pytest.raises(AttestationError, match="not the pinned root"):
        _verify(root_sha256=hashlib.sha256(b"another root").hexdigest())


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (_at(20, 57), "the leaf certificate is not valid"),  # leaf expired
        (_at(17, 55), "the leaf certificate is not valid"),  # leaf not yet valid
        (_at(18, 1, 3), "s old"),  # 301 s after the document's time
    ],
)
def test_the_clock_moved_fails(now: float, reason: str) -> None:
    with pytest.raises(AttestationError, match=reason):
        _verify(now=now)


def test_a_longer_max_age_accepts_an_older_document() -> None:
    _verify(now=_at(18, 30), max_age_seconds=3600)


def test_attestation_errors_are_verification_errors() -> None:
    assert issubclass(AttestationError, VerificationError)


def test_every_truncation_and_random_damage_ends_as_an_attestation_error() -> None:
    """Hostile input: cut at every length, and 2000 seeded random edits (overwrite, delete,
    insert); nothing but AttestationError may come out, and nothing changed may verify."""
    damaged = [DOCUMENT[:length] for length in range(len(DOCUMENT))]
    rng = random.Random(14)
    while len(damaged) < len(DOCUMENT) + 2000:
        data = bytearray(DOCUMENT)
        for _ in range(rng.choice([1, 2, 3, 8])):
            at, roll = rng.randrange(len(data)), rng.random()
            if roll < 0.6:
                data[at] = rng.randrange(256)
            elif roll < 0.8:
                del data[at : at + rng.randrange(1, 50)]
            else:
                data[at:at] = rng.randbytes(rng.randrange(1, 10))
        if bytes(data) != DOCUMENT:
            damaged.append(bytes(data))
    for document in damaged:
        with pytest.raises(AttestationError):
            _verify(document)
