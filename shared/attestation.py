"""AWS Nitro Enclaves attestation documents: a pure verifier (no I/O).

A document is a COSE_Sign1 (``[protected, unprotected, payload, signature]``, untagged or tag
18) whose payload is a CBOR map (``module_id``, ``digest``, ``timestamp`` in ms, ``pcrs``,
``certificate``, ``cabundle``, ``public_key``, ``user_data``, ``nonce``). It proves, when every
check here holds, that hardware whose certificate chain leads to the pinned AWS Nitro root
measured an enclave image as ``PCR0..2`` and, at ``timestamp``, answered our ``nonce`` with
``user_data``. nitriding's ``user_data`` (68 bytes) is ``12 20 || sha256(TLS certificate DER) ||
12 20 || sha256(signing key DER)``: it binds the connection's certificate and the TEE's signing
key to that enclave.

The document is hostile input: its size is bounded, its CBOR is walked (depth, lengths, no tags)
before ``cbor2`` decodes it, every field's type is checked, and every failure is an
:class:`AttestationError` naming what failed. The certificate chain is checked link by link
(the Nitro leaf lacks an Authority Key Identifier, which X.509 path builders require).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from eth_hash.auto import keccak

from .errors import InvalidRequestError, VerificationError

__all__ = [
    "ATTESTATION_PATH",
    "AWS_NITRO_ROOT_SHA256",
    "AttestationError",
    "AttestationVerdict",
    "NitroDocument",
    "attestation_request_path",
    "check_binding",
    "check_measurements",
    "new_nonce",
    "parse_document",
    "pcr_hash_of",
    "read_attestation_answer",
    "verify_attestation",
    "verify_document",
]

AWS_NITRO_ROOT_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
"""SHA-256 of the DER of AWS's Nitro Enclaves root certificate (``CN=aws.nitro-enclaves``)."""

ATTESTATION_PATH = "/enclave/attestation"
"""nitriding's endpoint: ``GET /enclave/attestation?nonce=<40 hex>`` answers base64(COSE)."""

MAX_DOCUMENT_BYTES = 32 * 1024
"""A larger document is refused before decoding (a real one is about 4.5 KiB)."""

MAX_ANSWER_BYTES = (MAX_DOCUMENT_BYTES + 2) // 3 * 4 + 16
"""The largest ``/enclave/attestation`` body read: base64 of the largest document, a newline."""

MAX_CBOR_DEPTH = 8
"""Nesting deeper than this is refused (a document nests 3 levels)."""

FUTURE_SKEW_SECONDS = 60.0
"""How far in the future (clock skew) a document's timestamp may be, as og-evm allows."""

ES384 = -35  # COSE algorithm identifier
_CABUNDLE_MAX = 8
_NONCE_RE = re.compile(r"[0-9a-fA-F]{40}")
_HASH_RE = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_MULTIHASH_SHA256 = b"\x12\x20"
_OPTIONAL_LIMITS = {"public_key": 1024, "user_data": 512, "nonce": 512}


class AttestationError(VerificationError):
    """An enclave's attestation document is malformed or does not verify; the message names
    the check that failed."""


@dataclass(frozen=True)
class AttestationVerdict:
    """What a verified attestation established.

    ``pcr_hash`` is ``0x`` + keccak256(PCR0 || PCR1 || PCR2) (the registry's ``pcrHash``);
    ``timestamp`` is the document's time and ``checked_at`` the ``now`` it was checked at;
    ``expires_at`` is the leaf certificate's notAfter (all unix seconds)."""

    pcr_hash: str
    module_id: str
    timestamp: float
    checked_at: float
    expires_at: float


@dataclass(frozen=True)
class NitroDocument:
    """The payload of an attestation document, its fields type-checked (not yet verified
    unless it came from :func:`verify_document`). ``timestamp`` is unix seconds."""

    module_id: str
    digest: str
    timestamp: float
    pcrs: Mapping[int, bytes]
    certificate: bytes
    cabundle: tuple[bytes, ...]
    public_key: bytes | None
    user_data: bytes | None
    nonce: bytes | None

    @property
    def pcr_hash(self) -> str:
        """``0x`` + keccak256(PCR0 || PCR1 || PCR2) over the raw PCR bytes."""
        return pcr_hash_of(self.pcrs)

    @property
    def expires_at(self) -> float:
        """The leaf certificate's notAfter, unix seconds."""
        return _load_certificate(
            self.certificate, "the leaf certificate"
        ).not_valid_after_utc.timestamp()


