"""The gateway's TEE key: signs every answer as protocol.md section 3 says."""

from __future__ import annotations

import time
from typing import Any

from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import rsa

from .. import tee


def generate_key_pem() -> bytes:
    """A fresh RSA-2048 private key as unencrypted PKCS#8 PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())


class TeeSigner:
    """An RSA key standing in for an enclave's (``private_key_pem`` None: a fresh one)."""

    def __init__(self, private_key_pem: bytes | str | None = None) -> None:
        pem = private_key_pem or generate_key_pem()
        key = ser.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the TEE signing key must be an RSA private key")
        self._key = key
        public = key.public_key()
        spki = public.public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)
        self.public_key_pem = spki.decode()
        self.public_key_der = public.public_bytes(
            ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo
        )
        self.tee_id = tee.tee_id_of(public)

    def proof_fields(self, request_hash: str, output_hash: str) -> dict[str, Any]:
        """The ``tee_*`` fields of one answer, signed now."""
        now = int(time.time())
        signed = {"tee_signature": tee.sign(self._key, request_hash, output_hash, now)}
        hashes = {"tee_request_hash": request_hash, "tee_output_hash": output_hash}
        return {**signed, "tee_timestamp": now, **hashes, "tee_id": self.tee_id}

    def signing_key_info(self) -> dict[str, Any]:
        """The ``GET /signing-key`` answer."""
        enclave = {"instance_type": "local", "platform": "opengradient-gateway"}
        key = {"public_key": self.public_key_pem, "tee_id": self.tee_id}
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        return {"enclave_info": enclave, "measurements": None, **key, "timestamp": now}
