"""One call's HTTP exchange with the gateway, written once as a generator (sans I/O).

Like httpx's ``Auth.auth_flow``, :meth:`Exchange.flow` yields the requests to send and
receives their responses; the sync and async drivers only move bytes. The flow fetches the
TEE key once per server (unless pinned), attaches what it knows will be asked (a fresh
generation-1 payment, or the generation-2 session of the route), answers a 402 by choosing
under the :class:`PaymentPolicy` and signing once, and returns the final response with the
receipt of what was paid.

Rules kept here (protocol.md sections 4-6): at most one payment is signed per 402 the server
sends for this call, and never more than two per call; a payment that may already have been
settled (the driver had to resend it) is never replaced by a new one; a scheme that opens
sessions reuses a route's session until the server says it is spent or its permit nears its
deadline. While one call learns a new route's terms, opens a route's session or fetches a
server's TEE key, concurrent calls wait for it (:class:`Wait`) instead of each doing it again.

What differs between schemes (sessions and their header, the settlement-report header, the
server generation that decides the spelling of the settlement mode) is declared by the scheme
module (:class:`~.x402.payment.PaymentScheme`); nothing here tests an x402 version. Until a
server's generation is known (its first 402, or a paid answer), requests name no settlement
mode rather than one the server may misread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from eth_account.signers.local import LocalAccount

from . import protocol
from .errors import (
    PaymentError,
    PaymentPolicyError,
    PaymentRejectedError,
    ServerError,
    VerificationError,
)
from .headers import header
from .types import PaymentReceipt
from .verification import SIGNING_KEY_PATH, TrustAnchor, VerificationPolicy
from .x402 import (
    ChallengeError,
    PaymentChallenge,
    PaymentRequirement,
    SignedPayment,
    error_of_402,
    parse_challenge,
    scheme_for,
)
from .x402.payment import read_settlement
from .x402.policy import PaymentPolicy, PinnedTerms, refused

SESSION_MARGIN_FRACTION = 0.2
"""A session is not reused once less than this share of its permit's validity is left..."""
SESSION_MARGIN_MAX_SECONDS = 60
"""...or less than this many seconds, whichever is smaller."""