def new_nonce() -> str:
    """A fresh attestation nonce: 20 random bytes as 40 lower-case hex characters."""
    return secrets.token_hex(20)


def attestation_request_path(nonce: str) -> str:
    """The path and query of an attestation request: ``/enclave/attestation?nonce=<hex>``."""
    return f"{ATTESTATION_PATH}?nonce={_nonce_bytes(nonce).hex()}"


def pcr_hash_of(pcrs: Mapping[int, bytes]) -> str:
    """``0x`` + keccak256(PCR0 || PCR1 || PCR2), as OpenGradient's registry computes it."""
    return "0x" + keccak(pcrs[0] + pcrs[1] + pcrs[2]).hex()


def read_attestation_answer(body: bytes) -> bytes:
    """The COSE bytes of a ``GET /enclave/attestation`` body (base64 text, maybe a newline)."""
    if len(body) > MAX_ANSWER_BYTES:
        raise AttestationError(
            f"the attestation answer is {len(body)} bytes, over {MAX_ANSWER_BYTES}"
        )
    text = body.strip()
    if not text:
        raise AttestationError("the attestation answer is empty")
    try:
        document = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AttestationError("the attestation answer is not base64 text") from None
    if len(document) > MAX_DOCUMENT_BYTES:
        raise AttestationError(f"the attestation document is over {MAX_DOCUMENT_BYTES} bytes")
    return document


# --- CBOR, with care ---------------------------------------------------------------------------

_INDEFINITE = -1


def _scan_cbor(data: bytes, what: str) -> None:
    """Walk one CBOR item's headers without building it: every length within the data, nesting
    at most MAX_CBOR_DEPTH, no tags, no indefinite strings, only null/true/false as simple
    values, nothing after the item. Then ``cbor2`` decodes a structure that cannot surprise."""
    end, pos = len(data), 0
    pending = [1]  # items still to read per open container (_INDEFINITE: until a break)
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        if pos >= end:
            raise AttestationError(f"{what} ends early (truncated CBOR)")
        initial = data[pos]
        pos += 1
        if initial == 0xFF:
            if pending[-1] != _INDEFINITE:
                raise AttestationError(f"{what} has a stray CBOR break")
            pending.pop()
            continue
        if pending[-1] != _INDEFINITE:
            pending[-1] -= 1
        major, info = initial >> 5, initial & 0x1F
        argument: int | None
        if info < 24:
            argument = info
        elif info <= 27:
            size = 1 << (info - 24)
            if pos + size > end:
                raise AttestationError(f"{what} ends early (truncated CBOR)")
            argument = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        elif info == 31 and major in (4, 5):
            argument = None
        else:
            raise AttestationError(f"{what} has an unsupported CBOR item (0x{initial:02x})")
        if major in (0, 1):
            continue
        if major in (2, 3):
            assert argument is not None
            if argument > end - pos:
                raise AttestationError(f"{what} has a string longer than the document")
            pos += argument
        elif major in (4, 5):
            if len(pending) > MAX_CBOR_DEPTH:
                raise AttestationError(f"{what} nests deeper than {MAX_CBOR_DEPTH} levels")
            if argument is None:
                pending.append(_INDEFINITE)
            else:
                count = argument * (2 if major == 5 else 1)
                if count > end - pos:  # each item takes at least one byte
                    raise AttestationError(f"{what} declares more items than it holds")
                pending.append(count)
        elif major == 6:
            raise AttestationError(f"{what} carries a CBOR tag, which a document never does")
        elif info not in (20, 21, 22):  # false, true, null
            raise AttestationError(f"{what} has an unsupported CBOR simple value or float")
    if pos != end:
        raise AttestationError(f"{what} has {end - pos} bytes after its CBOR item")


def _decode(data: bytes, what: str) -> Any:
    _scan_cbor(data, what)
    try:
        return cbor2.loads(data)
    except Exception as exc:  # cbor2 raises several kinds; the scan leaves little to fail
        raise AttestationError(f"{what} is not valid CBOR: {exc}") from exc


def _untag(document: bytes) -> bytes:
    """The COSE_Sign1 array, without its optional tag 18 (``d2``, or ``d8 12``)."""
    if document[:1] == b"\xd2":
        return document[1:]
    if document[:2] == b"\xd8\x12":
        return document[2:]
    return document


# --- parsing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sign1:
    protected: bytes
    payload: bytes
    signature: bytes
    document: NitroDocument


