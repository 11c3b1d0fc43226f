"""The Nitro verifier on documents from a local test CA (LocalEnclave): malformed structure, wrong
types, wrong algorithm, oversize input and bad certificate chains each fail a named check.
The clock is a fixed number (named: FIXED_NOW), never the wall clock."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec
from opengradient_shared import InvalidRequestError
from opengradient_shared.attestation import (
    MAX_DOCUMENT_BYTES,
    AttestationError,
    AttestationVerdict,
    new_nonce,
    verify_attestation,
    verify_document,
)
from opengradient_shared.gateway.enclave import LocalEnclave, issue_certificate, sign_document

FIXED_NOW = 1_800_000_000.0  # a fixed clock for the enclave and the checks
TLS_DER, KEY_DER = b"the TLS certificate DER", b"the signing key DER"
NONCE = "a1" * 20


class Clock:
    """A settable clock (the one thing here that cannot be real)."""

    def __init__(self) -> None:
        self.now = FIXED_NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def enclave() -> LocalEnclave:
    return LocalEnclave(KEY_DER, TLS_DER, clock=lambda: FIXED_NOW)


def _check(enclave: LocalEnclave, document: bytes, **changes: Any) -> AttestationVerdict:
    options: dict[str, Any] = {
        "nonce": NONCE,
        "tls_certificate_der": TLS_DER,
        "signing_key_der": KEY_DER,
        "expected_pcr_hash": enclave.pcr_hash,
        "now": FIXED_NOW + 1,
        "root_sha256": enclave.root_sha256,
        **changes,
    }
    return verify_attestation(document, **options)


def _payload(enclave: LocalEnclave, **changes: Any) -> dict[str, Any]:
    payload = enclave.payload(bytes.fromhex(NONCE))
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not _DROP}


_DROP = object()


def test_a_local_enclave_document_verifies(enclave: LocalEnclave) -> None:
    verdict = _check(enclave, enclave.attestation_document(bytes.fromhex(NONCE)))
    assert verdict.pcr_hash == enclave.pcr_hash
    assert verdict.module_id == enclave.module_id
    assert verdict.timestamp == FIXED_NOW
    assert verdict.checked_at == FIXED_NOW + 1
    assert verdict.expires_at == enclave.leaf()[1].not_valid_after_utc.timestamp()
    assert verdict.expires_at > FIXED_NOW + 3600


def test_tag_18_is_accepted(enclave: LocalEnclave) -> None:
    document = enclave.sign(_payload(enclave), tag=True)
    assert document[:1] == b"\xd2"
    _check(enclave, document)


def test_the_aws_root_is_the_default_pin(enclave: LocalEnclave) -> None:
    document = enclave.attestation_document(bytes.fromhex(NONCE))
    with pytest.raises(AttestationError, match="not the pinned root"):
        verify_document(document, nonce=NONCE, now=FIXED_NOW)


@pytest.mark.parametrize(
    "field", ["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle"]
)
def test_a_missing_field_is_named(enclave: LocalEnclave, field: str) -> None:
    with pytest.raises(AttestationError, match=f"{field} is missing|{field} is not"):
        _check(enclave, enclave.sign(_payload(enclave, **{field: _DROP})))


def test_a_missing_nonce_or_user_data_fails(enclave: LocalEnclave) -> None:
    with pytest.raises(AttestationError, match="does not answer our nonce"):
        _check(enclave, enclave.sign(_payload(enclave, nonce=_DROP)))
    with pytest.raises(AttestationError, match="user_data is missing"):
        _check(enclave, enclave.sign(_payload(enclave, user_data=None)))


WRONG_TYPES: list[tuple[str, Any, str]] = [
    ("module_id", 5, "module_id"),
    ("module_id", "", "module_id"),
    ("digest", b"SHA384", "digest"),
    ("digest", "SHA256", "digest is 'SHA256'"),
    ("timestamp", "1800000000000", "timestamp"),
    ("timestamp", True, "timestamp"),
    ("timestamp", -5, "timestamp"),
    ("timestamp", 1.8e12, "float"),
    ("pcrs", [b"\0" * 48] * 3, "pcrs"),
    ("pcrs", {}, "pcrs"),
    ("pcrs", {0: "x" * 48, 1: b"\0" * 48, 2: b"\0" * 48}, "PCR0 is not"),
    ("pcrs", {"0": b"\0" * 48, 1: b"\0" * 48, 2: b"\0" * 48}, "PCR index"),
    ("pcrs", {0: b"\0" * 48, 1: b"\0" * 47, 2: b"\0" * 48}, "PCR1 is not"),
    ("pcrs", {0: b"\0" * 48, 1: b"\0" * 48, 40: b"\0" * 48}, "PCR index 40"),
    ("pcrs", {0: b"\0" * 48, 1: b"\0" * 48, 3: b"\0" * 48}, "no PCR2"),
    ("certificate", "MIIB", "certificate"),
    ("certificate", b"not DER", "leaf certificate is not a DER"),
    ("cabundle", b"x", "cabundle"),
    ("cabundle", [], "cabundle"),
    ("cabundle", [1], "cabundle"),
    ("cabundle", [b"x"] * 9, "cabundle"),
    ("user_data", "text", "user_data is not a byte string"),
    ("user_data", b"\0" * 600, "user_data is 600 bytes"),
    ("nonce", 5, "nonce is not a byte string"),
    ("public_key", [b"key"], "public_key"),
    ("public_key", {"a": 1}, "public_key"),
]


@pytest.mark.parametrize(("field", "value", "reason"), WRONG_TYPES)
def test_a_wrong_type_is_named(enclave: LocalEnclave, field: str, value: Any, reason: str) -> None:
    with pytest.raises(AttestationError, match=reason):
        _check(enclave, enclave.sign(_payload(enclave, **{field: value})))


def test_a_payload_that_is_not_a_map_fails(enclave: LocalEnclave) -> None:
    header = cbor2.dumps({1: -35})
    for payload in (cbor2.dumps([1, 2]), b"\xff", b""):  # fails before the signature is read
        with pytest.raises(AttestationError, match="payload"):
            _check(enclave, cbor2.dumps([header, {}, payload, b"\0" * 96]))


@pytest.mark.parametrize(
    ("protected", "reason"),
    [
        ({1: -7}, "ES384"),  # ES256
        ({1: "-35"}, "ES384"),
        ({}, "ES384"),
        ({1: -36}, "ES384"),  # ES512
    ],
)
def test_a_wrong_algorithm_fails(
    enclave: LocalEnclave, protected: dict[int, Any], reason: str
) -> None:
    with pytest.raises(AttestationError, match=reason):
        _check(enclave, enclave.sign(_payload(enclave), protected=protected))


def _sign1(enclave: LocalEnclave) -> list[Any]:
    items = cbor2.loads(enclave.attestation_document(bytes.fromhex(NONCE)))
    assert isinstance(items, list)
    return items


MALFORMED: dict[str, Callable[[LocalEnclave], bytes]] = {
    "empty": lambda e: b"",
    "not CBOR": lambda e: b"\x1c\x00",
    "a map": lambda e: cbor2.dumps({"a": 1}),
    "an array of 3": lambda e: cbor2.dumps(_sign1(e)[:3]),
    "headers swapped": lambda e: cbor2.dumps([{}, *_sign1(e)[:1], *_sign1(e)[2:]]),
    "a text payload": lambda e: cbor2.dumps([*_sign1(e)[:2], "payload", _sign1(e)[3]]),
    "a short signature": lambda e: cbor2.dumps([*_sign1(e)[:3], b"\0" * 64]),
    "trailing bytes": lambda e: e.attestation_document(bytes.fromhex(NONCE)) + b"\0",
    "truncated": lambda e: e.attestation_document(bytes.fromhex(NONCE))[:-10],
    "another tag": lambda e: cbor2.dumps(cbor2.CBORTag(17, _sign1(e))),
    "a tag inside": lambda e: cbor2.dumps([*_sign1(e)[:3], cbor2.CBORTag(2, b"\1" * 96)]),
    "a float": lambda e: cbor2.dumps([*_sign1(e)[:3], 1.5]),
    "deep nesting": lambda e: b"\x81" * 100 + b"\x00",
    "deep indefinite nesting": lambda e: b"\x9f" * 100,
    "a huge declared array": lambda e: b"\x9b" + (2**40).to_bytes(8, "big") + b"\0" * 8,
    "a huge declared string": lambda e: b"\x84\x5b" + (2**40).to_bytes(8, "big") + b"\0" * 8,
    "an indefinite string": lambda e: b"\x84\x5f\x41\x00\xff\xa0\x40\x40",
    "a stray break": lambda e: b"\xff",
    "oversize": lambda e: cbor2.dumps([b"\0" * (MAX_DOCUMENT_BYTES + 1), {}, b"", b""]),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_document_fails_cleanly(enclave: LocalEnclave, case: str) -> None:
    with pytest.raises(AttestationError):
        _check(enclave, MALFORMED[case](enclave))


def test_an_oversize_document_is_refused_before_decoding(enclave: LocalEnclave) -> None:
    with pytest.raises(AttestationError, match=f"over {MAX_DOCUMENT_BYTES}"):
        _check(enclave, b"\x84" + b"\0" * MAX_DOCUMENT_BYTES)


def test_a_document_signed_by_another_key_fails(enclave: LocalEnclave) -> None:
    other = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(AttestationError, match="COSE signature does not verify"):
        _check(enclave, sign_document(_payload(enclave), other))


# --- chains ---------------------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def _der(cert: Any) -> bytes:
    return bytes(cert.public_bytes(ser.Encoding.DER))


def _chain_document(
    enclave: LocalEnclave, cas: list[dict[str, Any]], leaf: dict[str, Any] | None = None
) -> tuple[bytes, str]:
    """A document whose chain is a fresh root, then one CA per entry of ``cas`` (options of
    issue_certificate), then a leaf (``leaf`` options); returns it and its root's SHA-256."""
    span = {"not_before": FIXED_NOW - 3600, "not_after": FIXED_NOW + 3600}
    root_key = _key()
    root = issue_certificate("root", root_key.public_key(), None, root_key, ca=True, **span)
    issuer, issuer_key, bundle = root, root_key, [_der(root)]
    for i, options in enumerate(cas):
        key = _key()
        settings = {"ca": True, **span, **options}
        cert = issue_certificate(f"ca{i}", key.public_key(), issuer, issuer_key, **settings)
        issuer, issuer_key = cert, key
        bundle.append(_der(cert))
    leaf_options = {"ca": False, **span, **(leaf or {})}
    leaf_private = leaf_options.pop("key", None) or _key()
    leaf_cert = issue_certificate(
        "leaf", leaf_private.public_key(), issuer, issuer_key, **leaf_options
    )
    payload = _payload(enclave, certificate=_der(leaf_cert), cabundle=bundle)
    return sign_document(payload, leaf_private), hashlib.sha256(bundle[0]).hexdigest()


