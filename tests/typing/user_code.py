"""Code as a user of the package writes it, for ``mypy --strict`` (see tests/test_typing.py):
the keyword names the README documents must type-check, not only run."""

from __future__ import annotations

from eth_account import Account
from langchain_core.messages import AIMessage
from opengradient_shared import (
    LLM,
    TEE_LLM,
    TextGenerationOutput,
    TextGenerationStream,
    x402SettlementMode,
)
from pydantic import SecretStr

from langchain_opengradient import ChatOpenGradient, OpenGradientLLM
from llamaindex_opengradient import OpenGradient

KEY = SecretStr("0x" + "11" * 32)
URL = "http://127.0.0.1:1"

chat = ChatOpenGradient(
    model=TEE_LLM.GPT_4_1_2025_04_14,
    private_key=KEY,
    base_url=URL,
    settlement_mode=x402SettlementMode.SETTLE,
    max_payment=10_000,
    timeout=5.0,
    max_retries=1,
)
completion_model = OpenGradientLLM(model="openai/gpt-4.1-2025-04-14", private_key=KEY, base_url=URL)
llama = OpenGradient(
    model="openai/gpt-4.1-2025-04-14", private_key=KEY, base_url=URL, max_tokens=64
)
transport = LLM(Account.create(), URL, URL, max_payment=10_000)


def answer(question: str) -> str:
    message = chat.invoke(question)
    assert isinstance(message, AIMessage)
    return message.text


def seed_call() -> str | None:
    output = transport.chat(
        TEE_LLM.GPT_4_1_2025_04_14, [{"role": "user", "content": "hi"}], max_tokens=10
    )
    assert isinstance(output, TextGenerationOutput)
    return output.payment_hash


# ChatOpenAI habits: the forwarded fields, model_name and the built-in token counter
openai_style = ChatOpenGradient(
    model="openai/gpt-4.1-2025-04-14",
    private_key=KEY,
    base_url=URL + "/v1",
    max_tokens=None,
    top_p=0.9,
    seed=7,
    stream_usage=False,
    model_kwargs={"user": "user-42"},
)
model_name: str = openai_style.model_name
prompt_tokens: int = openai_style.get_num_tokens("How many tokens is this?")


def uncapped_seed_call() -> TextGenerationOutput | None:
    output = transport.chat(
        TEE_LLM.GPT_4_1_2025_04_14,
        [{"role": "user", "content": "hi"}],
        max_tokens=None,
        extra_body={"top_p": 0.5, "seed": 3},
    )
    return output if isinstance(output, TextGenerationOutput) else None


def typed_by_stream() -> tuple[str | None, int]:
    """``chat`` is overloaded on ``stream``: no isinstance needed (issue 15)."""
    output: TextGenerationOutput = transport.chat(TEE_LLM.GPT_4_1_2025_04_14, [])
    stream: TextGenerationStream = transport.chat(TEE_LLM.GPT_4_1_2025_04_14, [], stream=True)
    receipt = output.payment
    cost: int | None = receipt.cost if receipt is not None else None
    return output.payment_hash, sum(1 for _ in stream) + (cost or 0)


async def typed_by_stream_async() -> TextGenerationStream:
    done: TextGenerationOutput = await transport.achat(TEE_LLM.GPT_4_1_2025_04_14, [])
    assert done.finish_reason is None or isinstance(done.finish_reason, str)
    return await transport.achat(TEE_LLM.GPT_4_1_2025_04_14, [], stream=True)


adapter_on_transport = ChatOpenGradient(model="openai/gpt-5", client=transport)
llama_on_transport = OpenGradient(
    model="openai/gpt-5", client=transport, allow_unknown_models=False
)
newer = LLM(Account.create(), URL, allow_unknown_models=True)