def _bytes_field(payload: Mapping[Any, Any], name: str, limit: int) -> bytes | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, bytes):
        raise AttestationError(f"the document's {name} is not a byte string")
    if len(value) > limit:
        raise AttestationError(f"the document's {name} is {len(value)} bytes, over {limit}")
    return value


def _pcrs(value: Any) -> dict[int, bytes]:
    if not isinstance(value, dict) or not value:
        raise AttestationError("the document's pcrs is not a non-empty map")
    pcrs: dict[int, bytes] = {}
    for index, pcr in value.items():
        if type(index) is not int or not 0 <= index <= 31:
            raise AttestationError(f"the document has a PCR index {index!r} outside 0..31")
        if not isinstance(pcr, bytes) or len(pcr) not in (32, 48, 64):
            raise AttestationError(f"the document's PCR{index} is not 32, 48 or 64 bytes")
        pcrs[index] = pcr
    for index in (0, 1, 2):
        if index not in pcrs:
            raise AttestationError(f"the document has no PCR{index}")
    return pcrs


def _payload(payload: Any) -> NitroDocument:
    if not isinstance(payload, dict):
        raise AttestationError("the document's payload is not a CBOR map")
    module_id, digest, timestamp = (payload.get(k) for k in ("module_id", "digest", "timestamp"))
    if not isinstance(module_id, str) or not module_id:
        raise AttestationError("the document's module_id is missing or not text")
    if not isinstance(digest, str):
        raise AttestationError("the document's digest is missing or not text")
    if type(timestamp) is not int or not 0 < timestamp < 2**64:
        raise AttestationError("the document's timestamp is missing or not a positive integer")
    certificate = payload.get("certificate")
    if not isinstance(certificate, bytes) or not certificate:
        raise AttestationError("the document's certificate is missing or not a byte string")
    cabundle = payload.get("cabundle")
    if not isinstance(cabundle, list) or not 1 <= len(cabundle) <= _CABUNDLE_MAX:
        raise AttestationError(f"the document's cabundle is not a list of 1..{_CABUNDLE_MAX}")
    if not all(isinstance(cert, bytes) and cert for cert in cabundle):
        raise AttestationError("the document's cabundle holds something other than certificates")
    optional = {name: _bytes_field(payload, name, n) for name, n in _OPTIONAL_LIMITS.items()}
    return NitroDocument(
        module_id=module_id,
        digest=digest,
        timestamp=timestamp / 1000,
        pcrs=_pcrs(payload.get("pcrs")),
        certificate=certificate,
        cabundle=tuple(cabundle),
        **optional,
    )


def _parse(document: bytes) -> _Sign1:
    if not isinstance(document, bytes):
        raise AttestationError("the attestation document is not bytes")
    if len(document) > MAX_DOCUMENT_BYTES:
        raise AttestationError(
            f"the attestation document is {len(document)} bytes, over {MAX_DOCUMENT_BYTES}"
        )
    sign1 = _decode(_untag(document), "the attestation document")
    if not isinstance(sign1, list) or len(sign1) != 4:
        raise AttestationError("the attestation document is not a COSE_Sign1 array of 4")
    protected, unprotected, payload, signature = sign1
    if not isinstance(protected, bytes) or not isinstance(unprotected, dict):
        raise AttestationError("the COSE_Sign1 headers are not a byte string and a map")
    if not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise AttestationError("the COSE_Sign1 payload or signature is not a byte string")
    header = _decode(protected, "the COSE protected header")
    if not isinstance(header, dict) or header.get(1) != ES384 or type(header.get(1)) is not int:
        raise AttestationError("the COSE protected header does not name alg ES384 (-35)")
    if len(signature) != 96:
        raise AttestationError(f"the COSE signature is {len(signature)} bytes, not 96 (ES384)")
    return _Sign1(protected, payload, signature, _payload(_decode(payload, "the payload")))


def parse_document(document: bytes) -> NitroDocument:
    """The type-checked payload of a COSE_Sign1 attestation document, verifying nothing."""
    return _parse(document).document


# --- signature and chain ------------------------------------------------------------------------


def _load_certificate(der: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion) as exc:
        raise AttestationError(f"{what} is not a DER X.509 certificate: {exc}") from exc


def _check_link(cert: x509.Certificate, issuer: x509.Certificate, what: str, now: float) -> None:
    """``cert`` is signed by ``issuer`` (whose subject is its issuer) and valid at ``now``."""
    try:
        cert.verify_directly_issued_by(issuer)
    except InvalidSignature:
        raise AttestationError(f"{what}'s signature does not verify with its issuer") from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise AttestationError(f"{what} is not issued by the certificate above it: {exc}") from exc
    start, end = cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()
    if not start <= now <= end:
        raise AttestationError(
            f"{what} is not valid at {now:.0f} (valid {start:.0f} to {end:.0f}, unix seconds)"
        )


