"""Calls to OpenGradient's network without a URL: TEEs found in the on-chain registry, TLS
pinned to each one's registered certificate, the registered key trusted for its proofs, its
registered payment address the only payee, and (optionally) its Nitro attestation verified
by the client. Written as generators (sans I/O) that the blocking and asyncio drivers run.

Discovery is lazy: nothing is fetched until the first call. The listing is cached for
``refresh_seconds`` and fetched again when a TEE fails; a connection failure before any
payment was sent moves the call to another TEE (at most :data:`FAILOVER_LIMIT` of them).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Generator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .attestation import (
    ATTESTATION_PATH,
    AWS_NITRO_ROOT_SHA256,
    AttestationError,
    AttestationVerdict,
    new_nonce,
    read_attestation_answer,
    verify_attestation,
)
from .errors import InvalidRequestError, NetworkError
from .exchange import Flow, HttpRequest, HttpResponse
from .pinning import Pins
from .registry import (
    DEFAULT_REGISTRY_ADDRESS,
    DEFAULT_RPC_URL,
    REFRESH_SECONDS,
    REGISTRY_ADDRESS_ENV,
    RPC_URL_ENV,
    TeeDirectory,
    TeeEntry,
)
from .settings import choice_of
from .types import TeeOrigin
from .x402 import exact, upto


class AttestationPolicy(StrEnum):
    """Whether the client verifies a registry TEE's Nitro attestation itself (``VERIFY``, the
    default) or relies on the registry alone (``OFF``)."""

    VERIFY = "verify"
    OFF = "off"

    @classmethod
    def parse(cls, value: AttestationPolicy | str) -> AttestationPolicy:
        """Accept a member or its value; InvalidRequestError naming anything else."""
        return choice_of(cls, value, "attestation")


ROOT_ENV = "OPENGRADIENT_ATTESTATION_ROOT_SHA256"
"""Pins another attestation root than AWS's (for a local gateway's test enclave only)."""
FAILOVER_LIMIT = 3
"""How many TEEs one call tries before it gives up."""
PAYMENT_HEADERS = frozenset(
    name.lower() for name in (exact.HEADER, upto.HEADER, upto.SESSION_HEADER)
)

T = TypeVar("T")
Steps = Generator[HttpRequest, HttpResponse, T]


@dataclass(frozen=True)
class Route:
    """Where one call goes: the TEE, the key its proofs must verify with, what to report."""

    entry: TeeEntry
    key: rsa.RSAPublicKey
    origin: TeeOrigin


class Watched:
    """Runs an exchange flow and notes the requests that carried a payment (a signed payment
    header or a session id): once one of them may have reached the TEE, a failure of the call
    is never moved to another TEE (that could pay twice)."""

    def __init__(self) -> None:
        self.delivered_payment = False
        """A request carrying a payment got an answer."""
        self.pending_payment = False
        """The request in flight carries a payment."""

    def may_have_paid(self, failure: NetworkError) -> bool:
        """Whether a payment may have reached the TEE, given the failure that ended the call."""
        return self.delivered_payment or (self.pending_payment and failure.request_sent)

    def flow(self, inner: Flow) -> Flow:
        """``inner``, step for step (closing it when closed)."""
        try:
            step = next(inner)
            while True:
                self.pending_payment = isinstance(step, HttpRequest) and any(
                    name.lower() in PAYMENT_HEADERS for name in step.headers
                )
                answer = yield step
                self.delivered_payment = self.delivered_payment or self.pending_payment
                self.pending_payment = False
                step = inner.send(answer)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            inner.close()


def rpc_url_setting(value: str | None) -> str:
    """The RPC URL: the argument, else ``OPENGRADIENT_RPC_URL``, else OpenGradient's devnet."""
    text = value if value is not None else os.environ.get(RPC_URL_ENV) or DEFAULT_RPC_URL
    from urllib.parse import urlsplit

    parts = urlsplit(text.strip()) if isinstance(text, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequestError(
            f"rpc_url {text!r} is not an http(s) URL; write it like 'https://host' "
            f"(or set {RPC_URL_ENV})"
        )
    return text.strip().rstrip("/")


def registry_address_setting(value: str | None) -> str:
    """The registry: the argument, else ``OPENGRADIENT_REGISTRY_ADDRESS``, else the default."""
    if value is not None:
        return value
    return os.environ.get(REGISTRY_ADDRESS_ENV) or DEFAULT_REGISTRY_ADDRESS


_SHARED_LOCK = threading.Lock()
_DIRECTORIES: dict[tuple[str, str, str | None, float], TeeDirectory] = {}
_VERDICTS: dict[tuple[Any, ...], AttestationVerdict] = {}
"""Process-wide: every client on the same registry shares one listing (one ``eth_call`` per
refresh), and every client with the same trust settings one attestation verdict per TEE."""


def _shared_directory(
    rpc_url: str, registry_address: str, tee_id: str | None, refresh_seconds: float
) -> TeeDirectory:
    fresh = TeeDirectory(rpc_url, registry_address, tee_id=tee_id, refresh_seconds=refresh_seconds)
    index = (rpc_url, fresh.registry_address, fresh.tee_id, refresh_seconds)
    with _SHARED_LOCK:
        return _DIRECTORIES.setdefault(index, fresh)


class TeeNetwork:
    """The registry TEEs one client uses, their pins, keys and attestation verdicts."""

    def __init__(
        self,
        pins: Pins,
        *,
        rpc_url: str | None = None,
        registry_address: str | None = None,
        tee_id: str | None = None,
        refresh_seconds: float = REFRESH_SECONDS,
        attestation: AttestationPolicy | str = AttestationPolicy.VERIFY,
        allowed_measurements: Collection[str] | None = None,
        attestation_root_sha256: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pins = pins
        self.attestation = AttestationPolicy.parse(attestation)
        if allowed_measurements is not None:
            if isinstance(allowed_measurements, str) or not all(
                isinstance(m, str) for m in allowed_measurements
            ):
                raise InvalidRequestError(
                    "allowed_measurements must be a list of PCR hashes ('0x' + 64 hex digits)"
                )
            allowed_measurements = tuple(allowed_measurements)
        self.allowed_measurements = allowed_measurements
        root = attestation_root_sha256 or os.environ.get(ROOT_ENV) or AWS_NITRO_ROOT_SHA256
        if not isinstance(root, str) or len(root.removeprefix("0x")) != 64:
            raise InvalidRequestError(
                f"attestation_root_sha256 must be 64 hex digits (a SHA-256), got {root!r}"
            )
        self.root_sha256 = root.removeprefix("0x").lower()
        self._clock = clock
        self._verdicts = _VERDICTS
        self.directory = _shared_directory(
            rpc_url_setting(rpc_url),
            registry_address_setting(registry_address),
            tee_id,
            refresh_seconds,
        )
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, bytes], rsa.RSAPublicKey] = {}

    @property
    def rpc_url(self) -> str:
        """The JSON-RPC URL the registry is read from."""
        return self.directory.rpc_url

    @property
    def registry_address(self) -> str:
        """The registry contract's address."""
        return self.directory.registry_address

    def refresh(self) -> Steps[None]:
        """Fetch the listing (one ``eth_call``)."""
        url, headers, body = self.directory.request()
        answer = yield HttpRequest("POST", url, headers, body)
        self.directory.update(answer.status, answer.body)

    def route(self, exclude: Collection[str]) -> Steps[Route]:
        """Choose a TEE (refreshing the listing first when it is stale), pin its certificate
        and load its key."""
        if self.directory.stale():
            yield from self.refresh()
        entry = self.directory.choose(exclude)
        self.pins.pin(entry.endpoint, entry.tls_certificate_der)
        origin = TeeOrigin(
            endpoint=entry.endpoint,
            tee_id=entry.tee_id,
            source="registry",
            pcr_hash=entry.pcr_hash,
            payment_address=entry.payment_address,
            registry_address=self.registry_address,
            tls_pinned=True,
        )
        return Route(entry, self._key(entry), origin)

    def attest(self, route: Route) -> Steps[Route]:
        """Verify the TEE's Nitro attestation over its pinned connection (one GET with a fresh
        nonce), unless a verdict for this very registry entry is cached and its leaf
        certificate has not expired; the route then reports the verdict. AttestationError
        when it does not verify."""
        if self.attestation is AttestationPolicy.OFF:
            return route
        entry = route.entry
        index = (
            entry.tee_id, entry.endpoint, entry.public_key_der, entry.tls_certificate_der,
            entry.pcr_hash, self.root_sha256, self.allowed_measurements,
        )  # fmt: skip
        now = self._clock()
        with _SHARED_LOCK:
            verdict = self._verdicts.get(index)
        if verdict is None or verdict.expires_at <= now:
            nonce = new_nonce()
            url = f"{entry.endpoint}{ATTESTATION_PATH}?nonce={nonce}"
            answer = yield HttpRequest("GET", url, {"Accept": "text/plain"})
            if answer.status != 200:
                raise AttestationError(
                    f"TEE {entry.tee_id} at {entry.endpoint} answered HTTP {answer.status} to "
                    f"{ATTESTATION_PATH}; its attestation could not be checked",
                    status_code=answer.status,
                )
            try:
                verdict = verify_attestation(
                    read_attestation_answer(answer.body),
                    nonce=nonce,
                    tls_certificate_der=entry.tls_certificate_der,
                    signing_key_der=entry.public_key_der,
                    expected_pcr_hash=entry.pcr_hash,
                    now=self._clock(),
                    allowed_measurements=self.allowed_measurements,
                    root_sha256=self.root_sha256,
                )
            except AttestationError as exc:
                raise AttestationError(
                    f"TEE {entry.tee_id} at {entry.endpoint}: its attestation does not verify: "
                    f"{exc}"
                ) from exc
            with _SHARED_LOCK:
                self._verdicts[index] = verdict
        origin = replace(
            route.origin,
            attestation="verified",
            attested_at=verdict.checked_at,
            attestation_timestamp=verdict.timestamp,
            module_id=verdict.module_id,
        )
        return replace(route, origin=origin)

    def failed(self, entry: TeeEntry) -> None:
        """``entry`` could not be reached: avoid it and re-read the registry."""
        self.directory.failed(entry.tee_id)

    def _key(self, entry: TeeEntry) -> rsa.RSAPublicKey:
        index = (entry.tee_id, entry.public_key_der)
        with self._lock:
            key = self._keys.get(index)
        if key is None:
            loaded = serialization.load_der_public_key(entry.public_key_der)
            assert isinstance(loaded, rsa.RSAPublicKey)  # checked by registry.check_entry
            with self._lock:
                key = self._keys[index] = loaded
        return key


def drive(steps: Steps[T], send: Callable[[HttpRequest], HttpResponse]) -> T:
    """Run ``steps`` with a blocking ``send``."""
    try:
        step = next(steps)
        while True:
            step = steps.send(send(step))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def adrive(steps: Steps[T], send: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> T:
    """Run ``steps`` with an async ``send``."""
    try:
        step = next(steps)
        while True:
            step = steps.send(await send(step))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def rpc_unreachable(network: TeeNetwork, exc: NetworkError) -> NetworkError:
    """The error for a registry RPC that could not be reached."""
    return NetworkError(
        f"the TEE registry RPC {network.rpc_url} could not be reached ({exc}); check rpc_url "
        f"(or {RPC_URL_ENV}) and the network"
    )


def origin_for_url(url: str, key: Any, pinned: bool) -> TeeOrigin:
    """The origin of an answer from a server given by URL."""
    from . import tee

    tee_id = tee.tee_id_of(key) if isinstance(key, rsa.RSAPublicKey) else None
    return TeeOrigin(endpoint=url, tee_id=tee_id, source="url", tls_pinned=pinned)
