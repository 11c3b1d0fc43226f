"""The gateway's TLS: a certificate made like a Nitro enclave's (nitriding's), served by
``LocalGateway(tls=True)`` and ``opengradient-gateway --tls``."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import subprocess
import sys

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from opengradient_shared.gateway.tlscert import self_signed_certificate
from opengradient_shared.pinning import pinned_context


def test_the_certificate_is_like_nitridings() -> None:
    der, _ = self_signed_certificate()
    cert = x509.load_der_x509_certificate(der)
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert cert.issuer == cert.subject
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(extended) == [ExtendedKeyUsageOID.SERVER_AUTH]
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == dt.timedelta(days=356)
    assert self_signed_certificate()[0] != der  # a fresh key and serial each time


def test_the_cli_serves_https_that_a_pin_of_its_certificate_accepts() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "opengradient_shared.gateway", "--port", "0", "--tls"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on https://127.0.0.1:"), line
        port = int(line.strip().rsplit(":", 1)[1])
        pem = ssl.get_server_certificate(("127.0.0.1", port))

        with socket.create_connection(("127.0.0.1", port)) as raw:
            context = pinned_context(ssl.PEM_cert_to_DER_cert(pem))
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := tls.recv(4096):
                    answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and b'"status": "ok"' in answer
    finally:
        process.terminate()
        process.wait(timeout=10)
