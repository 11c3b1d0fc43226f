"""The main job, end to end: an agent, a RAG query, a stream and the seed API, each answer paid
with x402 and its TEE proof verified.

    make demo                      # or: python examples/demo.py [--protocol v2]
    make demo ARGS="--registry"    # no URL: discovery, pinned TLS, attestation (local chain)

Runs against a local TEE gateway unless OPENGRADIENT_LLM_URL names a server, and with a
throwaway wallet unless OPENGRADIENT_PRIVATE_KEY is set. Exits 1 if any part or proof failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _local import local_network, server_and_wallet

MODEL = "openai/gpt-4.1-2025-04-14"
DOCUMENTS = Path(__file__).parent / "documents"
_SYMBOLS = {"0xfbc2051ae2265686a469421b2c5a2d5462fbf5eb": "OPG"}


@dataclass
class Tally:
    """What the demo's calls paid and proved, and the HTTP round trips they took."""

    calls: int = 0
    payments: int = 0
    paid: int = 0
    authorized: int = 0
    verified: int = 0
    round_trips: int = 0
    quotes: int = 0
    key_fetches: int = 0
    attestations: int = 0
    attested: int = 0
    asset: str = ""

    def record(
        self,
        payment: Mapping[str, Any] | None,
        proof: Mapping[str, Any] | None,
        origin: Mapping[str, Any] | None = None,
    ) -> str:
        """Count one answer; return its payment and proof (and origin) in one line."""
        self.calls += 1
        if proof and proof.get("verified"):
            self.verified += 1
            trust = f"TEE proof verified · tee_id {_short(proof['tee_id'])}"
        else:
            trust = "TEE proof NOT verified"
        if origin and origin.get("source") == "registry":
            self.attested += origin.get("attestation") == "verified"
            trust += f" · registry TEE, attestation {origin.get('attestation')}"
        return f"{_paid(self, payment)} · {trust}"


class _RoundTrips(logging.Handler):
    """Counts the transport's debug record of each HTTP exchange: ``METHOD url -> status``."""

    def __init__(self, tally: Tally) -> None:
        super().__init__(logging.DEBUG)
        self.tally = tally

    def emit(self, record: logging.LogRecord) -> None:
        if not isinstance(record.args, tuple) or len(record.args) != 3:
            return  # a retry notice, not an exchange
        _method, url, status = record.args
        self.tally.round_trips += 1
        self.tally.quotes += status == 402
        self.tally.key_fetches += str(url).endswith("/signing-key")
        self.tally.attestations += "/enclave/attestation?" in str(url)


def _short(text: str) -> str:
    return f"{text[:10]}…{text[-4:]}" if len(text) > 16 else text


def _tokens(amount: int, asset: str) -> str:
    from opengradient_shared.x402.networks import NETWORKS, token_decimals

    names = {n.default_asset.lower(): n.asset_name for n in NETWORKS.values()} | _SYMBOLS
    return f"{amount / 10 ** token_decimals(asset):g} {names.get(asset.lower(), 'tokens')}"


def _paid(tally: Tally, payment: Mapping[str, Any] | None) -> str:
    if not payment:
        return "no payment receipt"
    tally.asset = payment["asset"]
    if payment.get("session_id"):  # generation 2: a metered session, opened once
        session = f"session {_short(payment['session_id'])}"
        if not payment["new_payment"]:
            return f"on {session} (no new payment)"
        tally.payments += 1
        cap = payment["amount"]
        tally.authorized += cap
        return f"opened {session}, cap {cap} base units = {_tokens(cap, payment['asset'])}"
    tally.payments += 1
    tally.paid += payment["amount"]
    return (
        f"paid {payment['amount']} base units = {_tokens(payment['amount'], payment['asset'])}"
        f" · receipt tx {_short(payment.get('transaction') or '-')}"
    )


def _say(label: str, text: str) -> None:
    print(f"    {label:<9}{' '.join(str(text).split())}")


