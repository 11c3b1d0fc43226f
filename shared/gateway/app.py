"""What the gateway answers to one inference request: auth, input checks, payment, the model,
the TEE proof. HTTP framing lives in server.py; this module sees parsed requests only.

Replay policy: a payment nonce settles once. Any later request carrying it (a concurrent
duplicate, or a client's retry after the first answer was lost) gets 402
``nonce_already_used``, as OpenGradient's gateway answers. Serving a replay again would let one
signed payment buy many answers; a client that lost an answer has paid once and gets a clear
error, never a second charge.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
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
from .signer import TeeSigner
from .validate import BadRequest, check_chat, check_completion

CHAT_PATH, COMPLETION_PATH = "/v1/chat/completions", "/v1/completions"
INFERENCE_PATHS = (CHAT_PATH, COMPLETION_PATH)
SETTLEMENT_HEADER = "x-settlement-type"
DEFAULT_PRICE, DEFAULT_TOKEN_PRICE = 1_000, 10**12


@dataclass
class Reply:
    """An answer to send: JSON ``body``, or SSE ``events`` when not None."""

    status: int
    body: Mapping[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] | None = None


def _error(status: int, message: str) -> Reply:
    return Reply(status, {"error": message})


def _per_model(price: int | Mapping[str, int], model_name: str, default: int) -> int:
    """A flat price, or the model's entry of ``{model: price}`` (``default`` when missing)."""
    if isinstance(price, Mapping):
        prices = {k.split("/")[-1]: int(v) for k, v in price.items()}
        return prices.get(model_name, default)
    return int(price)


def _transaction(header: str) -> str:
    """A deterministic stand-in for an on-chain transaction hash."""
    return "0x" + keccak(header.encode()).hex()


def _settlement(value: str | None) -> str:
    try:
        return x402SettlementMode.parse(value or "settle-batch").value
    except ValueError:
        raise BadRequest(
            f"unknown X-SETTLEMENT-TYPE {value!r}; use settle, settle-metadata or settle-batch "
            "(generation 1) or private, individual or batch (generation 2)"
        ) from None


