"""The pure maps of the LlamaIndex adapter: messages to the transport's OpenAI dicts, transport
outputs and stream chunks to responses, and tool calls to ``ToolSelection``s (no gateway)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.tools import FunctionTool
from opengradient_shared import InvalidRequestError
from opengradient_shared.types import (
    TEE_LLM,
    PaymentReceipt,
    StreamChoice,
    StreamChunk,
    StreamDelta,
    TeeProof,
    TextGenerationOutput,
    Usage,
)

from llamaindex_opengradient._convert import (
    ChatStream,
    chat_response,
    completion_response,
    to_openai_messages,
)
from llamaindex_opengradient._models import CONTEXT_WINDOWS, context_window_of
from llamaindex_opengradient._tools import (
    first_call_only,
    selections,
    tool_choice_of,
    tool_spec,
)

MODEL = "openai/gpt-4.1-2025-04-14"
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'},
}
PROOF = TeeProof("0xtee", "c2ln", "0xreq", "0xout", 1_800_000_000, verified=True)
RECEIPT = PaymentReceipt(1, "exact", "og-evm", "0xasset", 1000, "0xpayer", "0xpayee", True, "0xtx")


def _weather(city: str) -> str:
    """Current weather of a city."""
    return f"18 C in {city}"


# ---- messages to the transport -----------------------------------------------------------


def test_roles_text_and_tool_turns_map_to_openai_dicts() -> None:
    messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", blocks=[TextBlock(text="line one"), TextBlock(text="two")]),
        ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [CALL]}),
        ChatMessage(role="tool", content="18 C", additional_kwargs={"tool_call_id": "call_1"}),
        ChatMessage(role="assistant", content="It is 18 C.", additional_kwargs={"name": "bot"}),
    ]
    assert to_openai_messages(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "line onetwo"},  # blocks joined by the shared join_text
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "tool", "content": "18 C", "tool_call_id": "call_1"},
        {"role": "assistant", "content": "It is 18 C.", "name": "bot"},
    ]


def test_tool_call_blocks_become_tool_calls_with_json_text_arguments() -> None:
    message = ChatMessage(
        role="assistant",
        blocks=[
            TextBlock(text="Let me look."),
            ToolCallBlock(tool_call_id="a", tool_name="get_weather", tool_kwargs={"city": "Oslo"}),
            ToolCallBlock(tool_call_id="b", tool_name="get_time", tool_kwargs='{"city": "Oslo"}'),
        ],
        # blocks win over the OpenAI-style copy (LlamaIndex's OpenAI LLM writes both)
        additional_kwargs={"tool_calls": [CALL]},
    )
    (out,) = to_openai_messages([message])
    assert out["content"] == "Let me look."
    assert [(c["id"], c["function"]["name"]) for c in out["tool_calls"]] == [
        ("a", "get_weather"),
        ("b", "get_time"),
    ]
    assert [json.loads(c["function"]["arguments"]) for c in out["tool_calls"]] == [
        {"city": "Oslo"},
        {"city": "Oslo"},
    ]


def test_openai_tool_call_objects_are_read_by_attribute() -> None:
    call = SimpleNamespace(
        id="call_9", function=SimpleNamespace(name="get_weather", arguments='{"city": "Rome"}')
    )
    message = ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [call]})
    assert to_openai_messages([message])[0]["tool_calls"] == [
        {
            "id": "call_9",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
        }
    ]


@pytest.mark.parametrize(
    ("messages", "names"),
    [
        pytest.param([ChatMessage(role="chatbot", content="hi")], ["chatbot"], id="role-chatbot"),
        pytest.param(
            [ChatMessage(role="developer", content="hi")], ["developer", "system"], id="developer"
        ),
        pytest.param([ChatMessage(role="function", content="x")], ["function"], id="function"),
        pytest.param(
            [ChatMessage(role="user", blocks=[ImageBlock(url="http://x/y.png")])],
            ["image", "ImageBlock"],
            id="image-block",
        ),
        pytest.param(
            [ChatMessage(role="assistant", blocks=[ThinkingBlock(content="hmm")])],
            ["thinking"],
            id="thinking-block",
        ),
        pytest.param(
            [ChatMessage(role="user", blocks=[ToolCallBlock(tool_call_id="a", tool_name="f")])],
            ["tool_call"],
            id="tool-call-block-on-user",
        ),
        pytest.param([ChatMessage(role="tool", content="18 C")], ["tool_call_id"], id="tool-no-id"),
        pytest.param(
            [ChatMessage(role="assistant", blocks=[ToolCallBlock(tool_name="get_weather")])],
            ["get_weather", "id"],
            id="tool-call-without-id",
        ),
        pytest.param("hello", ["messages", "str"], id="a-string"),
        pytest.param(["hello"], ["message 0", "str"], id="not-chat-messages"),
    ],
)
def test_unsupported_messages_are_refused_by_name(messages: Any, names: list[str]) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        to_openai_messages(messages)
    for name in names:
        assert name in str(caught.value)


# ---- answers to responses ----------------------------------------------------------------


def _output(content: str = "", calls: list[dict[str, Any]] | None = None) -> TextGenerationOutput:
    chat: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        chat["tool_calls"] = calls
    return TextGenerationOutput(
        transaction_hash="0xtx",
        finish_reason="tool_calls" if calls else "stop",
        chat_output=chat,
        completion_output=content,
        payment_hash="0xhash",
        usage=Usage(3, 4, 7),
        tee_proof=PROOF,
        payment=RECEIPT,
        model="gpt-4.1-2025-04-14",
        id="chatcmpl-1",
    )


def test_chat_response_carries_text_calls_proof_receipt_usage_and_raw() -> None:
    response = chat_response(_output("", [CALL]), MODEL)
    message = response.message
    assert message.role == MessageRole.ASSISTANT and message.content == ""
    assert message.additional_kwargs == {"tool_calls": [CALL]}
    (block,) = [b for b in message.blocks if isinstance(b, ToolCallBlock)]
    assert (block.tool_call_id, block.tool_name, block.tool_kwargs) == (
        "call_1",
        "get_weather",
        '{"city": "Lisbon"}',
    )
    assert response.additional_kwargs == {
        "tee_proof": {
            "tee_id": "0xtee",
            "signature": "c2ln",
            "request_hash": "0xreq",
            "output_hash": "0xout",
            "timestamp": 1_800_000_000,
            "verified": True,
        },
        "payment": {
            "x402_version": 1,
            "scheme": "exact",
            "network": "og-evm",
            "asset": "0xasset",
            "amount": 1000,
            "payer": "0xpayer",
            "pay_to": "0xpayee",
            "success": True,
            "transaction": "0xtx",
            "session_id": None,
            "new_payment": True,
            "cost": None,
            "authorized_total": 0,
            "budget_remaining": None,
        },
        "payment_hash": "0xhash",
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        "finish_reason": "tool_calls",
        "model": MODEL,  # the gateway's bare name gets its provider back
        "tee_origin": None,  # set by the transport: where the answer came from
    }
    assert response.raw["id"] == "chatcmpl-1" and response.raw["usage"]["prompt_tokens"] == 3
    json.dumps(response.raw)  # plain data, as LlamaIndex's handlers expect of ``raw``


def test_completion_response_has_the_text_and_the_same_metadata() -> None:
    response = completion_response(_output("once upon a time"), MODEL)
    assert response.text == "once upon a time"
    assert response.additional_kwargs["tee_proof"]["verified"] is True
    assert response.additional_kwargs["finish_reason"] == "stop"


def _chunk(
    text: str | None = None, calls: list[dict[str, Any]] | None = None, final: bool = False
) -> StreamChunk:
    choice = StreamChoice(StreamDelta(content=text, tool_calls=calls), 0, "stop" if final else None)
    return StreamChunk(
        [choice],
        "gpt-4.1-2025-04-14",
        usage=Usage(1, 2, 3) if final else None,
        is_final=final,
        tee_proof=PROOF if final else None,
        payment=RECEIPT if final else None,
        payment_hash="0xhash" if final else None,
    )


def test_stream_responses_carry_delta_text_so_far_and_metadata_at_the_end() -> None:
    fold = ChatStream(MODEL)
    responses = [fold.response(c) for c in (_chunk("The"), _chunk(" answer"), _chunk(final=True))]
    assert [r.delta for r in responses] == ["The", " answer", ""]
    assert [r.message.content for r in responses] == ["The", "The answer", "The answer"]
    assert [bool(r.additional_kwargs) for r in responses] == [False, False, True]
    assert responses[-1].additional_kwargs["usage"]["total_tokens"] == 3
    assert responses[-1].raw["is_final"] is True


def test_streamed_tool_call_pieces_accumulate_on_every_message() -> None:
    fold = ChatStream(MODEL)
    first = {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"ci'}}  # fmt: skip
    rest = {"index": 0, "function": {"arguments": 'ty": "Lisbon"}'}}
    early = fold.response(_chunk(calls=[first]))
    late = fold.response(_chunk(calls=[rest]))
    final = fold.response(_chunk(final=True))
    assert early.message.additional_kwargs["tool_calls"][0]["function"]["arguments"] == '{"ci'
    assert late.message.additional_kwargs["tool_calls"] == [CALL]
    assert final.message.additional_kwargs["tool_calls"] == [CALL]
    # each response holds its own copy: a later chunk does not change an earlier message
    assert early.message.additional_kwargs["tool_calls"][0]["function"]["arguments"] == '{"ci'
    assert [s.tool_kwargs for s in selections(early, False)] == [{}]  # partial: no key yet
    assert [s.tool_kwargs for s in selections(final, True)] == [{"city": "Lisbon"}]


def test_stream_completion_responses_carry_text_so_far() -> None:
    fold = ChatStream(MODEL)
    pieces = [fold.completion(c) for c in (_chunk("Once"), _chunk(" upon"), _chunk(final=True))]
    assert [(p.delta, p.text) for p in pieces] == [
        ("Once", "Once"),
        (" upon", "Once upon"),
        ("", "Once upon"),
    ]
    assert pieces[-1].additional_kwargs["payment"]["amount"] == 1000


# ---- tools -------------------------------------------------------------------------------


def test_tool_specs_and_tool_choice() -> None:
    spec = tool_spec(FunctionTool.from_defaults(_weather), strict=True)
    assert spec["type"] == "function" and spec["function"]["name"] == "_weather"
    assert spec["function"]["parameters"]["required"] == ["city"]
    assert spec["function"]["strict"] is True
    assert tool_spec(CALL | {"function": {"name": "raw"}}) == CALL | {"function": {"name": "raw"}}
    with pytest.raises(InvalidRequestError, match="42"):
        tool_spec(42)
    tools = [spec]
    assert tool_choice_of(None, tools) == "auto"
    assert tool_choice_of(None, tools, tool_required=True) == "required"
    assert tool_choice_of(None, []) is None
    assert tool_choice_of("none", tools) == "none"
    assert tool_choice_of("_weather", tools) == {
        "type": "function",
        "function": {"name": "_weather"},
    }
    with pytest.raises(InvalidRequestError, match="sometimes"):
        tool_choice_of("sometimes", tools)


def _response(*calls: dict[str, Any], raw: Any = None) -> ChatResponse:
    message = ChatMessage(
        role="assistant", content="", additional_kwargs={"tool_calls": list(calls)}
    )
    return ChatResponse(message=message, raw=raw)


def _call(call_id: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function",
            "function": {"name": "get_weather", "arguments": arguments}}  # fmt: skip


def test_selections_from_openai_dicts_and_from_blocks() -> None:
    (picked,) = selections(_response(CALL), True)
    assert (picked.tool_id, picked.tool_name, picked.tool_kwargs) == (
        "call_1",
        "get_weather",
        {"city": "Lisbon"},
    )
    blocks = ChatMessage(
        role="assistant",
        blocks=[ToolCallBlock(tool_call_id="b", tool_name="f", tool_kwargs={"x": 1})],
    )
    assert selections(ChatResponse(message=blocks), True)[0].tool_kwargs == {"x": 1}


def test_no_tool_call_raises_only_when_asked() -> None:
    plain = ChatResponse(message=ChatMessage(role="assistant", content="hi"))
    assert selections(plain, False) == []
    with pytest.raises(ValueError, match="tool call"):
        selections(plain, True)


@pytest.mark.parametrize(
    "arguments", ['{"city": "Lis', "not json", "[1, 2]"], ids=["cut", "text", "array"]
)
def test_bad_arguments_raise_on_a_complete_answer_and_are_tolerated_mid_stream(
    arguments: str,
) -> None:
    with pytest.raises(ValueError, match="get_weather") as caught:
        selections(_response(_call("c", arguments)), True)
    assert "JSON" in str(caught.value)
    in_progress = selections(_response(_call("c", arguments), raw={"is_final": False}), False)
    assert in_progress[0].tool_name == "get_weather"
    assert isinstance(in_progress[0].tool_kwargs, dict)


def test_first_call_only_keeps_the_first_of_parallel_calls() -> None:
    two = chat_response(_output("", [CALL, _call("call_2", '{"city": "Oslo"}')]), MODEL)
    one = first_call_only(two)
    assert [s.tool_id for s in selections(one, True)] == ["call_1"]
    assert one.message.additional_kwargs["tool_calls"] == [CALL]
    assert one.additional_kwargs == two.additional_kwargs
    assert len(selections(two, True)) == 2  # the original is left as it was


def test_context_windows_are_known_per_model() -> None:
    assert context_window_of("openai/gpt-4.1-2025-04-14") == 1_047_576
    assert context_window_of("anthropic/claude-sonnet-4-5") == 200_000
    assert context_window_of("acme/unknown") == 3900  # LlamaIndex's default
    assert {member.value for member in TEE_LLM} <= set(CONTEXT_WINDOWS)  # every served model