def langchain_agent(tally: Tally) -> None:
    """(a) A LangChain agent answers by calling two tools."""
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool

    from langchain_opengradient import ChatOpenGradient

    @tool
    def get_weather(city: str) -> str:
        """Current weather of a city."""
        return f"18 C and light rain in {city}"

    @tool
    def get_local_time(city: str) -> str:
        """Current local time of a city."""
        return f"07:45 in {city}"

    question = "What is the weather and the local time in Lisbon?"
    agent = create_agent(ChatOpenGradient(model=MODEL), [get_weather, get_local_time])
    _say("question", question)
    for message in agent.invoke({"messages": [("user", question)]})["messages"]:
        if isinstance(message, AIMessage):
            calls = ", ".join(f"{c['name']}({c['args']})" for c in message.tool_calls)
            _say("calls" if calls else "answer", calls or message.text)
            meta = message.response_metadata
            _say(
                "", tally.record(meta.get("payment"), meta.get("tee_proof"), meta.get("tee_origin"))
            )


def llamaindex_rag(tally: Tally) -> None:
    """(b) A LlamaIndex query engine over the documents shipped in examples/documents."""
    from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events.llm import LLMChatEndEvent

    from llamaindex_opengradient import OpenGradient

    from _offline_embedding import HashingEmbedding

    class _Answers(BaseEventHandler):
        responses: list[Any] = []

        def handle(self, event: Any, **kwargs: Any) -> None:
            if isinstance(event, LLMChatEndEvent):
                self.responses.append(event.response)

    answers = _Answers()
    get_dispatcher().add_event_handler(answers)
    Settings.llm, Settings.embed_model = OpenGradient(model=MODEL), HashingEmbedding()
    documents = SimpleDirectoryReader(str(DOCUMENTS)).load_data()
    engine = VectorStoreIndex.from_documents(documents).as_query_engine(similarity_top_k=2)
    question = "Which settlement mode records only the hashes of the input and output?"
    _say("question", question)
    response = engine.query(question)
    _say("sources", ", ".join(n.node.metadata["file_name"] for n in response.source_nodes))
    _say("answer", response.response)
    for answer in answers.responses:
        extra = answer.additional_kwargs
        _say(
            "", tally.record(extra.get("payment"), extra.get("tee_proof"), extra.get("tee_origin"))
        )


def streamed_chat(tally: Tally) -> None:
    """(c) A streamed chat (LangChain), printed chunk by chunk as it arrives."""
    from langchain_opengradient import ChatOpenGradient

    messages = [
        (
            "system",
            "Context: An enclave signs each answer. Its signature covers the hash of "
            "the request and the hash of the output, so neither can be altered unseen.",
        ),
        ("user", "Question: What does the enclave's signature cover?"),
    ]
    print("    stream   ", end="", flush=True)
    last = None
    for chunk in ChatOpenGradient(model=MODEL).stream(messages):
        print(chunk.text, end="", flush=True)
        last = chunk
    print()
    meta = last.response_metadata if last is not None else {}
    _say("", tally.record(meta.get("payment"), meta.get("tee_proof"), meta.get("tee_origin")))


def seed_api(tally: Tally) -> None:
    """(d) The seed API: ``LLM.chat`` and ``LLM.completion`` used directly."""
    from eth_account import Account
    from opengradient_shared import LLM, TEE_LLM

    wallet = Account.from_key(os.environ["OPENGRADIENT_PRIVATE_KEY"])
    with LLM(wallet, os.environ.get("OPENGRADIENT_LLM_URL")) as llm:  # no URL: the registry
        chat = llm.chat(
            TEE_LLM.CLAUDE_SONNET_4_5, [{"role": "user", "content": "Sign this answer, please."}]
        )
        _say("chat", (chat.chat_output or {}).get("content", ""))
        _say("", tally.record(*map(_as_dict, (chat.payment, chat.tee_proof, chat.tee_origin))))
        text = llm.completion(TEE_LLM.GEMINI_2_5_FLASH, "A verified answer is", max_tokens=8)
        _say("complete", text.completion_output or "")
        _say("", tally.record(*map(_as_dict, (text.payment, text.tee_proof, text.tee_origin))))


def _as_dict(value: Any) -> dict[str, Any] | None:
    return asdict(value) if value is not None else None


