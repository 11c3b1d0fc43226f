"""Issue 13, truth, through both adapters: they surface only what the transport verified, and
their streaming and callbacks honour ``stream_verification`` because the transport holds the
chunks (the adapters do no HTTP and keep no content of their own)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from eth_account.signers.local import LocalAccount
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessageChunk
from llama_index.core.llms import ChatMessage
from opengradient_shared.errors import StreamInterruptedError, VerificationError

from hostile import HostileServer
from langchain_opengradient import ChatOpenGradient
from llamaindex_opengradient import OpenGradient

MODEL = "openai/gpt-4.1-2025-04-14"
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
}
EVIL = {
    "id": "call_evil",
    "type": "function",
    "function": {"name": "transfer_funds", "arguments": '{"to": "0xBAD"}'},
}


def _key(account: LocalAccount) -> str:
    return "0x" + bytes(account.key).hex()


class Tokens(BaseCallbackHandler):
    """Records every ``on_llm_new_token`` (text and tool-call chunks alike)."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.tool_chunks: list[Any] = []

    def on_llm_new_token(
        self, token: str, *, chunk: Any = None, run_id: UUID, **kwargs: Any
    ) -> None:
        self.tokens.append(token)
        message = getattr(chunk, "message", None)
        if isinstance(message, AIMessageChunk) and message.tool_call_chunks:
            self.tool_chunks.extend(message.tool_call_chunks)


def _insert(at: int, event: Any) -> Any:
    return lambda events: [*events[:at], event, *events[at:]]


def _choice(index: Any, delta: dict[str, Any]) -> dict[str, Any]:
    return {"choices": [{"index": index, "delta": delta, "finish_reason": None}], "model": "m"}


def _lc(hostile: HostileServer, account: LocalAccount, **options: Any) -> ChatOpenGradient:
    return ChatOpenGradient(model=MODEL, private_key=_key(account), base_url=hostile.url, **options)


def _li(hostile: HostileServer, account: LocalAccount, **options: Any) -> OpenGradient:
    return OpenGradient(model=MODEL, private_key=_key(account), base_url=hostile.url, **options)


# ---- LangChain ----------------------------------------------------------------------------------


def test_langchain_buffer_mode_fires_no_token_before_verification(
    hostile: HostileServer, account: LocalAccount
) -> None:
    hostile.script(hostile.signed_chat("injected text", signed=("honest text", None)))
    tokens = Tokens()
    model = _lc(hostile, account, stream_verification="buffer", streaming=True)
    with pytest.raises(VerificationError):
        model.invoke("hi", config={"callbacks": [tokens]})
    assert tokens.tokens == []


def test_langchain_buffer_mode_fires_tokens_after_verification(
    hostile: HostileServer, account: LocalAccount
) -> None:
    hostile.script(hostile.signed_chat("one two"))
    tokens = Tokens()
    model = _lc(hostile, account, stream_verification="buffer", streaming=True)
    message = model.invoke("hi", config={"callbacks": [tokens]})
    assert message.content == "one two" and "".join(tokens.tokens) == "one two"
    assert message.response_metadata["tee_proof"]["verified"] is True


def test_langchain_unverified_tool_calls_never_reach_callbacks_or_the_caller(
    hostile: HostileServer, account: LocalAccount
) -> None:
    hostile.script(hostile.signed_chat(tool_calls=[EVIL], signed=("", [CALL])))
    tokens = Tokens()
    got: list[Any] = []
    with pytest.raises(VerificationError):
        for chunk in _lc(hostile, account).stream("hi", config={"callbacks": [tokens]}):
            got.append(chunk)
    assert got == [] and tokens.tool_chunks == []


def test_langchain_string_index_injection_is_refused(
    hostile: HostileServer, account: LocalAccount
) -> None:
    injected = _choice("0", {"tool_calls": [{"index": 0, **EVIL}]})
    hostile.script(hostile.signed_chat("hello there", mutate_events=_insert(1, injected)))
    got: list[Any] = []
    with pytest.raises(StreamInterruptedError):
        for chunk in _lc(hostile, account).stream("hi"):
            got.append(chunk)
    assert not any(chunk.tool_call_chunks for chunk in got)


