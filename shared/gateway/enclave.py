"""A local stand-in for an AWS Nitro enclave: it issues attestation documents in the real format
(COSE_Sign1, ES384, a certificate chain root → intermediate → leaf, PCRs, nitriding's 68-byte
``user_data`` binding), signed by its own test root CA instead of AWS's.

A client verifies them with :func:`opengradient_shared.attestation.verify_attestation` given
``root_sha256=enclave.root_sha256``: everything but the root is checked as for a real enclave.
The building blocks (:func:`issue_certificate`, :func:`sign_document`) also make malformed
documents for tests.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from ..attestation import ES384, pcr_hash_of

__all__ = ["LocalEnclave", "issue_certificate", "nonce_from_query", "sign_document"]

LEAF_LIFETIME_SECONDS = 3 * 3600.0
"""A leaf certificate lives 3 hours, as a real Nitro enclave's does; then a new one is made."""

_NONCE_RE = re.compile(r"[0-9a-fA-F]{40}")


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def issue_certificate(
    common_name: str,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    not_before: float,
    not_after: float,
    ca: bool,
    path_length: int | None = None,
    key_cert_sign: bool | None = None,
    digital_signature: bool | None = None,
) -> x509.Certificate:
    """An ECDSA-SHA384 certificate for ``public_key`` signed by ``issuer_key`` (``issuer`` None:
    self-signed). Key usage defaults to keyCertSign for a CA and digitalSignature otherwise."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OpenGradient local enclave (test)"),
        ]
    )
    cert_sign = ca if key_cert_sign is None else key_cert_sign
    signing = not ca if digital_signature is None else digital_signature
    usage = x509.KeyUsage(
        digital_signature=signing,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.fromtimestamp(not_before, UTC))
        .not_valid_after(datetime.fromtimestamp(not_after, UTC))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(usage, critical=True)
    )
    return builder.sign(issuer_key, hashes.SHA384())


def sign_document(
    payload: Mapping[str, Any],
    leaf_key: ec.EllipticCurvePrivateKey,
    *,
    protected: Mapping[int, Any] | None = None,
    tag: bool = False,
) -> bytes:
    """A COSE_Sign1 over ``payload`` (CBOR-encoded) signed ES384 by ``leaf_key``; ``protected``
    defaults to ``{1: -35}``; ``tag`` wraps it in CBOR tag 18."""
    header = cbor2.dumps(dict(protected) if protected is not None else {1: ES384})
    body = cbor2.dumps(dict(payload))
    der = leaf_key.sign(cbor2.dumps(["Signature1", header, b"", body]), ec.ECDSA(hashes.SHA384()))
    r, s = decode_dss_signature(der)
    sign1 = [header, {}, body, r.to_bytes(48, "big") + s.to_bytes(48, "big")]
    return cbor2.dumps(cbor2.CBORTag(18, sign1) if tag else sign1)


def nonce_from_query(query: str) -> bytes | None:
    """The ``nonce`` of an ``/enclave/attestation`` query (exactly 40 hex characters, any
    case, as nitriding requires), or None when missing or malformed."""
    values = parse_qs(query, keep_blank_values=True).get("nonce", [])
    if len(values) != 1 or not _NONCE_RE.fullmatch(values[0]):
        return None
    return bytes.fromhex(values[0])


class LocalEnclave:
    """A local stand-in for a Nitro enclave, with its own test root CA (``root_sha256`` is its
    DER SHA-256, to pin instead of AWS's). ``signing_key_der`` is the TEE signing key's DER
    SubjectPublicKeyInfo and ``tls_certificate_der`` the served TLS certificate (None: an
    unset hash, all zeros, as nitriding reports before it has one); both may be reassigned.
    ``pcrs`` are fixed, deterministic measurements and ``pcr_hash`` their registry hash."""

    def __init__(
        self,
        signing_key_der: bytes,
        tls_certificate_der: bytes | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signing_key_der = signing_key_der
        self.tls_certificate_der = tls_certificate_der
        self._clock = clock
        now = clock()
        root_key, self._ca_key = _key(), _key()
        self.root_certificate = issue_certificate(
            "local.nitro-enclaves (test root)",
            root_key.public_key(),
            None,
            root_key,
            not_before=now - 86400,
            not_after=now + 20 * 365 * 86400,
            ca=True,
        )
        self.intermediate_certificate = issue_certificate(
            "local.zonal.nitro-enclaves (test)",
            self._ca_key.public_key(),
            self.root_certificate,
            root_key,
            not_before=now - 86400,
            not_after=now + 5 * 365 * 86400,
            ca=True,
            path_length=0,
        )
        der = self.root_certificate.public_bytes(ser.Encoding.DER)
        self.root_sha256 = hashlib.sha256(der).hexdigest()
        self.module_id = f"i-0000local{secrets.token_hex(4)}-enc{secrets.token_hex(8)}"
        self.pcrs = {i: bytes(48) for i in range(16)}
        for i in (0, 1, 2):
            self.pcrs[i] = hashlib.sha384(f"opengradient local enclave PCR{i}".encode()).digest()
        self.pcr_hash = pcr_hash_of(self.pcrs)
        self._leaf: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None
        self._lock = threading.Lock()

    @property
    def cabundle(self) -> list[bytes]:
        """The CA certificates of a document, root first (DER)."""
        return [
            c.public_bytes(ser.Encoding.DER)
            for c in (self.root_certificate, self.intermediate_certificate)
        ]

    def leaf(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """The current leaf key and certificate (valid 3 hours; renewed when expired)."""
        now = self._clock()
        with self._lock:
            if self._leaf is not None:
                cert = self._leaf[1]
                start = cert.not_valid_before_utc.timestamp()
                if start <= now <= cert.not_valid_after_utc.timestamp() - 60:
                    return self._leaf
            key = _key()
            cert = issue_certificate(
                f"{self.module_id}.local.aws",
                key.public_key(),
                self.intermediate_certificate,
                self._ca_key,
                not_before=now - 60,
                not_after=now + LEAF_LIFETIME_SECONDS,
                ca=False,
            )
            self._leaf = (key, cert)
            return self._leaf

    def user_data(self) -> bytes:
        """nitriding's binding: ``12 20 || sha256(TLS cert) || 12 20 || sha256(signing key)``."""
        tls = self.tls_certificate_der
        tls_hash = hashlib.sha256(tls).digest() if tls is not None else bytes(32)
        key_hash = hashlib.sha256(self.signing_key_der).digest()
        return b"\x12\x20" + tls_hash + b"\x12\x20" + key_hash

    def payload(self, nonce: bytes, leaf: x509.Certificate | None = None) -> dict[str, Any]:
        """The attestation payload an NSM would return now for ``nonce`` (with the current
        leaf certificate unless ``leaf`` is given)."""
        leaf = leaf if leaf is not None else self.leaf()[1]
        return {
            "module_id": self.module_id,
            "digest": "SHA384",
            "timestamp": int(self._clock() * 1000),
            "pcrs": dict(self.pcrs),
            "certificate": leaf.public_bytes(ser.Encoding.DER),
            "cabundle": self.cabundle,
            "public_key": b"dummy",
            "user_data": self.user_data(),
            "nonce": nonce,
        }

    def sign(self, payload: Mapping[str, Any], **options: Any) -> bytes:
        """``payload`` as a COSE_Sign1 signed by the current leaf key (:func:`sign_document`)."""
        return sign_document(payload, self.leaf()[0], **options)

    def attestation_document(self, nonce: bytes) -> bytes:
        """A raw (untagged) COSE_Sign1 attestation document answering ``nonce``."""
        key, leaf = self.leaf()
        return sign_document(self.payload(nonce, leaf), key)