PARTS: list[tuple[str, Callable[[Tally], None]]] = [
    ("(a) LangChain agent calling tools", langchain_agent),
    ("(b) LlamaIndex RAG query", llamaindex_rag),
    ("(c) streamed chat", streamed_chat),
    ("(d) the seed API: LLM.chat and LLM.completion", seed_api),
]


def _summary(
    tally: Tally, failed: list[str], gateway: Any, seconds: float, chain: Any = None
) -> None:
    """Print the totals; with the local gateway, check its ledger against the receipts."""

    def amount(units: int) -> str:
        return f"{units} base units = {_tokens(units, tally.asset)}" if tally.asset else "0"

    handshakes = gateway.tls_handshakes if chain is not None else 0  # before it stops
    rows: list[tuple[str, Any]] = [("answers", tally.calls), ("payments signed", tally.payments)]
    if tally.paid:
        rows.append(("paid (receipts)", amount(tally.paid)))
    if tally.authorized:
        rows.append(("session caps signed", amount(tally.authorized)))
    if gateway is not None:
        from eth_account import Account

        gateway.stop()  # settles the open sessions, so the ledger is final
        payer = Account.from_key(os.environ["OPENGRADIENT_PRIVATE_KEY"]).address
        mine = [e for e in gateway.ledger.entries if e.payer == payer]
        settled = sum(e.amount for e in mine)
        rows.append(("gateway ledger", f"{len(mine)} settlements, {amount(settled)}"))
        if tally.paid and settled != tally.paid:
            failed.append("the gateway's ledger disagrees with the receipts")
    if chain is not None:
        rows += [
            ("registry reads", f"{chain.rpc_calls} eth_call over JSON-RPC"),
            ("TLS handshakes", f"{handshakes}, each pinned to the registered certificate"),
            ("attestations", f"{tally.attestations} fetched, {tally.attested} answers attested"),
        ]
        if tally.attested != tally.calls:
            failed.append("an answer did not come from an attested registry TEE")
    rows += [
        ("TEE proofs verified", f"{tally.verified} of {tally.calls}"),
        (
            "HTTP round trips",
            f"{tally.round_trips}: {tally.calls} answers, {tally.quotes} "
            f"price quotes (402), {tally.key_fetches} TEE key fetches",
        ),
        ("parts failed", len(failed)),
        ("seconds", f"{seconds:.1f}"),
    ]
    print("\nsummary")
    for name, value in rows:
        print(f"  {name:<21}{value}")


def _run_parts(tally: Tally, failed: list[str]) -> None:
    for title, part in PARTS:
        print(f"\n{title}")
        try:
            part(tally)
        except Exception as exc:  # noqa: BLE001 - report every part, then fail the run
            print(f"    FAILED   {type(exc).__name__}: {exc}")
            failed.append(title)


def main(argv: list[str] | None = None) -> int:
    """Run the four parts; 0 when every part ran and every answer's proof verified."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--protocol",
        choices=("v1", "v2"),
        default="v1",
        help="x402 generation of the local gateway (default v1)",
    )
    parser.add_argument(
        "--registry",
        action="store_true",
        help="no URL: find the TEE in a local on-chain registry, pin its TLS certificate and "
        "verify its attestation (needs the dev extra)",
    )
    args = parser.parse_args(argv)
    tally, failed, started = Tally(), [], time.monotonic()
    transport_log = logging.getLogger("opengradient_shared.client")
    transport_log.setLevel(logging.DEBUG)
    transport_log.addHandler(_RoundTrips(tally))
    if args.registry:
        with local_network(args.protocol) as (chain, gateway):
            _run_parts(tally, failed)
            _summary(tally, failed, gateway, time.monotonic() - started, chain)
    else:
        with server_and_wallet(args.protocol) as gateway:
            _run_parts(tally, failed)
            _summary(tally, failed, gateway, time.monotonic() - started)
    ok = not failed and tally.calls > 0 and tally.verified == tally.calls
    print("\nall answers paid and TEE-verified" if ok else "\nFAILED: " + ", ".join(failed))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
