"""A streamed chat printed as it arrives; the last chunk carries the TEE proof and receipt.

python examples/streaming.py
"""

import asyncio
import os

from eth_account import Account
from opengradient_shared import LLM, TEE_LLM

from _local import server_and_wallet

QUESTION = [
    {
        "role": "system",
        "content": "Context: An enclave signs each answer. "
        "The signature covers the request hash and the output hash.",
    },
    {"role": "user", "content": "Question: What does the signature cover?"},
]


async def main() -> None:
    wallet = Account.from_key(os.environ["OPENGRADIENT_PRIVATE_KEY"])
    async with LLM(wallet, os.environ["OPENGRADIENT_LLM_URL"]) as llm:
        stream = await llm.achat(TEE_LLM.GEMINI_2_5_FLASH, QUESTION, stream=True)
        async for chunk in stream:
            for choice in chunk.choices:
                print(choice.delta.content or "", end="", flush=True)
        final = stream.final_chunk
        proof = final.tee_proof
        print(f"\n  TEE proof verified: {proof.verified}, tee_id {proof.tee_id}")
        print(f"  paid {final.payment.amount} base units, tx {final.payment.transaction}")

    # The same with the blocking API, in the calling thread:
    with LLM(wallet, os.environ["OPENGRADIENT_LLM_URL"]) as llm:
        for chunk in llm.chat(TEE_LLM.GEMINI_2_5_FLASH, QUESTION, stream=True):
            print("".join(c.delta.content or "" for c in chunk.choices), end="|", flush=True)
        print()


with server_and_wallet():
    asyncio.run(main())
