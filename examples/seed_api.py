"""The seed API used directly: one paid, TEE-verified chat call and one completion call.

python examples/seed_api.py
"""

import os

from eth_account import Account
from opengradient_shared import LLM, TEE_LLM, x402SettlementMode

from _local import server_and_wallet

with server_and_wallet():
    wallet = Account.from_key(os.environ["OPENGRADIENT_PRIVATE_KEY"])
    with LLM(wallet, os.environ["OPENGRADIENT_LLM_URL"], max_payment=10**16) as llm:
        answer = llm.chat(
            TEE_LLM.GPT_4_1_2025_04_14,
            [{"role": "user", "content": "Name one reason to verify where an answer came from."}],
            max_tokens=60,
            x402_settlement_mode=x402SettlementMode.SETTLE_METADATA,
        )
        print("chat:      ", answer.chat_output["content"])
        proof, paid = answer.tee_proof, answer.payment  # an unverified proof would have raised
        print("  TEE proof verified:", proof.verified, "tee_id", proof.tee_id)
        print(f"  paid {paid.amount} base units on {paid.network}, tx {paid.transaction}")
        print("  payment hash:", answer.payment_hash)

        text = llm.completion(TEE_LLM.CLAUDE_HAIKU_4_5, "The enclave signed", max_tokens=8)
        print("completion:", text.completion_output)
        print("  proof verified:", text.tee_proof.verified, "by", text.tee_proof.tee_id)