def test_a_well_formed_custom_chain_verifies(enclave: LocalEnclave) -> None:
    document, root = _chain_document(enclave, [{"path_length": 2}, {"path_length": 1}, {}])
    _check(enclave, document, root_sha256=root)


NOT_CA, CA1 = {"ca": False, "key_cert_sign": True}, r"cabundle\[1\]"
CHAINS: dict[str, tuple[list[dict[str, Any]], dict[str, Any] | None, str]] = {
    "a non-CA intermediate": ([NOT_CA], None, CA1 + " is not a CA"),
    "pathlen 0 above another CA": ([{"path_length": 0}, {}], None, CA1 + " allows 0 CAs"),
    "pathlen 1 above two CAs": ([{"path_length": 1}, {}, {}], None, CA1 + " allows 1 CAs"),
    "an intermediate without keyCertSign": ([{"key_cert_sign": False}], None, "keyCertSign"),
    "a leaf that is a CA": ([], {"ca": True, "digital_signature": True}, "leaf .* is a CA"),
    "a leaf without digitalSignature": ([], {"digital_signature": False}, "digitalSignature"),
    "an expired intermediate": ([{"not_after": FIXED_NOW - 10}], None, CA1 + " is not valid"),
    "a leaf not yet valid": ([], {"not_before": FIXED_NOW + 100}, "leaf .* is not valid"),
    "a P-256 leaf": ([], {"key": ec.generate_private_key(ec.SECP256R1())}, "P-384"),
}


