"""Which TEE key to trust and what to do when an answer's proof fails (pure, no I/O).

The checks themselves are :func:`opengradient_shared.tee.verify`; this module adds the policy
("raise", "warn" or "off"), the pinned key or ``tee_id``, and reading a ``/signing-key``
answer.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from . import tee, wire
from .errors import InvalidRequestError, ServerError, VerificationError, excerpt, truncate_body
from .settings import choice_of
from .types import TeeProof

SIGNING_KEY_PATH = "/signing-key"
MAX_PEM_CHARS = 16_384
"""The longest ``public_key`` PEM accepted from ``/signing-key`` (RSA-8192 is about 1.5k)."""
_TEE_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")
_log = logging.getLogger("opengradient_shared.verification")


class VerificationWarning(UserWarning):
    """An answer's TEE proof did not verify and the policy is ``"warn"``."""


class VerificationPolicy(StrEnum):
    """What to do with each answer's TEE proof.

    ``RAISE`` (default): verify; a failure raises :class:`VerificationError` and the content is
    not returned. ``WARN``: verify; a failure warns (:class:`VerificationWarning`) and the proof
    comes back with ``verified=False``. ``OFF``: do not verify (no key is fetched).
    """

    RAISE = "raise"
    WARN = "warn"
    OFF = "off"

    @classmethod
    def parse(cls, value: VerificationPolicy | str) -> VerificationPolicy:
        """Accept a member or its value; raises InvalidRequestError naming anything else."""
        return choice_of(cls, value, "verification")


class TrustAnchor:
    """The key (or ``tee_id``) the user pinned, if any."""

    def __init__(self, public_key_pem: str | bytes | None, tee_id: str | None) -> None:
        self.key: rsa.RSAPublicKey | None = None
        if public_key_pem is not None:
            try:
                self.key = tee.load_public_key(public_key_pem)
            except (VerificationError, AttributeError, TypeError) as exc:
                raise InvalidRequestError(
                    f"tee_public_key is not an RSA PEM public key: {exc}"
                ) from None
        if tee_id is not None and (not isinstance(tee_id, str) or not _TEE_ID.match(tee_id)):
            raise InvalidRequestError(f"tee_id must be '0x' and 64 hex digits, got {tee_id!r}")
        self.tee_id = tee_id.lower() if tee_id else None
        if self.key is not None and self.tee_id and tee.tee_id_of(self.key) != self.tee_id:
            raise InvalidRequestError(
                f"tee_public_key has tee_id {tee.tee_id_of(self.key)}, not the given tee_id "
                f"{self.tee_id}; pin one TEE"
            )

    def key_from_answer(self, status: int, body: bytes, url: str) -> rsa.RSAPublicKey:
        """Read a ``GET /signing-key`` answer; check its ``tee_id`` (and the pinned one)."""
        if status != 200:
            raise VerificationError(
                f"could not fetch the TEE signing key from {url} ({status}: "
                f"{truncate_body(body.decode('utf-8', 'replace'), 200)}); pin it with "
                "tee_public_key or set verification='off'"
            )
        try:
            data = wire.as_object(wire.loads(body, f"{url}'s answer"), "signing-key answer")
            pem = wire.as_str(data.get("public_key"), "signing-key public_key")
            claimed = wire.opt_str(data, "tee_id", "signing-key")
        except ServerError as exc:
            raise VerificationError(f"{url} did not answer a JSON public_key: {exc}") from None
        if len(pem) > MAX_PEM_CHARS:
            raise VerificationError(f"{url} answered a public_key of {len(pem)} characters")
        try:
            key = tee.load_public_key(pem)
        except VerificationError as exc:
            raise VerificationError(f"{url} did not answer a usable public_key: {exc}") from None
        actual = tee.tee_id_of(key)
        if claimed and claimed.lower() != actual:
            raise VerificationError(
                f"{url} announced tee_id {excerpt(claimed, 80)}, but its key's tee_id is {actual}"
            )
        if self.tee_id and actual != self.tee_id:
            raise VerificationError(
                f"the TEE key served by {url} has tee_id {actual}, not the pinned {self.tee_id}"
            )
        return key


def check_proof(
    policy: VerificationPolicy,
    fields: Mapping[str, Any],
    key: rsa.RSAPublicKey | None,
    *,
    request_hash: str,
    output_hash: str,
    key_problem: str | None = None,
    now: float | None = None,
    max_age_seconds: float | None = None,
) -> TeeProof | None:
    """Verify the ``tee_*`` fields of an answer under ``policy``.

    With ``now``, a proof older than ``max_age_seconds`` or dated in the future (beyond
    :data:`~.tee.DEFAULT_MAX_SKEW_SECONDS`) fails too. Returns the proof (``verified`` True
    when it checked out), or None when the answer carried none and the policy lets that pass.
    """
    if policy is VerificationPolicy.OFF:
        try:
            return tee.proof_from_fields(fields)
        except VerificationError:
            return None
    proof: TeeProof | None = None
    try:
        proof = tee.proof_from_fields(fields)
        if key is None:
            raise VerificationError(key_problem or "no trusted TEE key is known")
        return tee.verify(
            proof,
            key,
            expected_request_hash=request_hash,
            expected_output_hash=output_hash,
            now=now,
            max_age_seconds=max_age_seconds,
        )
    except VerificationError as exc:
        if policy is VerificationPolicy.RAISE:
            raise VerificationError(
                f"{exc}; the answer was withheld (verification='raise')"
            ) from None
        _log.warning("TEE proof not verified: %s", exc)
        warnings.warn(f"TEE proof not verified: {exc}", VerificationWarning, stacklevel=4)
        return proof