def _extension(cert: x509.Certificate, kind: type[Any], what: str) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:  # malformed or duplicate extensions
        raise AttestationError(f"{what} has unreadable extensions: {exc}") from exc


def _check_issuer(cert: x509.Certificate, what: str, below: int) -> None:
    """``cert`` may issue certificates, with ``below`` intermediate CAs under it."""
    constraints = _extension(cert, x509.BasicConstraints, what)
    if constraints is None or not constraints.ca:
        raise AttestationError(f"{what} is not a CA (BasicConstraints CA:TRUE) but issues one")
    if constraints.path_length is not None and below > constraints.path_length:
        raise AttestationError(
            f"{what} allows {constraints.path_length} CAs below it (pathlen) but has {below}"
        )
    usage = _extension(cert, x509.KeyUsage, what)
    if usage is None or not usage.key_cert_sign:
        raise AttestationError(f"{what} lacks the keyCertSign key usage")


def _check_chain(document: NitroDocument, now: float, root_sha256: str) -> x509.Certificate:
    """The chain root → intermediates → leaf, link by link; returns the leaf."""
    names = [
        "cabundle[0] (the root)",
        *(f"cabundle[{i}]" for i in range(1, len(document.cabundle))),
        "the leaf certificate",
    ]
    ders = [*document.cabundle, document.certificate]
    if hashlib.sha256(ders[0]).hexdigest() != root_sha256:
        raise AttestationError(
            "the document's root certificate is not the pinned root "
            f"(SHA-256 {hashlib.sha256(ders[0]).hexdigest()}, expected {root_sha256})"
        )
    chain = [_load_certificate(der, name) for der, name in zip(ders, names, strict=True)]
    _check_link(chain[0], chain[0], names[0], now)
    for i in range(len(chain) - 1):
        _check_issuer(chain[i], names[i], below=len(chain) - 2 - i)
        _check_link(chain[i + 1], chain[i], names[i + 1], now)
    leaf = chain[-1]
    constraints = _extension(leaf, x509.BasicConstraints, names[-1])
    if constraints is not None and constraints.ca:
        raise AttestationError("the leaf certificate is a CA")
    usage = _extension(leaf, x509.KeyUsage, names[-1])
    if usage is None or not usage.digital_signature:
        raise AttestationError("the leaf certificate lacks the digitalSignature key usage")
    return leaf