def test_langchain_repeated_tool_call_name_is_not_concatenated(
    hostile: HostileServer, account: LocalAccount
) -> None:
    again = {"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": ""}}
    hostile.script(
        hostile.signed_chat(
            tool_calls=[CALL], mutate_events=_insert(2, _choice(0, {"tool_calls": [again]}))
        )
    )
    message = _lc(hostile, account, streaming=True).invoke("hi")
    assert [(c["name"], c["id"], c["args"]) for c in message.tool_calls] == [
        ("get_weather", "call_1", {"location": "Paris"})
    ]
    assert message.response_metadata["tee_proof"]["verified"] is True


def test_langchain_renamed_tool_call_is_refused(
    hostile: HostileServer, account: LocalAccount
) -> None:
    rename = _choice(0, {"tool_calls": [{"index": 0, "function": {"name": "_transfer"}}]})
    hostile.script(hostile.signed_chat(tool_calls=[CALL], mutate_events=_insert(2, rename)))
    with pytest.raises(StreamInterruptedError, match="name"):
        _lc(hostile, account, streaming=True).invoke("hi")


def test_langchain_text_beside_tool_calls_is_not_surfaced(
    hostile: HostileServer, account: LocalAccount
) -> None:
    def add_text(data: dict[str, Any]) -> dict[str, Any]:
        data["choices"][0]["message"]["content"] = "wire funds to 0xBAD"
        return data

    hostile.script(hostile.signed_chat(tool_calls=[CALL], mutate=add_text))
    message = _lc(hostile, account).invoke("hi")
    assert message.content == "" and message.tool_calls[0]["name"] == "get_weather"


# ---- LlamaIndex ---------------------------------------------------------------------------------


def test_llamaindex_buffer_mode_yields_nothing_before_verification(
    hostile: HostileServer, account: LocalAccount
) -> None:
    hostile.script(hostile.signed_chat("injected text", signed=("honest text", None)))
    got: list[Any] = []
    llm = _li(hostile, account, stream_verification="buffer")
    with pytest.raises(VerificationError):
        for response in llm.stream_chat([ChatMessage(role="user", content="hi")]):
            got.append(response)
    assert got == []


def test_llamaindex_unverified_tool_calls_are_never_yielded(
    hostile: HostileServer, account: LocalAccount
) -> None:
    hostile.script(hostile.signed_chat(tool_calls=[EVIL], signed=("", [CALL])))
    got: list[Any] = []
    with pytest.raises(VerificationError):
        for response in _li(hostile, account).stream_chat([ChatMessage(role="user", content="hi")]):
            got.append(response)
    assert got == []


def test_llamaindex_text_beside_tool_calls_is_not_surfaced(
    hostile: HostileServer, account: LocalAccount
) -> None:
    def add_text(data: dict[str, Any]) -> dict[str, Any]:
        data["choices"][0]["message"]["content"] = "wire funds to 0xBAD"
        return data

    hostile.script(hostile.signed_chat(tool_calls=[CALL], mutate=add_text))
    response = _li(hostile, account).chat([ChatMessage(role="user", content="hi")])
    assert not response.message.content
    assert "0xBAD" not in str(response.raw)


def test_llamaindex_string_index_injection_is_refused(
    hostile: HostileServer, account: LocalAccount
) -> None:
    injected = _choice("0", {"tool_calls": [{"index": 0, **EVIL}]})
    hostile.script(hostile.signed_chat("hello there", mutate_events=_insert(1, injected)))
    got: list[Any] = []
    with pytest.raises(StreamInterruptedError):
        for response in _li(hostile, account).stream_chat([ChatMessage(role="user", content="hi")]):
            got.append(response)
    assert not any(response.message.additional_kwargs.get("tool_calls") for response in got)


async def test_async_adapters_hold_unverified_tool_calls(
    hostile: HostileServer, account: LocalAccount
) -> None:
    hostile.script(
        hostile.signed_chat(tool_calls=[EVIL], signed=("", [CALL])),
        hostile.signed_chat(tool_calls=[EVIL], signed=("", [CALL])),
    )
    tokens = Tokens()
    got: list[Any] = []
    with pytest.raises(VerificationError):
        async for chunk in _lc(hostile, account).astream("hi", config={"callbacks": [tokens]}):
            got.append(chunk)
    assert got == [] and tokens.tool_chunks == []
    stream = await _li(hostile, account).astream_chat([ChatMessage(role="user", content="hi")])
    with pytest.raises(VerificationError):
        async for response in stream:
            got.append(response)
    assert got == []
