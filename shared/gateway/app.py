"""What the gateway answers to one inference request: auth, input checks, payment, the model,
the TEE proof. HTTP framing lives in server.py; this module sees parsed requests only.

Replay policy: a payment nonce settles once. Any later request carrying it — a concurrent
duplicate, or a client's retry after the first answer was lost — gets 402
``nonce_already_used``, as OpenGradient's gateway answers. Serving a replay again would let one
signed payment buy unlimited answers; a client that lost an answer has paid for it once and
gets a clear error, never a second charge.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_hash.auto import keccak

from .. import tee
from ..types import x402SettlementMode
from ..x402 import exact, upto
from ..x402.challenge import PAYMENT_REQUIRED_HEADER, SESSION_EXHAUSTED
from ..x402.encoding import encode_header
from ..x402.networks import OPG_BASE_ADDRESS, lookup_network
from . import model, payments, responses
from .ledger import Ledger, Settlement
from .sessions import Session, Sessions
from .signer import TeeSigner
from .validate import BadRequest, check_chat, check_completion

CHAT_PATH = "/v1/chat/completions"
COMPLETION_PATH = "/v1/completions"
INFERENCE_PATHS = (CHAT_PATH, COMPLETION_PATH)
DEFAULT_PRICE = 1_000
DEFAULT_SESSION_CAP = 10**17
DEFAULT_TOKEN_PRICE = 10**12
SETTLEMENT_HEADER = "X-SETTLEMENT-TYPE"


@dataclass
class Reply:
    """An answer to send: JSON ``body``, or SSE ``events`` when not None."""

    status: int
    body: Mapping[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] | None = None


def _error(status: int, message: str, **headers: str) -> Reply:
    return Reply(status, {"error": message}, headers)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return value if value is not None else headers.get(name.lower())


def _per_model(price: int | Mapping[str, int], model_name: str, default: int) -> int:
    if isinstance(price, Mapping):
        for key, value in price.items():
            if key.split("/")[-1] == model_name:
                return int(value)
        return default
    return int(price)


@dataclass
class _Paid:
    """What paid for one request: a settled nonce (v1) or a session (v2)."""

    headers: dict[str, str]
    session: Session | None = None
    nonce: str | None = None


class Gateway:
    """The gateway's state and request logic; knobs are plain attributes, settable anytime."""

    def __init__(
        self,
        *,
        protocol: str = "v1",
        network: str | None = None,
        asset: str | None = None,
        pay_to: str = payments.DEFAULT_PAY_TO,
        price: int | Mapping[str, int] = DEFAULT_PRICE,
        token_price: int | Mapping[str, int] = DEFAULT_TOKEN_PRICE,
        session_cap: int = DEFAULT_SESSION_CAP,
        session_idle_timeout: float = 300.0,
        facilitator: str = payments.DEFAULT_FACILITATOR,
        balances: Mapping[str, int] | None = None,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        signing_key_pem: bytes | str | None = None,
        ledger_path: str | None = None,
    ) -> None:
        if protocol not in ("v1", "v2"):
            raise ValueError(f"protocol must be 'v1' or 'v2', got {protocol!r}")
        self.protocol = protocol
        default_network = "og-evm" if protocol == "v1" else "eip155:8453"
        known = lookup_network(network or default_network)
        if known is None:
            raise ValueError(f"unknown network {network!r}")
        self.network = known.name if protocol == "v1" else known.caip2
        self.asset = asset or (known.default_asset if protocol == "v1" else OPG_BASE_ADDRESS)
        self.pay_to = pay_to
        self.price = price
        self.token_price = token_price
        self.session_cap = session_cap
        self.session_idle_timeout = session_idle_timeout
        self.facilitator = facilitator
        self.balances = balances
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.signer = TeeSigner(signing_key_pem)
        self.ledger = Ledger(ledger_path)
        self.sessions = Sessions()
        self.base_url = ""
        self._count_lock = threading.Lock()
        self._count = 0

    @property
    def request_count(self) -> int:
        """POST requests received on the inference paths, rejected ones included."""
        with self._count_lock:
            return self._count

    def count_request(self) -> None:
        """Count one inference request (called on arrival, before any check)."""
        with self._count_lock:
            self._count += 1

    def health(self) -> dict[str, Any]:
        """The ``GET /health`` answer."""
        return {
            "status": "ok",
            "protocol": self.protocol,
            "network": self.network,
            "tee_id": self.signer.tee_id,
            "request_count": self.request_count,
            "settlements": len(self.ledger.entries),
        }

    # ---- one inference request ---------------------------------------------------------

    def handle(self, path: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        """Answer a POST to an inference path whose body was read in full."""
        auth = _header(headers, "Authorization") or ""
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return _error(401, "missing or malformed 'Authorization: Bearer <token>' header")
        content_type = (_header(headers, "Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _error(415, f"Content-Type must be application/json, got {content_type!r}")
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error(400, f"malformed JSON body: {exc}")
        try:
            model_name = check_chat(body) if path == CHAT_PATH else check_completion(body)
            settlement = self._settlement(headers)
        except BadRequest as exc:
            return _error(400, str(exc))
        if self.protocol == "v1":
            paid = self._pay_exact(path, headers, model_name, settlement)
        else:
            paid = self._pay_upto(path, headers, settlement)
        if isinstance(paid, Reply):
            return paid
        return self._answer(path, body, model_name, paid)

    def _settlement(self, headers: Mapping[str, str]) -> str:
        value = _header(headers, SETTLEMENT_HEADER)
        if value is None:
            return x402SettlementMode.SETTLE_BATCH.value
        try:
            return x402SettlementMode.parse(value).value
        except ValueError:
            raise BadRequest(
                f"unknown {SETTLEMENT_HEADER} {value!r}; use settle, settle-metadata or "
                "settle-batch (generation 1) or private, individual or batch (generation 2)"
            ) from None

    def _answer(self, path: str, body: dict[str, Any], model_name: str, paid: _Paid) -> Reply:
        completion = path == COMPLETION_PATH
        answer = model.complete(body) if completion else model.chat(body)
        proof = self.signer.proof_fields(
            tee.request_hash(body, completion=completion),
            tee.output_hash(answer.content, answer.tool_calls),
        )
        headers = dict(paid.headers)
        if paid.session is not None:
            tokens = answer.prompt_tokens + answer.completion_tokens
            used, spent = self.sessions.charge(
                paid.session, tokens * _per_model(self.token_price, model_name, DEFAULT_TOKEN_PRICE)
            )
            self.ledger.update_session(paid.session.id, used, closed=spent)
        if paid.nonce is not None:
            digest = keccak((proof["tee_request_hash"] + paid.nonce).encode()).hex()
            headers["x-processing-hash"] = "0x" + digest
        if completion:
            return Reply(200, responses.completion_body(model_name, answer, proof), headers)
        if body.get("stream"):
            return Reply(200, {}, headers, responses.stream_events(model_name, answer, proof))
        return Reply(200, responses.chat_body(model_name, answer, proof), headers)

    # ---- payment -----------------------------------------------------------------------

    def _pay_exact(
        self, path: str, headers: Mapping[str, str], model_name: str, settlement: str
    ) -> _Paid | Reply:
        requirement = payments.exact_requirement(
            network=self.network,
            asset=self.asset,
            pay_to=self.pay_to,
            price=_per_model(self.price, model_name, DEFAULT_PRICE),
            resource_url=self.base_url + path,
            path=path,
        )

        def refuse(reason: str) -> Reply:
            return Reply(402, {"x402Version": 1, "error": reason, "accepts": [requirement]})

        header = _header(headers, exact.HEADER)
        if header is None:
            return refuse(f"payment required: send an {exact.HEADER} header")
        now = int(time.time())
        try:
            verified = payments.verify_exact(header, requirement, now)
        except payments.PaymentInvalid as exc:
            return refuse(exc.reason)
        transaction = "0x" + keccak(header.encode()).hex()
        entry = Settlement(
            payer=verified.payer,
            amount=verified.amount,
            nonce=verified.nonce,
            settlement_type=settlement,
            scheme=exact.SCHEME,
            network=self.network,
            asset=self.asset,
            pay_to=self.pay_to,
            path=path,
            transaction=transaction,
            timestamp=now,
        )
        reason = self.ledger.settle(entry, self.balances)
        if reason:
            return refuse(reason)
        receipt = {
            "success": True,
            "transaction": transaction,
            "network": self.network,
            "payer": verified.payer,
        }
        return _Paid({exact.RECEIPT_HEADER: encode_header(receipt)}, nonce=verified.nonce)

    def upto_requirement(self) -> dict[str, Any]:
        """The v2 ``accepts`` entry this gateway asks for now."""
        return payments.upto_requirement(
            network=self.network,
            asset=self.asset,
            pay_to=self.pay_to,
            cap=self.session_cap,
            facilitator=self.facilitator,
        )

    def close_expired_sessions(self, *, everything: bool = False) -> None:
        """Settle spent, idle and past-deadline sessions (all of them with ``everything``)."""
        done = (
            self.sessions.close_all()
            if everything
            else self.sessions.expired(time.time(), self.session_idle_timeout)
        )
        for session in done:
            self.ledger.update_session(session.id, session.used, closed=True)

    def _pay_upto(self, path: str, headers: Mapping[str, str], settlement: str) -> _Paid | Reply:
        self.close_expired_sessions()
        requirement = self.upto_requirement()

        def challenge(reason: str) -> Reply:
            required = {
                "x402Version": 2,
                "error": reason,
                "resource": payments.resource_of(self.base_url, path),
                "accepts": [requirement],
            }
            body = {} if reason == "Payment required" else {"error": reason}
            return Reply(402, body, {PAYMENT_REQUIRED_HEADER: encode_header(required)})

        signature = _header(headers, upto.HEADER)
        session_id = _header(headers, upto.SESSION_HEADER)
        if signature is None and session_id is not None:
            session = self.sessions.use(session_id, path, time.time(), self.session_idle_timeout)
            if session is None:
                return _error(402, SESSION_EXHAUSTED)
            return _Paid({upto.SESSION_HEADER: session.id}, session)
        if signature is None:
            return challenge("Payment required")
        now = int(time.time())
        try:
            verified = payments.verify_upto(signature, requirement, now)
        except payments.PaymentInvalid as exc:
            return challenge(exc.reason)
        session_id = str(uuid.uuid4())
        entry = Settlement(
            payer=verified.payer,
            amount=0,
            nonce=verified.nonce,
            settlement_type=settlement,
            scheme=upto.SCHEME,
            network=self.network,
            asset=self.asset,
            pay_to=self.pay_to,
            path=path,
            transaction="0x" + keccak(signature.encode()).hex(),
            timestamp=now,
            session_id=session_id,
            cap=verified.amount,
            closed=False,
        )
        reason = self.ledger.settle(entry, self.balances)
        if reason:
            return challenge(reason)
        session = self.sessions.open(
            session_id, path, verified.amount, verified.expires_at, time.time()
        )
        return _Paid({upto.SESSION_HEADER: session.id}, session)
