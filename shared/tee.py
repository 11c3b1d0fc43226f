"""TEE proofs: canonical request form, hashes, RSA-PSS signing and verification (pure, no I/O).

The rules are OpenGradient gateway's (protocol.md section 3): the request hash is Keccak-256 of
a canonical JSON rebuilt from the request body, the output hash is Keccak-256 of the text (or of
the tool calls), and the signature is RSA-PSS/SHA-256 over
``keccak256(request_hash || output_hash || timestamp as 32 bytes)``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from eth_hash.auto import keccak

from .errors import VerificationError, excerpt
from .types import TeeProof

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def canonical_chat_request(body: Mapping[str, Any]) -> str:
    """The canonical JSON of a chat request body, as the gateway hashes it."""
    messages = []
    for message in body.get("messages") or []:
        role = message.get("role")
        reduced: dict[str, Any] = {"role": role, "content": message.get("content")}
        if role == "assistant":
            reduced["content"] = message.get("content") or ""
            if message.get("tool_calls"):
                reduced["tool_calls"] = message["tool_calls"]
        elif role == "tool":
            reduced["tool_call_id"] = message.get("tool_call_id")
        messages.append(reduced)
    temperature = body.get("temperature")
    canonical: dict[str, Any] = {
        "model": body.get("model"),
        "messages": messages,
        "temperature": float(temperature) if temperature is not None else 0.0,
    }
    for key in ("max_tokens", "stop", "tools", "response_format"):
        if body.get(key):
            canonical[key] = body[key]
    return json.dumps(canonical, sort_keys=True)


def canonical_completion_request(body: Mapping[str, Any]) -> str:
    """The canonical JSON of a completion request body, as the gateway hashes it."""
    temperature = body.get("temperature")
    max_tokens = body.get("max_tokens")
    canonical: dict[str, Any] = {
        "model": body.get("model"),
        "prompt": body.get("prompt"),
        "temperature": float(temperature) if temperature is not None else 1.0,
        "max_tokens": max_tokens if max_tokens is not None else 16,
    }
    if body.get("stop"):
        canonical["stop"] = body["stop"]
    return json.dumps(canonical, sort_keys=True)


def request_hash(body: Mapping[str, Any], *, completion: bool = False) -> str:
    """Bare lower-case hex Keccak-256 of the canonical request."""
    canonical = canonical_completion_request(body) if completion else canonical_chat_request(body)
    return keccak(canonical.encode("utf-8")).hex()


def output_hash(content: str | None, tool_calls: Sequence[Mapping[str, Any]] | None = None) -> str:
    """Bare lower-case hex Keccak-256 of the answer: its text, or its tool calls when present."""
    if tool_calls:
        reduced = [
            {
                "id": call.get("id"),
                "type": call.get("type", "function"),
                "function": {
                    "name": (call.get("function") or {}).get("name"),
                    "arguments": (call.get("function") or {}).get("arguments"),
                },
            }
            for call in tool_calls
        ]
        data = json.dumps(reduced, sort_keys=True)
    else:
        data = content or ""
    return keccak(data.encode("utf-8")).hex()


def message_hash(request_hex: str, output_hex: str, timestamp: int) -> bytes:
    """The 32 bytes the TEE signs."""
    return keccak(
        bytes.fromhex(request_hex) + bytes.fromhex(output_hex) + timestamp.to_bytes(32, "big")
    )


def tee_id_of(public_key: rsa.RSAPublicKey) -> str:
    """``0x`` + Keccak-256 of the key's DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "0x" + keccak(der).hex()


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """Load an RSA public key from PEM text; raises VerificationError on anything else."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"the TEE public key is not a valid PEM key: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise VerificationError("the TEE public key is not an RSA key")
    return key


def sign(private_key: rsa.RSAPrivateKey, request_hex: str, output_hex: str, timestamp: int) -> str:
    """Base64 RSA-PSS signature of one answer (what a TEE does; used by the local gateway)."""
    digest = message_hash(request_hex, output_hex, timestamp)
    return base64.b64encode(private_key.sign(digest, _PSS, hashes.SHA256())).decode("ascii")


MAX_TIMESTAMP = 2**63 - 1
DEFAULT_MAX_SKEW_SECONDS = 60.0
"""How far in the future a proof's timestamp may be (clock differences) before it is refused."""


