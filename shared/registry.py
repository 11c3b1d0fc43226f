"""OpenGradient's on-chain TEE registry, read over JSON-RPC ``eth_call`` (pure, no I/O).

:func:`active_tees_call` builds the ``getActiveTEEs(uint8)`` request; :func:`read_active_tees`
checks the JSON-RPC answer and ABI-decodes the ``TEEInfo[]`` it returns (the 11-field struct of
today's registry, falling back to the 10-field one of older deployments). The RPC is hostile
input like any server: every field is checked, an entry that is not usable (no endpoint, no
certificate, a key that does not hash to its id, a zero payee...) is skipped with the reason,
and anything malformed ends as :class:`RegistryError`. :class:`TeeDirectory` is the cached,
thread-safe list a client picks TEEs from.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from eth_abi.abi import decode as abi_decode
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from . import wire
from .errors import InvalidRequestError, ServerError

DEFAULT_RPC_URL = "https://ogevmdevnet.opengradient.ai"
"""OpenGradient's devnet JSON-RPC (the chain that holds the TEE registry)."""
DEFAULT_REGISTRY_ADDRESS = "0x703cB174AEadB35D611858369B4b1111dC9Abda6"
"""The ``TEERegistry`` contract on that chain (OpenGradient's SDK default)."""
RPC_URL_ENV = "OPENGRADIENT_RPC_URL"
REGISTRY_ADDRESS_ENV = "OPENGRADIENT_REGISTRY_ADDRESS"
LLM_PROXY = 0
"""``teeType`` of the TEEs that serve LLM inference (1 is a validator)."""
REFRESH_SECONDS = 300.0
"""How long a fetched list is used before it is fetched again."""

GET_ACTIVE_TEES = bytes.fromhex("4b6014da")  # keccak("getActiveTEEs(uint8)")[:4]
_OHTTP = "(uint8,uint16,uint16,uint16,bytes,bytes,uint256)"
_TEE_10 = "(address,address,string,bytes,bytes,bytes32,uint8,bool,uint256,uint256)"
TEE_INFO_11 = f"(address,address,string,bytes,bytes,bytes32,uint8,bool,uint256,uint256,{_OHTTP})[]"
TEE_INFO_10 = f"{_TEE_10}[]"

MAX_ANSWER_BYTES = 4 * 2**20
MAX_ENTRIES = 256
MAX_DEPTH = 8
"""A JSON-RPC answer is an object holding a string or an error object: no deeper."""
MAX_ENDPOINT_CHARS = 256
MAX_KEY_BYTES = 4096
MAX_CERTIFICATE_BYTES = 16384
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_TEE_ID = re.compile(r"^0x[0-9a-f]{64}$")
_HEX = re.compile(r"^0x(?:[0-9a-fA-F]{2})*$")
_ZERO_ADDRESS = "0x" + "0" * 40


class RegistryError(ServerError):
    """The TEE registry could not be read (an RPC error, a malformed answer), or it lists no
    usable TEE."""


@dataclass(frozen=True)
class TeeEntry:
    """One TEE as the registry lists it, checked.

    ``tee_id`` is ``0x`` + keccak of ``public_key_der`` (the RSA key that signs answers);
    ``endpoint`` is its ``https://`` base URL; ``tls_certificate_der`` is the certificate its
    TLS connections are pinned to; ``payment_address`` the only payee a payment may go to;
    ``pcr_hash`` the ``0x`` keccak of PCR0-2 the registry admin approved.
    """

    tee_id: str
    endpoint: str
    public_key_der: bytes = field(repr=False)
    tls_certificate_der: bytes = field(repr=False)
    payment_address: str
    pcr_hash: str
    owner: str
    tee_type: int
    registered_at: int
    last_heartbeat_at: int

    @property
    def public_key_pem(self) -> str:
        """The signing key as PEM (what :class:`~.verification.TrustAnchor` takes)."""
        key = serialization.load_der_public_key(self.public_key_der)
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode()


@dataclass(frozen=True)
class Listing:
    """What one registry read gave: the usable TEEs, and why the others were skipped."""

    entries: tuple[TeeEntry, ...]
    skipped: tuple[str, ...] = ()


def checked_address(value: Any, name: str) -> str:
    """A ``0x`` 40-hex address in checksum form; InvalidRequestError naming ``name``."""
    if not isinstance(value, str) or not _ADDRESS.match(value.strip()):
        raise InvalidRequestError(
            f"{name} must be a 0x-prefixed 20-byte hex address, got {value!r}"
        )
    return to_checksum_address(value.strip())


