"""An answer's text that opens brackets 100,000 deep crashed the process in output parsers
(LangChain's ``with_structured_output`` json_mode/json_schema parse the text with ``json.loads``;
SIGSEGV, as eth-account raises the recursion limit to 100,000). The transport refuses text that
holds more than ``MAX_TEXT_DEPTH`` brackets open at any point — plain, completion, and streamed
(counted on across pieces, so no piece past the limit is delivered). The crash cases run in
child processes, so a regression fails rather than kills the run."""

from __future__ import annotations

import textwrap

import pytest
from eth_account.signers.local import LocalAccount
from opengradient_shared import LLM, TEE_LLM
from opengradient_shared.errors import MalformedAnswerError, StreamInterruptedError
from opengradient_shared.protocol import MAX_TEXT_DEPTH, open_brackets

from hostile import HostileServer
from hostile.child import run_in_child

MODEL = TEE_LLM.GPT_4_1_2025_04_14
ASK = [{"role": "user", "content": "answer in JSON"}]

CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[-1])
    from eth_account import Account
    from hostile import HostileServer
    from langchain_opengradient import ChatOpenGradient
    from opengradient_shared.errors import OpenGradientError
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str

    assert sys.getrecursionlimit() >= 100_000  # the condition for the overflow holds
    method, stream = sys.argv[1], sys.argv[2] == "stream"
    with HostileServer() as server:
        server.script(server.signed_chat(" ".join(["[" * 1000] * 100)))  # signed, in 100 pieces
        chat = ChatOpenGradient(
            model="openai/gpt-4.1-2025-04-14", base_url=server.url,
            private_key=Account.create().key,
        )
        structured = chat.with_structured_output(Person, method=method)
        try:
            list(structured.stream("hi")) if stream else structured.invoke("hi")
            print("parsed")
        except OpenGradientError as exc:
            print("refused:", type(exc).__name__)
    """
)


@pytest.mark.parametrize("stream", ["plain", "stream"])
@pytest.mark.parametrize("method", ["json_mode", "json_schema"])
def test_100000_open_brackets_through_structured_output_end_as_an_error(
    method: str, stream: str
) -> None:
    expected = "StreamInterruptedError" if stream == "stream" else "MalformedAnswerError"
    assert run_in_child(CHILD, method, stream) == f"refused: {expected}"


def test_plain_text_over_the_limit_is_malformed(
    hostile: HostileServer, account: LocalAccount
) -> None:
    hostile.script(hostile.signed_chat("{" * (MAX_TEXT_DEPTH + 1)))
    with pytest.raises(MalformedAnswerError, match="opens more than"):
        LLM(account, hostile.url).chat(MODEL, ASK)


def test_streamed_text_is_counted_across_pieces(
    hostile: HostileServer, account: LocalAccount
) -> None:
    """Each piece holds few brackets; their sum passes the limit, and what was delivered
    before never does."""
    words = " ".join(["[" * 10] * (MAX_TEXT_DEPTH // 10 + 5))
    hostile.script(hostile.signed_chat(words))
    got = []
    with pytest.raises(StreamInterruptedError, match="opens more than"):
        for chunk in LLM(account, hostile.url).chat(MODEL, ASK, stream=True):
            got.append(chunk)
    delivered = "".join(c.delta.content or "" for chunk in got for c in chunk.choices)
    assert 0 < delivered.count("[") <= MAX_TEXT_DEPTH


def test_control_closed_brackets_and_text_at_the_limit_are_delivered(
    hostile: HostileServer, account: LocalAccount
) -> None:
    text = "[]" * 5000 + " " + "{" * MAX_TEXT_DEPTH  # many brackets, never more than the limit open
    hostile.script(hostile.signed_chat(text), hostile.signed_chat(text))
    llm = LLM(account, hostile.url)
    out = llm.chat(MODEL, ASK)
    assert out.chat_output is not None and out.chat_output["content"] == text
    chunks = list(llm.chat(MODEL, ASK, stream=True))
    assert "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices) == text
    assert chunks[-1].tee_proof is not None and chunks[-1].tee_proof.verified


def test_the_count_never_goes_below_zero() -> None:
    """Closing brackets first cannot hide openings after them: the count bounds the nesting of
    any part of the text."""
    assert open_brackets("]" * 500 + "[[", "text") == 2
    with pytest.raises(MalformedAnswerError):
        open_brackets("}" * 1000 + "{" * (MAX_TEXT_DEPTH + 1), "text")