def proof_from_fields(fields: Mapping[str, Any]) -> TeeProof | None:
    """Read the ``tee_*`` fields of a response body or final stream chunk (None if absent).

    Raises :class:`VerificationError` when they are incomplete or of the wrong type.
    """
    keys = ("tee_id", "tee_signature", "tee_request_hash", "tee_output_hash", "tee_timestamp")
    if not any(key in fields for key in keys):
        return None
    texts = {}
    for key in keys[:4]:
        value = fields.get(key)
        if not isinstance(value, str) or not value or len(value) > 4096:
            raise VerificationError(
                f"the answer's TEE proof is incomplete or malformed: {key} is "
                f"{excerpt(value, 60)}, not a string of 1 to 4096 characters"
            )
        texts[key] = value
    stamp = fields.get("tee_timestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, int) or not 0 <= stamp <= MAX_TIMESTAMP:
        raise VerificationError(
            "the answer's TEE proof is incomplete or malformed: tee_timestamp is "
            f"{excerpt(stamp, 60)}, not a unix time in seconds"
        )
    return TeeProof(
        tee_id=texts["tee_id"],
        signature=texts["tee_signature"],
        request_hash=texts["tee_request_hash"],
        output_hash=texts["tee_output_hash"],
        timestamp=stamp,
    )


def verify(
    proof: TeeProof | None,
    public_key: rsa.RSAPublicKey,
    *,
    expected_request_hash: str,
    expected_output_hash: str,
    now: float | None = None,
    max_age_seconds: float | None = None,
    max_skew_seconds: float = DEFAULT_MAX_SKEW_SECONDS,
) -> TeeProof:
    """Check a proof against a trusted key and what was actually sent and received.

    With ``now`` (unix seconds), the proof's timestamp must also be no more than
    ``max_age_seconds`` old (when given) and no more than ``max_skew_seconds`` ahead.
    Returns the proof with ``verified=True``; raises :class:`VerificationError` naming the
    first check that failed.
    """
    if proof is None:
        raise VerificationError("the answer carries no TEE proof (tee_* fields are missing)")
    trusted_id = tee_id_of(public_key)
    if proof.tee_id.lower() != trusted_id:
        raise VerificationError(
            f"the answer was signed by TEE {excerpt(proof.tee_id, 80)}, not the trusted TEE "
            f"{trusted_id}"
        )
    if proof.request_hash.lower() != expected_request_hash:
        raise VerificationError(
            "the TEE proof's request hash does not match the request that was sent"
        )
    if proof.output_hash.lower() != expected_output_hash:
        raise VerificationError(
            "the TEE proof's output hash does not match the content that was received"
        )
    try:
        signature = base64.b64decode(proof.signature, validate=True)
        digest = message_hash(proof.request_hash, proof.output_hash, proof.timestamp)
        public_key.verify(signature, digest, _PSS, hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError, OverflowError):
        raise VerificationError("the TEE signature does not verify with the trusted key") from None
    if now is not None:
        if proof.timestamp > now + max_skew_seconds:
            raise VerificationError(
                f"the TEE proof is dated {proof.timestamp - now:.0f} s in the future "
                f"(more than the {max_skew_seconds:g} s allowed for clock differences)"
            )
        if max_age_seconds is not None and proof.timestamp < now - max_age_seconds:
            raise VerificationError(
                f"the TEE proof is {now - proof.timestamp:.0f} s old, older than "
                f"max_proof_age_seconds={max_age_seconds:g}; a replayed or delayed answer"
            )
    return replace(proof, verified=True)