def _check_signature(sign1: _Sign1, leaf: x509.Certificate) -> None:
    try:
        key = leaf.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise AttestationError(f"the leaf certificate's key is unreadable: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise AttestationError("the leaf certificate's key is not ECDSA P-384 (ES384)")
    signed = cbor2.dumps(["Signature1", sign1.protected, b"", sign1.payload])
    r, s = (int.from_bytes(sign1.signature[i : i + 48], "big") for i in (0, 48))
    try:
        key.verify(encode_dss_signature(r, s), signed, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise AttestationError("the document's COSE signature does not verify") from None


# --- the checks ---------------------------------------------------------------------------------


def _nonce_bytes(nonce: str) -> bytes:
    if not isinstance(nonce, str) or not _NONCE_RE.fullmatch(nonce):
        raise InvalidRequestError("an attestation nonce is 40 hex characters (use new_nonce())")
    return bytes.fromhex(nonce)


def _hash_text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _HASH_RE.fullmatch(value):
        raise InvalidRequestError(f"{what} must be 32 bytes as hex ('0x' + 64 hex), got {value!r}")
    return "0x" + value.lower().removeprefix("0x")


def verify_document(
    document: bytes,
    *,
    nonce: str,
    now: float,
    max_age_seconds: float = 300,
    root_sha256: str = AWS_NITRO_ROOT_SHA256,
) -> NitroDocument:
    """Parse ``document`` and check its chain to the root pinned by ``root_sha256`` (link by
    link, at ``now``), its ES384 signature, digest SHA384, its age (at most
    ``max_age_seconds``, at most FUTURE_SKEW_SECONDS ahead) and that it answers ``nonce``.
    Measurements and the user_data binding are left to :func:`check_measurements` and
    :func:`check_binding`. Raises :class:`AttestationError`."""
    expected_nonce = _nonce_bytes(nonce)
    root = root_sha256.lower() if isinstance(root_sha256, str) else ""
    if not re.fullmatch(r"[0-9a-f]{64}", root):
        raise InvalidRequestError("root_sha256 must be 64 hex characters (a SHA-256)")
    sign1 = _parse(document)
    parsed = sign1.document
    leaf = _check_chain(parsed, now, root)
    _check_signature(sign1, leaf)
    if parsed.digest != "SHA384":
        raise AttestationError(f"the document's digest is {parsed.digest!r}, not 'SHA384'")
    age = now - parsed.timestamp
    if age > max_age_seconds:
        raise AttestationError(
            f"the document is {age:.0f} s old, older than the {max_age_seconds:.0f} s allowed"
        )
    if -age > FUTURE_SKEW_SECONDS:
        raise AttestationError(f"the document is dated {-age:.0f} s in the future")
    if parsed.nonce != expected_nonce:
        raise AttestationError("the document does not answer our nonce (a replayed document?)")
    return parsed


def check_measurements(
    document: NitroDocument,
    *,
    expected_pcr_hash: str | None,
    allowed_measurements: Collection[str] | None = None,
) -> str:
    """Check keccak(PCR0||PCR1||PCR2) equals ``expected_pcr_hash`` (when given) and is one of
    ``allowed_measurements`` (when given); returns it (``0x`` + hex)."""
    actual = document.pcr_hash
    if expected_pcr_hash is not None:
        expected = _hash_text(expected_pcr_hash, "expected_pcr_hash")
        if actual != expected:
            raise AttestationError(
                f"the enclave's measurements hash to {actual}, not the expected {expected}"
            )
    if allowed_measurements is not None:
        if isinstance(allowed_measurements, str):
            raise InvalidRequestError("allowed_measurements is a collection of PCR hashes")
        allowed = {_hash_text(m, "an allowed measurement") for m in allowed_measurements}
        if actual not in allowed:
            raise AttestationError(
                f"the enclave's measurements ({actual}) are not among the allowed measurements"
            )
    return actual


def check_binding(
    document: NitroDocument, *, tls_certificate_sha256: bytes, signing_key_sha256: bytes
) -> None:
    """Check user_data is ``12 20 || tls_certificate_sha256 || 12 20 || signing_key_sha256``
    (nitriding's binding of the TLS certificate and the signing key to the enclave)."""
    data = document.user_data
    if data is None or len(data) != 68:
        size = "missing" if data is None else f"{len(data)} bytes"
        raise AttestationError(f"the document's user_data is {size}, not the 68-byte binding")
    if data[0:2] != _MULTIHASH_SHA256 or data[34:36] != _MULTIHASH_SHA256:
        raise AttestationError("the document's user_data is not two SHA-256 multihashes")
    if data[2:34] != tls_certificate_sha256:
        raise AttestationError(
            "the document's user_data does not bind this TLS certificate (SHA-256 differs)"
        )
    if data[36:68] != signing_key_sha256:
        raise AttestationError(
            "the document's user_data does not bind this signing key (SHA-256 differs)"
        )


def verify_attestation(
    document: bytes,
    *,
    nonce: str,
    tls_certificate_der: bytes,
    signing_key_der: bytes,
    expected_pcr_hash: str | None,
    now: float,
    allowed_measurements: Collection[str] | None = None,
    max_age_seconds: float = 300,
    root_sha256: str = AWS_NITRO_ROOT_SHA256,
) -> AttestationVerdict:
    """Verify an enclave's attestation document completely: :func:`verify_document` (chain to
    the pinned root, signature, freshness, nonce), :func:`check_measurements` and
    :func:`check_binding` of ``tls_certificate_der`` (the connection's certificate) and
    ``signing_key_der`` (the TEE's signing key, DER SubjectPublicKeyInfo). Raises
    :class:`AttestationError` naming the first check that failed."""
    parsed = verify_document(
        document, nonce=nonce, now=now, max_age_seconds=max_age_seconds, root_sha256=root_sha256
    )
    pcr_hash = check_measurements(
        parsed, expected_pcr_hash=expected_pcr_hash, allowed_measurements=allowed_measurements
    )
    check_binding(
        parsed,
        tls_certificate_sha256=hashlib.sha256(tls_certificate_der).digest(),
        signing_key_sha256=hashlib.sha256(signing_key_der).digest(),
    )
    return AttestationVerdict(
        pcr_hash=pcr_hash,
        module_id=parsed.module_id,
        timestamp=parsed.timestamp,
        checked_at=now,
        expires_at=parsed.expires_at,
    )
