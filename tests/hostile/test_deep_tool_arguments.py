"""A tool call's ``function.arguments`` is a JSON string inside the answer, so the answer's own
nesting check does not see into it; the adapters (and LangChain's chunk merge) then parse it
with ``json.loads``, and arguments 100,000 levels deep crashed the process (SIGSEGV: eth-account
raises the recursion limit to 100,000). The transport now refuses arguments nested deeper than
``wire.MAX_DEPTH`` as a malformed answer, plain or streamed (checked whole, before the held
tool-call chunks are released), and a request whose history holds such arguments as bad input.
The crash cases run in child processes, so a regression fails rather than kills the run."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from opengradient_shared import LLM, TEE_LLM
from opengradient_shared.errors import (
    InvalidRequestError,
    MalformedAnswerError,
    StreamInterruptedError,
)
from opengradient_shared.protocol import MAX_REQUEST_DEPTH, prepare_chat
from opengradient_shared.wire import MAX_DEPTH

from hostile import HostileServer
from hostile.child import run_in_child

MODEL = TEE_LLM.GPT_4_1_2025_04_14
ASK = [{"role": "user", "content": "what is the weather?"}]


def _call(arguments: str) -> dict[str, Any]:
    return {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[-1])
    from eth_account import Account
    from hostile import HostileServer
    from opengradient_shared.errors import OpenGradientError

    assert sys.getrecursionlimit() >= 100_000  # the condition for the overflow holds
    adapter, stream = sys.argv[1], sys.argv[2] == "stream"
    deep = "[" * 100_000 + "]" * 100_000
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": deep}}
    with HostileServer() as server:
        server.script(server.signed_chat("", [call]))  # signed: the proof itself verifies
        key, model = Account.create().key, "openai/gpt-4.1-2025-04-14"
        try:
            if adapter == "langchain":
                from langchain_opengradient import ChatOpenGradient
                chat = ChatOpenGradient(model=model, base_url=server.url, private_key=key)
                list(chat.stream("hi")) if stream else chat.invoke("hi")
            else:
                from llama_index.core.llms import ChatMessage
                from llamaindex_opengradient import OpenGradient
                llm = OpenGradient(model=model, base_url=server.url, private_key=key)
                ask = [ChatMessage(role="user", content="hi")]
                list(llm.stream_chat(ask)) if stream else llm.chat(ask)
            print("delivered")
        except OpenGradientError as exc:
            print("refused:", type(exc).__name__)
    """
)


@pytest.mark.parametrize("stream", ["plain", "stream"])
@pytest.mark.parametrize("adapter", ["langchain", "llamaindex"])
def test_100000_deep_arguments_through_the_adapters_end_as_an_error(
    adapter: str, stream: str
) -> None:
    expected = "StreamInterruptedError" if stream == "stream" else "MalformedAnswerError"
    assert run_in_child(CHILD, adapter, stream) == f"refused: {expected}"


def test_plain_answer_with_arguments_over_the_limit_is_malformed(
    hostile: HostileServer, account: LocalAccount
) -> None:
    hostile.script(hostile.signed_chat("", [_call(_deep(MAX_DEPTH + 1))]))
    with pytest.raises(MalformedAnswerError, match="arguments is JSON nested deeper than"):
        LLM(account, hostile.url).chat(MODEL, ASK)


def test_streamed_arguments_over_the_limit_deliver_no_tool_call(
    hostile: HostileServer, account: LocalAccount
) -> None:
    """The pieces are each shallow; the whole is checked before any held chunk is released."""
    hostile.script(hostile.signed_chat("", [_call(_deep(MAX_DEPTH + 1))]))
    got = []
    with pytest.raises(StreamInterruptedError, match="arguments is JSON nested deeper than"):
        for chunk in LLM(account, hostile.url).chat(MODEL, ASK, stream=True):
            got.append(chunk)
    assert [c for chunk in got for c in chunk.choices if c.delta.tool_calls] == []


@pytest.mark.parametrize("stream", [False, True])
def test_control_arguments_at_the_limit_are_delivered_and_verified(
    hostile: HostileServer, account: LocalAccount, stream: bool
) -> None:
    arguments = json.dumps({"a": json.loads(_deep(MAX_DEPTH - 1))})  # exactly MAX_DEPTH deep
    hostile.script(hostile.signed_chat("", [_call(arguments)]))
    llm = LLM(account, hostile.url)
    if stream:
        chunks = list(llm.chat(MODEL, ASK, stream=True))
        pieces = [p for chunk in chunks for c in chunk.choices for p in c.delta.tool_calls or []]
        assert "".join(p.get("function", {}).get("arguments", "") for p in pieces) == arguments
        assert chunks[-1].tee_proof is not None and chunks[-1].tee_proof.verified
    else:
        out = llm.chat(MODEL, ASK)
        assert out.chat_output is not None
        assert out.chat_output["tool_calls"][0]["function"]["arguments"] == arguments
        assert out.tee_proof is not None and out.tee_proof.verified


def test_history_arguments_nested_too_deep_are_bad_input() -> None:
    history = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [_call(_deep(MAX_REQUEST_DEPTH + 1))]},
        {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
    ]
    with pytest.raises(InvalidRequestError, match=f"nests more than {MAX_REQUEST_DEPTH} levels"):
        prepare_chat(MODEL, history)
