"""A LlamaIndex RAG pipeline over examples/documents/, answered by a TEE-verified, paid LLM.

    python examples/llamaindex_rag.py

The query engine hides the LLM's response, so an instrumentation handler collects each answer's
proof and receipt as LlamaIndex reports the LLM call.
"""

from pathlib import Path
from typing import Any

from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.llm import LLMChatEndEvent

from llamaindex_opengradient import OpenGradient

from _local import server_and_wallet
from _offline_embedding import HashingEmbedding


class ProofCollector(BaseEventHandler):
    """Keeps the ``additional_kwargs`` (proof, receipt, usage) of every LLM answer."""

    answers: list[dict[str, Any]] = []

    def handle(self, event: Any, **kwargs: Any) -> None:
        if isinstance(event, LLMChatEndEvent) and event.response is not None:
            self.answers.append(event.response.additional_kwargs)


with server_and_wallet():
    proofs = ProofCollector()
    get_dispatcher().add_event_handler(proofs)
    Settings.llm = OpenGradient(
        model="openai/gpt-4.1-2025-04-14"
    )  # key and URL from the environment
    Settings.embed_model = HashingEmbedding()  # offline; use a real embedding in production

    documents = SimpleDirectoryReader(str(Path(__file__).parent / "documents")).load_data()
    engine = VectorStoreIndex.from_documents(documents).as_query_engine(similarity_top_k=2)
    question = "Which settlement mode records only the hashes of the input and output?"
    response = engine.query(question)

    print("answer: ", response)
    print("sources:", [node.metadata["file_name"] for node in response.source_nodes])
    for answer in proofs.answers:
        proof, paid = answer["tee_proof"], answer["payment"]
        print(
            f"TEE proof verified: {proof['verified']} by {proof['tee_id'][:18]}…; "
            f"paid {paid['amount']} base units, tx {paid['transaction']}"
        )

    streaming = VectorStoreIndex.from_documents(documents).as_query_engine(streaming=True)
    for token in streaming.query("What does the per-call cap do?").response_gen:
        print(token, end="", flush=True)
    print()