def active_tees_call(
    registry_address: str, tee_type: int = LLM_PROXY, request_id: int = 1
) -> bytes:
    """The JSON-RPC body of ``eth_call getActiveTEEs(tee_type)`` on ``registry_address``."""
    data = GET_ACTIVE_TEES + int(tee_type).to_bytes(32, "big")
    call = {"to": registry_address, "data": "0x" + data.hex()}
    body = {"jsonrpc": "2.0", "id": request_id, "method": "eth_call", "params": [call, "latest"]}
    return json.dumps(body, separators=(",", ":")).encode()


def read_call_result(body: bytes, rpc_url: str) -> bytes:
    """The bytes an ``eth_call`` returned, from a JSON-RPC answer; RegistryError otherwise."""
    where = f"the registry RPC {rpc_url}"
    if len(body) > MAX_ANSWER_BYTES:
        raise RegistryError(f"{where} sent an answer over {MAX_ANSWER_BYTES >> 20} MiB")
    try:
        answer = wire.loads(body, "its answer", max_depth=MAX_DEPTH)  # strict, bounded nesting
    except wire.MalformedAnswerError as exc:
        raise RegistryError(f"{where} did not answer with usable JSON: {exc}") from None
    if not isinstance(answer, dict):
        raise RegistryError(f"{where} answered with a JSON {type(answer).__name__}, not an object")
    error = answer.get("error")
    if error is not None:
        message = error.get("message") if isinstance(error, dict) else error
        raise RegistryError(f"{where} refused the call: {str(message)[:200]}")
    result = answer.get("result")
    if not isinstance(result, str) or not _HEX.match(result):
        raise RegistryError(f"{where} answered without a hex 'result': {str(result)[:80]!r}")
    return bytes.fromhex(result[2:])


def decode_tees(data: bytes) -> list[tuple[Any, ...]]:
    """ABI-decode a ``TEEInfo[]``: the 11-field struct, else the 10-field one (ValueError)."""
    if not data:
        raise ValueError("the call returned no data (is there a registry at that address?)")
    problems = []
    for layout in (TEE_INFO_11, TEE_INFO_10):
        try:
            (items,) = abi_decode([layout], data)
        except Exception as exc:  # noqa: BLE001 - eth-abi raises many kinds on bad data
            problems.append(f"{type(exc).__name__}: {str(exc)[:120]}")
            continue
        return [tuple(item) for item in items]
    raise ValueError("not a TEEInfo[] in either layout (" + "; ".join(problems) + ")")


def read_active_tees(body: bytes, rpc_url: str, tee_type: int = LLM_PROXY) -> Listing:
    """The usable TEEs in a ``getActiveTEEs`` JSON-RPC answer; RegistryError if malformed."""
    data = read_call_result(body, rpc_url)
    try:
        items = decode_tees(data)
    except ValueError as exc:
        raise RegistryError(f"the registry RPC {rpc_url} returned data that is {exc}") from None
    if len(items) > MAX_ENTRIES:
        raise RegistryError(f"the registry lists {len(items)} TEEs, over {MAX_ENTRIES}")
    entries: list[TeeEntry] = []
    skipped: list[str] = []
    for index, item in enumerate(items):
        try:
            entries.append(check_entry(item, tee_type))
        except ValueError as exc:
            skipped.append(f"entry {index}: {exc}")
    return Listing(tuple(entries), tuple(skipped))


def check_entry(item: Sequence[Any], tee_type: int = LLM_PROXY) -> TeeEntry:
    """One decoded ``TEEInfo`` as a :class:`TeeEntry`; ValueError saying why it is unusable."""
    owner, payee, endpoint, key_der, cert_der, pcr, kind, enabled, registered, heartbeat = item[:10]
    key_der, cert_der = bytes(key_der), bytes(cert_der)
    tee_id = "0x" + keccak(key_der).hex()
    if kind != tee_type:
        raise ValueError(f"{tee_id} has teeType {kind}, not {tee_type}")
    if enabled is not True:
        raise ValueError(f"{tee_id} is disabled")
    url = _endpoint(endpoint, tee_id)
    if not cert_der:
        raise ValueError(f"{tee_id} has no TLS certificate")
    if len(cert_der) > MAX_CERTIFICATE_BYTES or len(key_der) > MAX_KEY_BYTES:
        raise ValueError(f"{tee_id} has an oversized key or certificate")
    try:
        x509.load_der_x509_certificate(cert_der)
    except ValueError:
        raise ValueError(f"{tee_id} has a TLS certificate that is not DER X.509") from None
    _signing_key(key_der, tee_id)
    payment_address = to_checksum_address(payee)
    if payment_address.lower() == _ZERO_ADDRESS:
        raise ValueError(f"{tee_id} has no payment address")
    return TeeEntry(
        tee_id=tee_id,
        endpoint=url,
        public_key_der=key_der,
        tls_certificate_der=cert_der,
        payment_address=payment_address,
        pcr_hash="0x" + bytes(pcr).hex(),
        owner=to_checksum_address(owner),
        tee_type=int(kind),
        registered_at=int(registered),
        last_heartbeat_at=int(heartbeat),
    )


