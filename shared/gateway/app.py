"""What the gateway answers to one inference request: input checks, payment, the model, the
TEE proof. HTTP framing lives in server.py; this module sees parsed requests only.

Replay policy: a payment nonce settles once. Any later request carrying it (a concurrent
duplicate, or a retry after the answer was lost) gets 402 ``nonce_already_used``, as
OpenGradient's gateway answers: one signed payment never buys two answers."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any

from .. import tee
from ..x402 import exact, exact_v2, upto
from ..x402.challenge import PAYMENT_REQUIRED_HEADER, SESSION_EXHAUSTED
from ..x402.encoding import encode_header
from ..x402.networks import OPG_BASE_ADDRESS, lookup_network
from . import model, payments
from .enclave import LocalEnclave, nonce_from_query
from .ledger import Ledger, Settlement
from .signer import TeeSigner
from .validate import BadRequest, check, served

PROTOCOLS = ("v1", "v2", "v2-exact", "v2-exact-permit2")
"""x402 v1 ``exact`` (generation 1), v2 ``upto`` sessions (generation 2, today's gateway), and
v2 ``exact`` per call by EIP-3009 or Permit2 (``x402`` 2.x / ``og-x402`` servers)."""
CHAT_PATH, COMPLETION_PATH = "/v1/chat/completions", "/v1/completions"
INFERENCE_PATHS = (CHAT_PATH, COMPLETION_PATH)
DEFAULT_PRICE, DEFAULT_TOKEN_PRICE = 1_000, 10**12


@dataclass
class Reply:
    """An answer to send: JSON ``body``, or SSE ``events`` when not None, or plain ``text``
    when not None."""

    status: int
    body: Mapping[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] | None = None
    text: str | None = None


Headers = Mapping[str, str]
Paid = dict[str, str] | Reply  # the headers of a paid answer, or the refusal to send
Settled = Settlement | str | None  # a ledger entry, why a payment was refused, or no payment


def _per_model(price: int | Mapping[str, int], model_name: str, default: int) -> int:
    """A flat price, or the model's entry of ``{model: price}`` (``default`` when missing)."""
    if not isinstance(price, Mapping):
        return int(price)
    return {k.split("/")[-1]: int(v) for k, v in price.items()}.get(model_name, default)


@dataclass(kw_only=True, eq=False)
class Gateway:
    """The gateway's knobs, state and request logic; knobs may be changed while it serves.
    ``network`` defaults to og-evm (v1) or eip155:8453 (v2), ``asset`` to the network's (OPG for
    v2); ``price`` is per v1 call and ``token_price`` per v2 token (an int or ``{model: int}``);
    ``balances`` None is unlimited, else ``{address: base units}``; ``latency`` is slept before
    each inference answer and ``chunk_delay`` between SSE events; ``socket_timeout`` drops a
    silent client; ``signing_key_pem`` (an RSA private key) None generates one; ``ledger_path``
    gets final settlements as JSON lines."""

    protocol: str = "v1"
    network: str = ""
    asset: str = ""
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
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        v1, upto_ = self.protocol == "v1", self.protocol == "v2"
        known = lookup_network(self.network or ("og-evm" if v1 else "eip155:8453"))
        if known is None:
            raise ValueError(f"unknown network {self.network!r}")
        self.network = known.name if v1 else known.caip2
        self.asset = self.asset or (OPG_BASE_ADDRESS if upto_ else known.default_asset)
        self.signer = TeeSigner(signing_key_pem)
        self.tee_id, self.public_key_pem = self.signer.tee_id, self.signer.public_key_pem
        self.ledger, self.base_url = Ledger(ledger_path), ""
        self.request_count = 0  # POSTs to the inference paths, rejected ones included
        self.key_request_count = 0  # GETs of /signing-key
        self._count_lock = threading.Lock()
        self._enclave: LocalEnclave | None = None
        self._enclave_lock = threading.Lock()

    def count_request(self) -> None:
        """Count one inference request (on arrival, before any check)."""
        with self._count_lock:
            self.request_count += 1

    def signing_key(self) -> dict[str, Any]:
        """The ``GET /signing-key`` answer (counted)."""
        with self._count_lock:
            self.key_request_count += 1
        return self.signer.signing_key_info()

    def health(self) -> dict[str, Any]:
        """The ``GET /health`` answer."""
        about = {"status": "ok", "protocol": self.protocol, "network": self.network}
        counts = {"request_count": self.request_count, "settlements": len(self.ledger.entries)}
        return {**about, "tee_id": self.tee_id, **counts}

    @property
    def enclave(self) -> LocalEnclave:
        """The local stand-in enclave (made on first use) that attests this gateway's signing
        key; set its ``tls_certificate_der`` when serving TLS. Pin ``enclave.root_sha256``."""
        with self._enclave_lock:
            if self._enclave is None:
                self._enclave = LocalEnclave(self.signer.public_key_der)
            return self._enclave

    def attestation(self, query: str) -> Reply:
        """The ``GET /enclave/attestation?nonce=<40 hex>`` answer: base64(COSE_Sign1) and a
        newline, as nitriding serves it; 400 on a missing or malformed nonce."""
        nonce = nonce_from_query(query)
        if nonce is None:
            return Reply(400, {"error": "nonce must be 40 hex characters (20 bytes)"})
        document = self.enclave.attestation_document(nonce)
        return Reply(200, {}, text=base64.b64encode(document).decode() + "\n")

    def handle(self, path: str, headers: Headers, raw: bytes) -> Reply:
        """Answer a POST to an inference path; ``headers`` have lower-case names."""
        completion = path == COMPLETION_PATH
        try:
            body, model_name, settlement = check(headers, raw, completion=completion)
        except BadRequest as exc:
            return Reply(exc.status, {"error": str(exc)})
        # the model is pure and cheap: run it first, so a session can be metered atomically
        answer = model.complete(body) if completion else model.chat(body)
        known, per_call = served(model_name), self.protocol != "v2"
        cost = self._cost(model_name, answer) if known or per_call else 0  # no metering of a 400
        pays = {"v1": self._pay_exact, "v2": self._pay_upto}
        pay = pays.get(self.protocol, self._pay_exact_v2)
        paid = pay(path, headers, settlement, cost)
        if isinstance(paid, Reply):
            return paid
        if not known:  # as the real gateway: the payment middleware ran first
            return Reply(400, {"error": f"Model '{model_name}' is not supported"}, paid)
        output_hash = tee.output_hash(answer.content, answer.tool_calls)
        proof = self.signer.proof_fields(tee.request_hash(body, completion=completion), output_hash)
        if body.get("stream"):
            return Reply(200, {}, paid, answer.events(model_name, proof))
        return Reply(200, answer.body(model_name, proof, completion=completion), paid)

    def _cost(self, model_name: str, answer: model.Answer) -> int:
        """What an answer costs: its model's price per call (v1) or per token used (v2)."""
        if self.protocol != "v2":
            return _per_model(self.price, model_name, DEFAULT_PRICE)
        price = _per_model(self.token_price, model_name, DEFAULT_TOKEN_PRICE)
        return price * answer.usage["total_tokens"]

    def _settle(
        self, header: str | None, terms: payments.Json, path: str, kind: str, version: int = 0
    ) -> Settled:
        """Record what a payment header settles (None: no header; a string: why refused)."""
        if header is None:
            return None
        try:
            entry = payments.settlement(header, terms, int(time.time()), path, kind, version)
        except payments.PaymentInvalid as exc:
            return str(exc)
        return self.ledger.settle(entry, self.balances) or entry

    def _pay_exact(self, path: str, headers: Headers, kind: str, price: int) -> Paid:
        """Settle the request's ``X-PAYMENT`` of ``price``; else 402 with the challenge."""
        terms = payments.exact_requirement(
            self.network, self.asset, self.pay_to, price, self.base_url, path
        )
        entry = self._settle(headers.get(exact.HEADER.lower()), terms, path, kind)
        if not isinstance(entry, Settlement):
            error = entry or f"payment required: send an {exact.HEADER} header"
            return Reply(402, {"x402Version": 1, "error": error, "accepts": [terms]})
        done = {"transaction": entry.transaction, "network": entry.network, "payer": entry.payer}
        receipt = encode_header({"success": True, **done})
        processing = payments.transaction_hash(f"{entry.nonce} {path}")  # generation 1 only
        return {exact.RECEIPT_HEADER: receipt, "x-processing-hash": processing}

    def _pay_exact_v2(self, path: str, headers: Headers, kind: str, price: int) -> Paid:
        """Settle the request's v2 ``exact`` payment of ``price``; else 402 with the challenge
        in ``PAYMENT-REQUIRED``. The paid answer reports in ``PAYMENT-RESPONSE``."""
        permit2 = self.protocol == "v2-exact-permit2"
        terms = payments.exact_v2_requirement(
            self.network, self.asset, self.pay_to, price, permit2=permit2
        )
        header = headers.get(exact_v2.HEADER.lower())
        entry = self._settle(header, terms, path, kind, exact_v2.X402_VERSION)
        if not isinstance(entry, Settlement):
            challenge = payments.upto_challenge(terms, self.base_url, path, entry)
            return Reply(
                402, {"error": entry} if entry else {}, {PAYMENT_REQUIRED_HEADER: challenge}
            )
        done = {"transaction": entry.transaction, "network": entry.network, "payer": entry.payer}
        receipt = encode_header({"success": True, **done, "amount": str(entry.amount)})
        return {exact_v2.RECEIPT_HEADER: receipt}

    def _pay_upto(self, path: str, headers: Headers, kind: str, cost: int) -> Paid:
        """Open a session with a permit, or meter ``cost`` on the session named; else 402."""
        requirement = payments.upto_requirement(
            self.network, self.asset, self.pay_to, self.session_cap, self.facilitator
        )
        header = headers.get(upto.HEADER.lower())
        session_id = headers.get(upto.SESSION_HEADER.lower())
        if header is not None or session_id is None:
            entry = self._settle(header, requirement, path, kind)
            if not isinstance(entry, Settlement):
                challenge = payments.upto_challenge(requirement, self.base_url, path, entry)
                body = {"error": entry} if entry else {}
                return Reply(402, body, {PAYMENT_REQUIRED_HEADER: challenge})
            session_id = entry.session_id
        idle = self.session_idle_timeout
        if session_id is None or not self.ledger.charge(session_id, path, cost, time.time(), idle):
            return Reply(402, {"error": SESSION_EXHAUSTED})
        return {upto.SESSION_HEADER: session_id}