@dataclass(kw_only=True, eq=False)
class Gateway:
    """The gateway's knobs, state and request logic. Knobs are plain attributes that may be
    changed while it serves. ``price`` and ``token_price`` are an int or ``{model: int}``."""

    protocol: str = "v1"
    network: str | None = None
    asset: str | None = None
    pay_to: str = payments.DEFAULT_PAY_TO
    price: int | Mapping[str, int] = DEFAULT_PRICE
    token_price: int | Mapping[str, int] = DEFAULT_TOKEN_PRICE
    session_cap: int = 10**17
    session_idle_timeout: float = 300.0
    facilitator: str = payments.DEFAULT_FACILITATOR
    balances: Mapping[str, int] | None = None
    latency: float = 0.0
    chunk_delay: float = 0.0
    socket_timeout: float = 15.0
    signing_key_pem: InitVar[bytes | str | None] = None
    ledger_path: InitVar[str | None] = None

    def __post_init__(self, signing_key_pem: bytes | str | None, ledger_path: str | None) -> None:
        if self.protocol not in ("v1", "v2"):
            raise ValueError(f"protocol must be 'v1' or 'v2', got {self.protocol!r}")
        v1 = self.protocol == "v1"
        known = lookup_network(self.network or ("og-evm" if v1 else "eip155:8453"))
        if known is None:
            raise ValueError(f"unknown network {self.network!r}")
        self.network = known.name if v1 else known.caip2
        self.asset = self.asset or (known.default_asset if v1 else OPG_BASE_ADDRESS)
        self.signer = TeeSigner(signing_key_pem)
        self.tee_id, self.public_key_pem = self.signer.tee_id, self.signer.public_key_pem
        self.ledger = Ledger(ledger_path)
        self.base_url = ""
        self._count_lock = threading.Lock()
        self._count = 0

    @property
    def request_count(self) -> int:
        """POST requests received on the inference paths, rejected ones included."""
        with self._count_lock:
            return self._count

    def count_request(self) -> None:
        """Count one inference request (on arrival, before any check)."""
        with self._count_lock:
            self._count += 1

    def health(self) -> dict[str, Any]:
        """The ``GET /health`` answer."""
        return {"status": "ok", "protocol": self.protocol, "network": self.network,
                "tee_id": self.signer.tee_id, "request_count": self.request_count,
                "settlements": len(self.ledger.entries)}

    def handle(self, path: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        """Answer a POST to an inference path; ``headers`` have lower-case names."""
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return _error(401, "missing or malformed 'Authorization: Bearer <token>' header")
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _error(415, f"Content-Type must be application/json, got {content_type!r}")
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error(400, f"malformed JSON body: {exc}")
        try:
            model_name = check_chat(body) if path == CHAT_PATH else check_completion(body)
            settlement = _settlement(headers.get(SETTLEMENT_HEADER))
        except BadRequest as exc:
            return _error(400, str(exc))
        # the model is pure and cheap: run it first, so a session can be metered atomically
        completion = path == COMPLETION_PATH
        answer = model.complete(body) if completion else model.chat(body)
        if self.protocol == "v1":
            paid = self._pay_exact(path, headers, model_name, settlement)
        else:
            tokens = answer.prompt_tokens + answer.completion_tokens
            cost = tokens * _per_model(self.token_price, model_name, DEFAULT_TOKEN_PRICE)
            paid = self._pay_upto(path, headers, settlement, cost)
        if isinstance(paid, Reply):
            return paid
        request_hash = tee.request_hash(body, completion=completion)
        proof = self.signer.proof_fields(
            request_hash, tee.output_hash(answer.content, answer.tool_calls)
        )
        if exact.RECEIPT_HEADER in paid:  # generation 1 also names the processing
            paid["x-processing-hash"] = _transaction(request_hash + paid.pop("nonce"))
        if completion:
            return Reply(200, responses.completion_body(model_name, answer, proof), paid)
        if body.get("stream"):
            return Reply(200, {}, paid, responses.stream_events(model_name, answer, proof))
        return Reply(200, responses.chat_body(model_name, answer, proof), paid)

    def _settle(self, header: str, paid: payments.VerifiedPayment, **rest: Any) -> str | None:
        """Record a settlement in the ledger; returns a refusal reason or None."""
        entry = Settlement(
            payer=paid.payer, nonce=paid.nonce, expires_at=paid.expires_at, pay_to=self.pay_to,
            network=str(self.network), asset=str(self.asset), timestamp=int(time.time()),
            transaction=_transaction(header), **rest,
        )
        return self.ledger.settle(entry, self.balances)

    def _pay_exact(self, path: str, headers: Mapping[str, str], model_name: str,
                   settlement: str) -> dict[str, str] | Reply:
        price = _per_model(self.price, model_name, DEFAULT_PRICE)
        requirement = payments.exact_requirement(
            str(self.network), str(self.asset), self.pay_to, price, self.base_url, path
        )

        def refuse(reason: str) -> Reply:
            return Reply(402, {"x402Version": 1, "error": reason, "accepts": [requirement]})

        header = headers.get(exact.HEADER.lower())
        if header is None:
            return refuse(f"payment required: send an {exact.HEADER} header")
        try:
            paid = payments.verify_exact(header, requirement, int(time.time()))
        except payments.PaymentInvalid as exc:
            return refuse(exc.reason)
        reason = self._settle(header, paid, amount=paid.amount, path=path, scheme=exact.SCHEME,
                              settlement_type=settlement)
        if reason:
            return refuse(reason)
        receipt = {"success": True, "transaction": _transaction(header), "network": self.network,
                   "payer": paid.payer}
        return {exact.RECEIPT_HEADER: encode_header(receipt), "nonce": paid.nonce}

    def upto_requirement(self) -> dict[str, Any]:
        """The v2 ``accepts`` entry this gateway asks for now."""
        return payments.upto_requirement(str(self.network), str(self.asset), self.pay_to,
                                         self.session_cap, self.facilitator)

    def _pay_upto(self, path: str, headers: Mapping[str, str], settlement: str, cost: int
                  ) -> dict[str, str] | Reply:
        """Open a session with a permit, or meter ``cost`` on the session named."""
        requirement = self.upto_requirement()

        def challenge(reason: str | None = None) -> Reply:
            resource = {"url": self.base_url + path, "description": payments.DESCRIPTIONS[path],
                        "mimeType": "application/json"}
            required = {"x402Version": 2, "error": reason or "Payment required",
                        "resource": resource, "accepts": [requirement]}
            body = {"error": reason} if reason else {}
            return Reply(402, body, {PAYMENT_REQUIRED_HEADER: encode_header(required)})

        signature = headers.get(upto.HEADER.lower())
        session_id = headers.get(upto.SESSION_HEADER.lower())
        if signature is None:
            if session_id is None:
                return challenge()
        else:
            try:
                paid = payments.verify_upto(signature, requirement, int(time.time()))
            except payments.PaymentInvalid as exc:
                return challenge(exc.reason)
            session_id = str(uuid.uuid4())
            reason = self._settle(signature, paid, amount=0, path=path, cap=paid.amount,
                                  scheme=upto.SCHEME, settlement_type=settlement,
                                  session_id=session_id, closed=False)
            if reason:
                return challenge(reason)
        if not self.ledger.charge(session_id, path, cost, time.time(), self.session_idle_timeout):
            return _error(402, SESSION_EXHAUSTED)
        return {upto.SESSION_HEADER: session_id}