@pytest.mark.parametrize("case", CHAINS)
def test_a_bad_chain_fails(enclave: LocalEnclave, case: str) -> None:
    cas, leaf, reason = CHAINS[case]
    document, root = _chain_document(enclave, cas, leaf)
    with pytest.raises(AttestationError, match=reason):
        _check(enclave, document, root_sha256=root)


def test_a_link_signed_by_an_impostor_fails(enclave: LocalEnclave) -> None:
    """An intermediate with the right name but signed by another key than the root's."""
    span = {"not_before": FIXED_NOW - 3600, "not_after": FIXED_NOW + 3600}
    root_key, impostor, leaf_key = _key(), _key(), _key()
    root = issue_certificate("root", root_key.public_key(), None, root_key, ca=True, **span)
    forged = issue_certificate("ca", impostor.public_key(), root, impostor, ca=True, **span)
    leaf = issue_certificate("leaf", leaf_key.public_key(), forged, impostor, ca=False, **span)
    payload = _payload(enclave, certificate=_der(leaf), cabundle=[_der(root), _der(forged)])
    root_sha256 = hashlib.sha256(_der(root)).hexdigest()
    with pytest.raises(AttestationError, match=r"cabundle\[1\]'s signature does not verify"):
        _check(enclave, sign_document(payload, leaf_key), root_sha256=root_sha256)


