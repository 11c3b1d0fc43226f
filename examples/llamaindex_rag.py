"""A LlamaIndex RAG pipeline over examples/documents/, answered by a TEE-verified, paid LLM.

    python examples/llamaindex_rag.py

The query engine hides the LLM's response: ``collect_proofs()`` (an instrumentation event
handler shipped in the package) collects each answer's proof and receipt as LlamaIndex reports
the LLM call. The embedding is an offline stand-in that lives in examples/ (not in the package).
"""

from pathlib import Path

from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex

from llamaindex_opengradient import OpenGradient, collect_proofs

from _local import server_and_wallet
from _offline_embedding import HashingEmbedding

with server_and_wallet():
    Settings.llm = OpenGradient(
        model="openai/gpt-4.1-2025-04-14"
    )  # key and URL from the environment
    Settings.embed_model = HashingEmbedding()  # offline; use a real embedding in production

    documents = SimpleDirectoryReader(str(Path(__file__).parent / "documents")).load_data()
    engine = VectorStoreIndex.from_documents(documents).as_query_engine(similarity_top_k=2)
    question = "Which settlement mode records only the hashes of the input and output?"
    with collect_proofs() as proofs:
        response = engine.query(question)

    print("answer: ", response)
    print("sources:", [node.metadata["file_name"] for node in response.source_nodes])
    for answer in proofs.answers:
        proof, paid = answer["tee_proof"], answer["payment"]
        cost = "not reported" if paid["cost"] is None else f"{paid['cost']} base units"
        print(f"TEE proof verified: {proof['verified']} by {proof['tee_id'][:18]}…; cost {cost}")

    streaming = VectorStoreIndex.from_documents(documents).as_query_engine(streaming=True)
    for token in streaming.query("What does the per-call cap do?").response_gen:
        print(token, end="", flush=True)
    print()