@dataclass(frozen=True)
class HttpRequest:
    """A request for the driver to send (with retries)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    stream: bool = False
    replayable: bool = True
    """False: resend only when the request surely never reached the server (a session
    request, billed by the server on every try)."""


@dataclass
class HttpResponse:
    """What the driver got back. ``body`` is read except for an open 200 stream (``stream``
    is then the driver's response object). ``attempts`` counts the sends it took."""

    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    attempts: int = 1
    stream: Any = None


class Lead(Future[None]):
    """Resolved when a leading call is done (learning a route, opening its session, fetching
    a TEE key). ``thread`` is the thread that runs the leading call."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()


@dataclass(frozen=True)
class Wait:
    """For the driver: wait until ``done`` (another call has learned the route's terms, opened
    its session or fetched the server's key), at most one try's timeout, then resume the flow.
    A blocking driver must not wait when ``done.thread`` is its own thread: the leader is then
    an async call of the event loop that this very thread runs, which cannot move while the
    thread blocks; it resumes the flow at once instead (which then goes ahead alone)."""

    done: Lead


@dataclass(frozen=True)
class Delivery:
    """The outcome of a successful exchange."""

    response: HttpResponse
    receipt: PaymentReceipt | None
    payment_hash: str
    key: rsa.RSAPublicKey | None
    key_problem: str | None = None


Flow = Generator["HttpRequest | Wait", Any, Delivery]
"""One call's exchange: the driver sends back the ``HttpResponse`` of each ``HttpRequest``
yielded, and ``None`` after a ``Wait``."""


@dataclass(frozen=True)
class _Session:
    id: str
    header: str
    payment: SignedPayment

    def usable(self, now: float) -> bool:
        validity = self.payment.requirement.max_timeout_seconds
        margin = min(SESSION_MARGIN_MAX_SECONDS, validity * SESSION_MARGIN_FRACTION)
        return self.payment.expires_at - now > margin


@dataclass
class _Endpoint:
    """What this client learned about one URL: the terms to pre-pay, the open session, and
    the payee and asset it was paid with."""

    terms: tuple[PaymentRequirement, PaymentChallenge] | None = None
    session: _Session | None = None
    pinned: PinnedTerms | None = None
    answered: bool = False
    """A call has succeeded here (a route that never asked for payment needs no leader)."""
    opening: Lead | None = None
    """Set while one call learns the terms or opens the session; the others wait for it."""

    def needs_leader(self, session: _Session | None) -> bool:
        """Whether a call now would learn the route or open a session others could share."""
        if session is not None:
            return False
        return not self.answered or (self.terms is not None and _opens_sessions(self.terms[0]))


def _opens_sessions(requirement: PaymentRequirement) -> bool:
    scheme = scheme_for(requirement)
    return scheme is not None and scheme.SESSION_HEADER is not None


@dataclass
class Exchange:
    """Per-client memory (endpoints, server generations, TEE keys) and the exchange flow.

    Thread-safe: the memory is guarded by a lock held only for dictionary updates, never
    across I/O, so one client serves many threads and event loops at once.
    """

    account: LocalAccount
    policy: PaymentPolicy
    verification: VerificationPolicy
    anchor: TrustAnchor
    clock: Callable[[], float] = time.time
    retry_session_requests: bool = False
    """Resend a generation-2 session request that may have reached the server (off: the
    gateway bills every try on a session)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _endpoints: dict[str, _Endpoint] = field(default_factory=dict, repr=False)
    _generations: dict[str, int] = field(default_factory=dict, repr=False)
    _keys: dict[str, rsa.RSAPublicKey] = field(default_factory=dict, repr=False)
    _fetching: dict[str, Lead] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return f"Exchange(payer={self.account.address}, policy={self.policy!r})"

    def __reduce__(self) -> Any:
        raise TypeError("an Exchange holds a wallet key and cannot be pickled")

    def __copy__(self) -> Exchange:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Exchange:
        return self  # one client's memory and key, never duplicated

    # -- the flow --------------------------------------------------------------------------

    def flow(
        self,
        server: str,
        prepared: protocol.PreparedRequest,
        *,
        key: rsa.RSAPublicKey | None = None,
        pay_to: str | None = None,
    ) -> Flow:
        """Send ``prepared`` to ``server``, paying as needed; returns the successful answer.

        ``key`` is the TEE key to trust for this call (a registry TEE's; default the pinned
        or fetched one) and ``pay_to`` the only payee a payment may go to (its registered
        payment address): another one is refused before anything is signed."""
        key, key_problem = key or self.anchor.key, None
        if key is None and self.verification is not VerificationPolicy.OFF:
            key, key_problem = yield from self._signing_key(server)

        url = server + prepared.path
        waited = False
        while True:
            with self._lock:
                endpoint = self._endpoints.setdefault(url, _Endpoint())
                session = endpoint.session
                if session is not None and not session.usable(self.clock()):
                    endpoint.session = session = None
                terms = endpoint.terms if session is None else None
                opening = endpoint.opening
                led: Lead | None = None
                if not waited and opening is None and endpoint.needs_leader(session):
                    endpoint.opening = led = Lead()
            if led is not None or opening is None or waited:
                break
            yield Wait(opening)
            waited = True  # then go ahead alone, whatever the leader achieved
        spent: dict[str, int] = {}  # what this call signed, per asset: all of it counts
        try:
            payment = self._sign(*terms, spent) if terms is not None else None
            response = yield self._request(server, url, prepared, payment, session)
            if response.status == 402:
                response, payment = yield from self._answer_402(
                    server, url, prepared, endpoint, response, payment, session, spent, pay_to
                )
            if not 200 <= response.status < 300:
                raise protocol.error_for_status(response.status, response.body, url)
            receipt = self._settled(server, endpoint, response, payment, session)
        finally:
            if led is not None:
                with self._lock:
                    endpoint.opening = None
                led.set_result(None)
        payment_hash = header(response.headers, protocol.PROCESSING_HASH_HEADER) or ""
        return Delivery(response, receipt, payment_hash, key, key_problem)

    def _signing_key(
        self, server: str
    ) -> Generator[HttpRequest | Wait, Any, tuple[rsa.RSAPublicKey | None, str | None]]:
        """The server's TEE key, fetched once per server: concurrent first calls wait for the
        one fetching it (and fetch alone only if that one failed)."""
        with self._lock:
            key = self._keys.get(server)
            fetching = self._fetching.get(server)
            led: Lead | None = None
            if key is None and fetching is None:
                self._fetching[server] = led = Lead()
        if key is not None:
            return key, None
        if fetching is not None:
            yield Wait(fetching)
            with self._lock:
                key = self._keys.get(server)
            if key is not None:
                return key, None
        try:
            url = server + SIGNING_KEY_PATH
            answer = yield HttpRequest("GET", url, {"Accept": "application/json"})
            try:
                key = self.anchor.key_from_answer(answer.status, answer.body, url)
            except VerificationError as exc:
                if self.verification is VerificationPolicy.RAISE:
                    raise
                return None, str(exc)
            with self._lock:
                self._keys[server] = key
            return key, None
        finally:
            if led is not None:
                with self._lock:
                    self._fetching.pop(server, None)
                led.set_result(None)

    def _answer_402(
        self,
        server: str,
        url: str,
        prepared: protocol.PreparedRequest,
        endpoint: _Endpoint,
        response: HttpResponse,
        payment: SignedPayment | None,
        session: _Session | None,
        spent: dict[str, int],
        pay_to: str | None = None,
    ) -> Generator[HttpRequest, HttpResponse, tuple[HttpResponse, SignedPayment]]:
        challenge = self._challenge(server, response)
        if session is not None:
            with self._lock:
                if endpoint.session is session:
                    endpoint.session = None
            if challenge is None:  # "Session expired or exhausted": ask for new terms
                response = yield self._request(server, url, prepared, None, None)
                if response.status != 402:
                    raise protocol.error_for_status(response.status, response.body, url)
                challenge = self._challenge(server, response)
        elif payment is not None and response.attempts > 1:
            raise PaymentRejectedError(
                f"{url} refused the payment after it had to be resent "
                f"({self._reason(response, challenge)}); an earlier try may have been settled, "
                "so no new payment was made. Check your balance before retrying.",
                status_code=402,
                body=self._reason(response, challenge),
            )
        if challenge is None:
            raise PaymentRejectedError(
                f"{url} answered 402 without saying how to pay: {self._reason(response, None)}",
                status_code=402,
                body=self._reason(response, None),
            )
        with self._lock:
            pinned = endpoint.pinned
        try:
            requirement = self.policy.choose(challenge, pinned, spent)
            if pay_to is not None and requirement.pay_to.lower() != pay_to.lower():
                raise PaymentPolicyError(
                    f"{url} asks to pay {requirement.pay_to}, but the TEE registry lists "
                    f"{pay_to} as this TEE's payment address; nothing was signed"
                )
        except PaymentError:
            with self._lock:
                endpoint.terms = None  # never pre-sign terms the policy refuses
            raise
        scheme = scheme_for(requirement)
        with self._lock:
            endpoint.terms = (requirement, challenge)
            if scheme is not None:  # now the settlement mode goes in this server's spelling
                self._generations[server] = scheme.GENERATION
        payment = self._sign(requirement, challenge, spent)
        response = yield self._request(server, url, prepared, payment, None)
        if response.status == 402:
            reason = self._reason(response, self._challenge(server, response))
            raise PaymentRejectedError(
                f"{url} refused the signed payment: {reason}",
                status_code=402,
                body=reason,
            )
        return response, payment

    # -- steps -----------------------------------------------------------------------------

    def _request(
        self,
        server: str,
        url: str,
        prepared: protocol.PreparedRequest,
        payment: SignedPayment | None,
        session: _Session | None,
    ) -> HttpRequest:
        with self._lock:
            generation = self._generations.get(server)  # None: unknown yet, send no spelling
        headers = prepared.headers(generation)
        replayable = True
        if payment is not None:
            headers[payment.header_name] = payment.header_value
        elif session is not None:
            headers[session.header] = session.id
            replayable = self.retry_session_requests
        return HttpRequest(
            "POST", url, headers, prepared.payload, prepared.stream, replayable=replayable
        )

    def _challenge(self, server: str, response: HttpResponse) -> PaymentChallenge | None:
        try:
            challenge = parse_challenge(response.headers, response.body)
        except ChallengeError as exc:
            raise ServerError(
                f"{server} answered 402 with an unreadable challenge: {exc}", status_code=402
            ) from exc
        return challenge

    @staticmethod
    def _reason(response: HttpResponse, challenge: PaymentChallenge | None) -> str:
        if challenge is not None and challenge.error:
            return str(challenge.error)
        return error_of_402(response.body) or protocol.server_message(response.body) or "no reason"

    def _sign(
        self, requirement: PaymentRequirement, challenge: PaymentChallenge, spent: dict[str, int]
    ) -> SignedPayment:
        """Sign one payment for this call, after the policy's last word (cap, what this call
        already signed, budget) and an atomic reservation against the budget."""
        scheme = scheme_for(requirement)
        if scheme is None:  # the policy refuses these; kept for a clear error if not
            raise PaymentError(f"cannot pay with scheme {requirement.scheme!r}")
        reason = self.policy.refusal(requirement, None, spent)
        if reason is not None:
            raise PaymentPolicyError(refused(spent) + reason)
        asset, amount = requirement.asset, requirement.amount
        self.policy.budget.reserve(asset, amount)  # raises, naming budget, spent and price
        problem = None
        try:
            payment = scheme.sign_payment(
                self.account, requirement, challenge, now=int(self.clock())
            )
        except ValueError as exc:
            problem = str(exc)
        except Exception:  # noqa: BLE001 - the schemes validate first; never show key frames
            problem = "the signer refused the terms"
        if problem is not None:  # raised outside the handler: no context holds signer frames
            self.policy.budget.release(asset, amount)
            raise PaymentError(f"cannot sign a payment for these terms: {problem}")
        spent[asset.lower()] = spent.get(asset.lower(), 0) + amount
        return payment

    def _settled(
        self,
        server: str,
        endpoint: _Endpoint,
        response: HttpResponse,
        payment: SignedPayment | None,
        session: _Session | None,
    ) -> PaymentReceipt | None:
        """Remember what worked and describe what was paid (or reused) for this answer."""
        used = payment or (session.payment if session is not None else None)
        scheme = scheme_for(used.requirement) if used is not None else None
        session_header = scheme.SESSION_HEADER if scheme is not None else None
        session_id = header(response.headers, session_header) if session_header else None
        with self._lock:
            endpoint.answered = True
            if scheme is not None:
                self._generations[server] = scheme.GENERATION
            if payment is not None:
                requirement = payment.requirement
                endpoint.pinned = PinnedTerms(requirement.pay_to, requirement.asset)
                if session_header and session_id:
                    endpoint.session = _Session(session_id, session_header, payment)
            elif session is not None and session_id and session_id != session.id:
                endpoint.session = _Session(session_id, session.header, session.payment)
        if used is None or scheme is None:
            return None
        report = read_settlement(response.headers, scheme.RECEIPT_HEADER)
        requirement = used.requirement
        if session_header is None:  # pays per call: this call cost what it authorized
            cost: int | None = used.amount
        else:  # metered: only what the server reports for this call
            cost = report.amount
        return PaymentReceipt(
            x402_version=requirement.x402_version,
            scheme=requirement.scheme,
            network=report.network or requirement.network,
            asset=requirement.asset,
            amount=used.amount,
            payer=report.payer or used.payer,
            pay_to=requirement.pay_to,
            success=report.success,
            transaction=report.transaction,
            session_id=session_id or (session.id if session is not None else None),
            new_payment=payment is not None,
            cost=cost,
            authorized_total=self.policy.budget.spent(requirement.asset),
            budget_remaining=self.policy.budget.remaining(requirement.asset),
        )