def test_a_leaf_issued_under_another_name_fails(enclave: LocalEnclave) -> None:
    span = {"not_before": FIXED_NOW - 3600, "not_after": FIXED_NOW + 3600}
    root_key, leaf_key = _key(), _key()
    root = issue_certificate("root", root_key.public_key(), None, root_key, ca=True, **span)
    other = issue_certificate("other", root_key.public_key(), None, root_key, ca=True, **span)
    leaf = issue_certificate("leaf", leaf_key.public_key(), other, root_key, ca=False, **span)
    payload = _payload(enclave, certificate=_der(leaf), cabundle=[_der(root)])
    with pytest.raises(AttestationError, match="not issued by the certificate above it"):
        _check(
            enclave,
            sign_document(payload, leaf_key),
            root_sha256=hashlib.sha256(_der(root)).hexdigest(),
        )


# --- time, binding, arguments ---------------------------------------------------------------------


def test_freshness_and_leaf_renewal_follow_the_clock() -> None:
    clock = Clock()
    enclave = LocalEnclave(KEY_DER, TLS_DER, clock=clock)
    first = enclave.attestation_document(bytes.fromhex(NONCE))
    _check(enclave, first, now=clock.now + 300)
    with pytest.raises(AttestationError, match="301 s old"):
        _check(enclave, first, now=clock.now + 301)
    ahead = enclave.sign(_payload(enclave, timestamp=int((clock.now + 61) * 1000)))
    _check(enclave, enclave.sign(_payload(enclave, timestamp=int((clock.now + 60) * 1000))))
    with pytest.raises(AttestationError, match="61 s in the future"):
        _check(enclave, ahead, now=clock.now)
    clock.now += 4 * 3600  # the first leaf has expired: the enclave makes a new one
    with pytest.raises(AttestationError, match="leaf certificate is not valid"):
        _check(enclave, first, now=clock.now, max_age_seconds=10**6)
    second = enclave.attestation_document(bytes.fromhex(NONCE))
    assert _check(enclave, second, now=clock.now).expires_at > clock.now + 3600


def test_the_binding_covers_both_hashes(enclave: LocalEnclave) -> None:
    document = enclave.attestation_document(bytes.fromhex(NONCE))
    with pytest.raises(AttestationError, match="this TLS certificate"):
        _check(enclave, document, tls_certificate_der=b"another certificate")
    with pytest.raises(AttestationError, match="this signing key"):
        _check(enclave, document, signing_key_der=b"another key")
    unset = LocalEnclave(KEY_DER, None, clock=lambda: FIXED_NOW)  # no TLS certificate: zeros
    assert unset.user_data()[2:34] == bytes(32)
    with pytest.raises(AttestationError, match="this TLS certificate"):
        _check(unset, unset.attestation_document(bytes.fromhex(NONCE)))
    user_data = bytearray(enclave.user_data())
    user_data[0] = 0x13
    with pytest.raises(AttestationError, match="multihash"):
        _check(enclave, enclave.sign(_payload(enclave, user_data=bytes(user_data))))
    with pytest.raises(AttestationError, match="67 bytes"):
        _check(enclave, enclave.sign(_payload(enclave, user_data=enclave.user_data()[:-1])))


def test_measurements_must_match_and_be_allowed(enclave: LocalEnclave) -> None:
    document = enclave.attestation_document(bytes.fromhex(NONCE))
    _check(enclave, document, expected_pcr_hash=None)
    _check(enclave, document, allowed_measurements={enclave.pcr_hash.upper()[2:]})
    with pytest.raises(AttestationError, match="not the expected"):
        _check(enclave, document, expected_pcr_hash="0x" + "ab" * 32)
    with pytest.raises(AttestationError, match="not among the allowed"):
        _check(enclave, document, allowed_measurements=("0x" + "ab" * 32,))


@pytest.mark.parametrize(
    "changes",
    [
        {"nonce": "abc"},
        {"nonce": "g" * 40},
        {"nonce": b"\1" * 20},
        {"expected_pcr_hash": "0x1234"},
        {"allowed_measurements": "0x" + "ab" * 32},
        {"allowed_measurements": [42]},
        {"root_sha256": "not a hash"},
    ],
)
def test_bad_arguments_are_invalid_requests(enclave: LocalEnclave, changes: dict[str, Any]) -> None:
    document = enclave.attestation_document(bytes.fromhex(NONCE))
    with pytest.raises(InvalidRequestError):
        _check(enclave, document, **changes)


def test_new_nonces_are_fresh_20_byte_hex() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(len(n) == 40 and n == n.lower() and bytes.fromhex(n) for n in nonces)
