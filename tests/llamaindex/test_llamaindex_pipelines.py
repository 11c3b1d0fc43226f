"""OpenGradient inside LlamaIndex's own pipelines, against a real LocalGateway: a RAG query
engine (plain and streaming) over a small index, a chat engine over two turns, a FunctionAgent
using two tools, and structured output into a pydantic model. Retrieval uses the examples'
offline embedding (examples/_offline_embedding.py, on the test path): deterministic, no download."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from li_support import MODEL, assert_proven
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import AgentOutput, FunctionAgent, ToolCallResult
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMChatStartEvent
from llama_index.core.llms import ChatMessage
from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel, Field

from llamaindex_opengradient import OpenGradient

from _offline_embedding import HashingEmbedding

OFFICES = {
    "Lisbon": "The Lisbon office keeps its backups in a vault under the Alfama district. "
    "Its team works on payment channels.",
    "Oslo": "The Oslo office runs its build farm on geothermal power. "
    "Its team maintains the gateway.",
    "Nairobi": "The Nairobi office trains new engineers every spring. "
    "Its team writes the documentation.",
    "Lima": "The Lima office answers support tickets around the clock. "
    "Its team owns the status page.",
}


@pytest.fixture(scope="module")
def index() -> VectorStoreIndex:
    """A vector index over one document per office, embedded offline."""
    documents = [Document(text=text, metadata={"office": city}) for city, text in OFFICES.items()]
    return VectorStoreIndex.from_documents(documents, embed_model=HashingEmbedding())


class _ChatEvents(BaseEventHandler):
    """Keeps the start and end event of every chat call."""

    events: list[Any] = []

    @classmethod
    def class_name(cls) -> str:
        return "TestChatEvents"

    def handle(self, event: Any, **kwargs: Any) -> None:
        if isinstance(event, LLMChatStartEvent | LLMChatEndEvent):
            self.events.append(event)

    def ends(self) -> list[Any]:
        return [e for e in self.events if isinstance(e, LLMChatEndEvent)]

    def starts(self) -> list[Any]:
        return [e for e in self.events if isinstance(e, LLMChatStartEvent)]


@pytest.fixture
def chat_events() -> Iterator[_ChatEvents]:
    handler = _ChatEvents(events=[])
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    yield handler
    dispatcher.event_handlers.remove(handler)


# ---- RAG -----------------------------------------------------------------------------------


def test_query_engine_answers_from_the_right_document_with_a_proof(
    index: VectorStoreIndex,
    llm: OpenGradient,
    chat_events: _ChatEvents,
    shared_gateway: Any,
    wallet: Any,
) -> None:
    engine = index.as_query_engine(llm=llm, similarity_top_k=2)
    response = engine.query("Where does the Lisbon office keep its backups?")
    assert response.source_nodes[0].node.metadata["office"] == "Lisbon"
    assert "vault under the Alfama district" in str(response)
    (end,) = chat_events.ends()
    assert end.response.message.content == str(response)
    assert_proven(end.response.additional_kwargs, shared_gateway, wallet)


def test_streaming_query_engine_streams_the_same_answer(
    index: VectorStoreIndex, llm: OpenGradient, chat_events: _ChatEvents
) -> None:
    question = "What power does the Oslo build farm run on?"
    plain = str(index.as_query_engine(llm=llm, similarity_top_k=2).query(question))
    streaming = index.as_query_engine(llm=llm, similarity_top_k=2, streaming=True)
    tokens = list(streaming.query(question).response_gen)
    assert len(tokens) > 3
    assert "".join(tokens) == plain and "geothermal" in plain
    final = chat_events.ends()[-1].response
    assert final.additional_kwargs["tee_proof"]["verified"] is True


async def test_async_query_engine(index: VectorStoreIndex, llm: OpenGradient) -> None:
    engine = index.as_query_engine(llm=llm, similarity_top_k=2)
    response = await engine.aquery("Who trains new engineers every spring?")
    assert "Nairobi office trains new engineers" in str(response)


# ---- chat engine ---------------------------------------------------------------------------


def test_chat_engine_carries_the_first_turn_into_the_second(
    index: VectorStoreIndex, llm: OpenGradient, chat_events: _ChatEvents
) -> None:
    engine = index.as_chat_engine(chat_mode="context", llm=llm, similarity_top_k=1)
    first = engine.chat("Tell me about the Lisbon office")
    second = engine.chat("And the Oslo office?")
    assert str(first) == "You said: Tell me about the Lisbon office"
    assert str(second) == "You said: And the Oslo office?"
    sent = [m.content for m in chat_events.starts()[-1].messages]
    assert sent[-3:] == [
        "Tell me about the Lisbon office",
        "You said: Tell me about the Lisbon office",
        "And the Oslo office?",
    ]
    assert "geothermal" in sent[0]  # the second turn's retrieved context, in the system prompt
    assert [m.role.value for m in engine.chat_history] == ["user", "assistant"] * 2
    assert all(e.response.additional_kwargs["tee_proof"]["verified"] for e in chat_events.ends())


def test_streaming_chat_engine(llm: OpenGradient) -> None:
    from llama_index.core.chat_engine import SimpleChatEngine

    engine = SimpleChatEngine.from_defaults(llm=llm)
    streamed = engine.stream_chat("Stream a reply to me")
    assert "".join(streamed.response_gen) == "You said: Stream a reply to me"


# ---- agent -----------------------------------------------------------------------------------


def get_weather(city: str) -> str:
    """Current weather of a city."""
    return f"18 C and light rain in {city}"


def get_local_time(city: str) -> str:
    """Current local time of a city."""
    return f"07:45 in {city}"


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "not-streaming"])
async def test_function_agent_uses_both_tools_and_answers_from_their_results(
    llm: OpenGradient, shared_gateway: Any, wallet: Any, streaming: bool
) -> None:
    agent = FunctionAgent(
        tools=[get_weather, get_local_time],
        llm=llm,
        system_prompt="Use the tools.",
        streaming=streaming,
    )
    settled = len(shared_gateway.ledger.entries)
    handler = agent.run("What is the weather and the local time in Lisbon?")
    calls, steps = [], []
    async for event in handler.stream_events():
        if isinstance(event, ToolCallResult):
            calls.append((event.tool_name, event.tool_kwargs))
        elif isinstance(event, AgentOutput):
            steps.append(event)
    answer = str(await handler)
    assert sorted(calls) == [("get_local_time", {"city": "Lisbon"}),
                             ("get_weather", {"city": "Lisbon"})]  # fmt: skip
    assert "18 C and light rain in Lisbon" in answer and "07:45 in Lisbon" in answer
    assert len(steps) == 3  # two tool-calling steps and the answer
    for step in steps:
        assert step.raw["tee_proof"]["verified"] is True
        assert step.raw["payment"]["payer"] == wallet.address
    assert len(shared_gateway.ledger.entries) - settled == 3


# ---- structured output -------------------------------------------------------------------


class Flight(BaseModel):
    """A flight booking request."""

    origin: str = Field(description="the city the flight leaves from")
    seats: int = Field(description="how many seats")


BOOK = PromptTemplate("Book {n} seats from {city}")


def test_structured_predict_fills_a_pydantic_model(
    llm: OpenGradient, chat_events: _ChatEvents, shared_gateway: Any, wallet: Any
) -> None:
    flight = llm.structured_predict(Flight, BOOK, n=3, city="Oslo")
    assert flight == Flight(origin="Oslo", seats=3)
    (end,) = chat_events.ends()
    assert end.response.additional_kwargs["finish_reason"] == "tool_calls"
    assert_proven(end.response.additional_kwargs, shared_gateway, wallet)


async def test_async_structured_predict(llm: OpenGradient) -> None:
    assert await llm.astructured_predict(Flight, BOOK, n=2, city="Lima") == Flight(
        origin="Lima", seats=2
    )


def test_as_structured_llm(llm: OpenGradient) -> None:
    structured = llm.as_structured_llm(Flight)
    response = structured.chat([ChatMessage(role="user", content="Book 4 seats from Nairobi")])
    assert response.raw == Flight(origin="Nairobi", seats=4)
    assert Flight.model_validate_json(response.message.content or "") == response.raw


def test_stream_structured_predict_ends_with_the_whole_object(llm: OpenGradient) -> None:
    prompt = PromptTemplate("Flight: book {n} seats from {city}")
    partials = list(llm.stream_structured_predict(Flight, prompt, n=5, city="Lisbon"))
    assert partials[-1] == Flight(origin="Lisbon", seats=5)


def test_model_name_in_the_pipeline_metadata(llm: OpenGradient) -> None:
    assert llm.metadata.model_name == MODEL