def _endpoint(value: Any, tee_id: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{tee_id} has no endpoint")
    if len(value) > MAX_ENDPOINT_CHARS or not value.isprintable():
        raise ValueError(f"{tee_id} has a malformed endpoint")
    text = value.strip().rstrip("/")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"{tee_id} has a malformed endpoint {text[:80]!r}") from None
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        raise ValueError(f"{tee_id} has endpoint {text[:80]!r}, not an https://host URL")
    if parts.query or parts.fragment:
        raise ValueError(f"{tee_id} has an endpoint with a query or fragment")
    return text


def _signing_key(der: bytes, tee_id: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_der_public_key(der)
    except ValueError:
        raise ValueError(f"{tee_id} has a public key that is not DER SPKI") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"{tee_id} has a public key that is not RSA")
    canonical = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if canonical != der:  # the id is keccak of these bytes: they must be the key's own DER
        raise ValueError(f"{tee_id} has a public key in a non-canonical encoding")
    return key


class TeeDirectory:
    """The TEEs a client may use: a cached registry listing, refreshed every
    ``refresh_seconds`` and after a TEE failed; ``tee_id`` pins one TEE. Thread-safe; no I/O
    (the caller sends :meth:`request` and gives the answer to :meth:`update`)."""

    def __init__(
        self,
        rpc_url: str,
        registry_address: str,
        *,
        tee_id: str | None = None,
        tee_type: int = LLM_PROXY,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        choice: Callable[[Sequence[TeeEntry]], TeeEntry] = random.choice,
    ) -> None:
        self.rpc_url = rpc_url
        self.registry_address = checked_address(registry_address, "registry_address")
        if tee_id is not None and (
            not isinstance(tee_id, str) or not _TEE_ID.match(tee_id.lower())
        ):
            raise InvalidRequestError(f"tee_id must be '0x' and 64 hex digits, got {tee_id!r}")
        self.tee_id = tee_id.lower() if tee_id else None
        self.tee_type = tee_type
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._choice = choice
        self._lock = threading.Lock()
        self._listing: Listing | None = None
        self._fetched_at = 0.0
        self._failed: set[str] = set()

    def request(self) -> tuple[str, dict[str, str], bytes]:
        """URL, headers and body of the ``eth_call`` that lists the active TEEs."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        return self.rpc_url, headers, active_tees_call(self.registry_address, self.tee_type)

    def stale(self) -> bool:
        """Whether the list must be (re)fetched before choosing."""
        with self._lock:
            return self._listing is None or self._clock() - self._fetched_at >= self.refresh_seconds

    def update(self, status: int, body: bytes) -> Listing:
        """Take the RPC's answer; RegistryError if it is not a readable listing."""
        if status != 200:
            raise RegistryError(
                f"the registry RPC {self.rpc_url} answered HTTP {status}", status_code=status
            )
        listing = read_active_tees(body, self.rpc_url, self.tee_type)
        with self._lock:
            self._listing, self._fetched_at = listing, self._clock()
            self._failed &= {entry.tee_id for entry in listing.entries}
        return listing

    def entries(self) -> tuple[TeeEntry, ...]:
        """The usable TEEs of the last listing (after the ``tee_id`` pin)."""
        with self._lock:
            found = self._listing.entries if self._listing else ()
        if self.tee_id is not None:
            found = tuple(e for e in found if e.tee_id == self.tee_id)
        return found

    def choose(self, exclude: Collection[str] = ()) -> TeeEntry:
        """A TEE to call: at random among those not failed and not in ``exclude``; the failed
        ones only when nothing else is left. RegistryError when there is none."""
        entries = [e for e in self.entries() if e.tee_id not in exclude]
        with self._lock:
            healthy = [e for e in entries if e.tee_id not in self._failed]
            skipped = self._listing.skipped if self._listing else ()
        if healthy or entries:
            return self._choice(healthy or entries)
        with self._lock:
            self._fetched_at = -float("inf")  # nothing usable: read the registry again next time
        what = f"TEE {self.tee_id}" if self.tee_id else "LLM TEE"
        detail = f" (skipped: {'; '.join(skipped)[:300]})" if skipped else ""
        tried = f", besides the {len(exclude)} that failed" if exclude else ""
        raise RegistryError(
            f"no active {what} in the registry {self.registry_address} on {self.rpc_url}"
            f"{tried}{detail}"
        )

    def failed(self, tee_id: str) -> None:
        """``tee_id`` could not be reached: avoid it, and fetch the list again next time."""
        with self._lock:
            self._failed.add(tee_id)
            self._fetched_at = -float("inf")
