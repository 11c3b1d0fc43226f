"""The gateway's TLS certificate, made like a Nitro enclave's (nitriding's): a fresh ECDSA
P-256 key, self-signed, ``CA:FALSE``, key usage digitalSignature, extended key usage
serverAuth, SAN ``localhost``, valid for 356 days. Clients cannot check it against any CA:
they pin it (the registry publishes it)."""

from __future__ import annotations

import datetime as dt
import os
import ssl
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY_DAYS = 356


def self_signed_certificate(
    host: str = "localhost", *, days: int = VALIDITY_DAYS, not_before: dt.datetime | None = None
) -> tuple[bytes, bytes]:
    """A new (certificate DER, private key PEM) pair for ``host``."""
    key = ec.generate_private_key(ec.SECP256R1())
    organization = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "AWS Nitro enclave application")
    name = x509.Name([organization])
    start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.DER), key_pem


def server_context(certificate_der: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A server-side TLS context serving that certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    pem = ssl.DER_cert_to_PEM_cert(certificate_der).encode()
    fd, path = tempfile.mkstemp(suffix=".pem")  # load_cert_chain reads files only
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem + key_pem)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)
    return context
