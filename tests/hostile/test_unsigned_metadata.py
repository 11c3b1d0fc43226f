"""What the README's trust model says the proof does not cover: the answer's ``id``, ``model``,
``finish_reason`` and ``usage`` are passed on as the server sent them (type-checked). A relay
that changes only those leaves a verified answer; the content beside them stays covered (the
control changes one word of the text and fails)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from opengradient_shared import LLM, TEE_LLM
from opengradient_shared.errors import VerificationError

from hostile import HostileServer

MODEL = TEE_LLM.GPT_4_1_2025_04_14
ASK = [{"role": "user", "content": "hello"}]
USAGE = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def _relabel(data: dict[str, Any]) -> dict[str, Any]:
    data["choices"][0]["finish_reason"] = "length"
    return {**data, "id": "chatcmpl-relabelled", "model": "another-model", "usage": USAGE}


def test_id_model_finish_reason_and_usage_are_not_covered_by_the_proof(
    hostile: HostileServer, account: LocalAccount
) -> None:
    hostile.script(hostile.signed_chat("hello there", mutate=_relabel))
    out = LLM(account, hostile.url, verification="raise").chat(MODEL, ASK)
    assert out.tee_proof is not None and out.tee_proof.verified
    assert (out.id, out.model, out.finish_reason) == (
        "chatcmpl-relabelled",
        "another-model",
        "length",
    )
    assert out.usage is not None and out.usage.total_tokens == 3


def test_control_the_content_beside_them_is_covered(
    hostile: HostileServer, account: LocalAccount
) -> None:
    hostile.script(hostile.signed_chat("hello there", signed=("hello where", None)))
    with pytest.raises(VerificationError):
        LLM(account, hostile.url, verification="raise").chat(MODEL, ASK)
