"""LlamaIndex conventions against a real LocalGateway: no ``max_tokens`` cap unless set (the
request carries none, ``metadata.num_output`` is -1 like LlamaIndex's OpenAI), a cut answer is
visible (``finish_reason`` in ``additional_kwargs`` and one warning per model), and
``collect_proofs`` gathers the proofs of the answers behind a query engine."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from li_support import MODEL, assert_proven, key_of
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.instrumentation import get_dispatcher
from opengradient_shared import protocol, tee

from llamaindex_opengradient import OpenGradient, ProofCollector, collect_proofs
from llamaindex_opengradient.base import UNSET_COMPLETION_MAX_TOKENS

from _offline_embedding import HashingEmbedding

_LONG = " ".join(f"word{i}" for i in range(150))  # over the old default cap of 100
_TEXT_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "Echo",
        "schema": {"type": "object", "properties": {"text": {"type": "string"}}},
    },
}


def _user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def _cut_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "cut at max_tokens" in str(w.message)]


def test_no_max_tokens_means_no_cap_in_the_request_and_num_output_minus_one(
    llm: OpenGradient,
) -> None:
    assert llm.max_tokens is None and llm.metadata.num_output == -1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = llm.chat(_user(_LONG), response_format=_TEXT_SCHEMA)
    assert response.additional_kwargs["finish_reason"] == "stop"
    assert json.loads(response.message.content)["text"] == _LONG  # 150 words, not cut
    assert not _cut_warnings(caught)
    # the proof's request hash is the hash of a request without max_tokens
    sent = {
        "model": protocol.wire_model(MODEL),
        "messages": [{"role": "user", "content": _LONG}],
        "temperature": 0.0,
        "response_format": _TEXT_SCHEMA,
    }
    assert response.additional_kwargs["tee_proof"]["request_hash"] == tee.request_hash(sent)
    # the completion endpoint's schema would cap at 16 tokens: None sends 4096 there
    completed = llm.complete(_LONG)
    assert completed.additional_kwargs["finish_reason"] == "stop"
    body = {"model": sent["model"], "prompt": _LONG, "temperature": 0.0}
    expected = tee.request_hash(
        {**body, "max_tokens": UNSET_COMPLETION_MAX_TOKENS}, completion=True
    )
    assert completed.additional_kwargs["tee_proof"]["request_hash"] == expected


def test_a_cut_answer_says_so_and_warns_once_per_model(shared_gateway: Any, wallet: Any) -> None:
    llm = OpenGradient(
        model=MODEL, private_key=key_of(wallet), base_url=shared_gateway.url, max_tokens=3
    )
    assert llm.metadata.num_output == 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = llm.chat(_user("one two three four five six"))
        streamed = list(llm.stream_chat(_user("seven eight nine ten eleven")))
        completed = llm.complete("alpha beta gamma delta epsilon")
        whole = llm.chat(_user("a"))  # "You said: a": not cut
    assert first.additional_kwargs["finish_reason"] == "length"
    assert streamed[-1].additional_kwargs["finish_reason"] == "length"
    assert completed.additional_kwargs["finish_reason"] == "length"
    assert whole.additional_kwargs["finish_reason"] == "stop"
    (message,) = _cut_warnings(caught)
    assert "finish_reason='length'" in message and MODEL in message


async def test_a_cut_async_stream_warns(shared_gateway: Any, wallet: Any) -> None:
    llm = OpenGradient(
        model=MODEL, private_key=key_of(wallet), base_url=shared_gateway.url, max_tokens=2
    )
    with pytest.warns(UserWarning, match="cut at max_tokens"):
        stream = await llm.astream_chat(_user("one two three four"))
        responses = [response async for response in stream]
    assert responses[-1].additional_kwargs["finish_reason"] == "length"


def test_collect_proofs_gathers_each_answer_of_a_query(
    llm: OpenGradient, shared_gateway: Any, wallet: Any
) -> None:
    documents = [
        Document(text="The Lisbon office keeps its backups in a vault under the Alfama district."),
        Document(text="The Oslo office runs its build farm on geothermal power."),
    ]
    index = VectorStoreIndex.from_documents(documents, embed_model=HashingEmbedding())
    engine = index.as_query_engine(llm=llm, similarity_top_k=1)
    handlers = len(get_dispatcher().event_handlers)
    with collect_proofs() as proofs:
        assert proofs.answers == [] and not proofs.all_verified
        response = engine.query("Where does the Lisbon office keep its backups?")
        streamed = index.as_query_engine(llm=llm, streaming=True).query("Oslo power?")
        "".join(streamed.response_gen)
    assert "vault" in str(response)
    assert isinstance(proofs, ProofCollector) and len(proofs.answers) == 2
    for answer in proofs.answers:
        assert_proven(answer, shared_gateway, wallet)
    assert proofs.all_verified
    assert [p["tee_id"] for p in proofs.proofs] == [shared_gateway.tee_id] * 2
    assert [p["payer"] for p in proofs.payments if p] == [wallet.address] * 2
    # detached after the block: later calls are not collected
    assert len(get_dispatcher().event_handlers) == handlers
    engine.query("Where does the Oslo office run its build farm?")
    assert len(proofs.answers) == 2


def test_collector_ignores_other_llms_answers() -> None:
    from llama_index.core.base.llms.types import ChatResponse
    from llama_index.core.instrumentation.events.llm import LLMChatEndEvent

    collector = ProofCollector()
    other = ChatResponse(message=ChatMessage(role="assistant", content="hi"))
    collector.handle(LLMChatEndEvent(messages=[], response=other))
    assert collector.answers == [] and not collector.all_verified


def test_the_llama_index_import_path_exports_the_collector() -> None:
    from llama_index.llms.opengradient import OpenGradient as Llm
    from llama_index.llms.opengradient import collect_proofs as collect

    assert Llm is OpenGradient and collect is collect_proofs
